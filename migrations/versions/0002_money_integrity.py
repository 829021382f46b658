"""money integrity: token scopes, who opened a case, who pushed an order

Revision ID: 0002_money
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_money"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.String(length=80), server_default="cases", nullable=False)
        )
    # Tokens an admin holds kept pushing orders before scopes existed: they keep that right, so
    # an integration that ran on an admin's token goes on working; agents' tokens work cases only.
    op.execute(
        "UPDATE api_tokens SET scopes = 'cases orders' WHERE agent_id IN "
        "(SELECT id FROM agents WHERE role = 'admin')"
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("touched_by", sa.JSON(), server_default="[]", nullable=False))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_opened_by_id_agents"), "agents", ["opened_by_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_opened_by_id_agents"), type_="foreignkey")
        batch_op.drop_column("opened_by_id")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("touched_by")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scopes")
