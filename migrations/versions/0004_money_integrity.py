"""money integrity: token scopes, who opened a case, who pushed an order

Revision ID: 0002_money
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_money"
down_revision: str | None = "0002_multiproc"
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
    # Cases opened before: their opener is the agent named by the case.created event, so the
    # maker-checker rule holds for them too.
    op.execute(
        "UPDATE tickets SET opened_by_id = (SELECT agents.id FROM events JOIN agents "
        "ON events.actor = 'agent:' || agents.username WHERE events.ticket_id = tickets.id "
        "AND events.type = 'case.created' LIMIT 1)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a plain column in place (3.35+); Alembic's batch mode would copy each
        # table, which its rows' foreign keys refuse.
        for table, column in (
            ("tickets", "opened_by_id"),
            ("orders", "touched_by"),
            ("api_tokens", "scopes"),
        ):
            op.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
        return
    op.drop_column("tickets", "opened_by_id")
    op.drop_column("orders", "touched_by")
    op.drop_column("api_tokens", "scopes")
