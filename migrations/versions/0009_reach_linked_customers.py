"""reach: a customer row linked to the Telegram account that proved its order (one person, two
phones: every case stays reachable from the account), and whether a customer chose their
language (else the bot follows Telegram's)

Revision ID: 0002_reach
Revises: 0002_peers
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_reach"
down_revision: str | None = "0002_peers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("linked_to_id", sa.Integer(), nullable=True))
        # Nobody's choice is known for the rows already there: the bot follows Telegram's.
        batch.add_column(
            sa.Column("language_chosen", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.create_index(batch.f("ix_customers_linked_to_id"), ["linked_to_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_customers_linked_to_id_customers"), "customers", ["linked_to_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint(batch.f("fk_customers_linked_to_id_customers"), type_="foreignkey")
        batch.drop_index(batch.f("ix_customers_linked_to_id"))
        batch.drop_column("language_chosen")
        batch.drop_column("linked_to_id")
