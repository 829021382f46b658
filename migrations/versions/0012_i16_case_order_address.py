"""orders by address: an index for the same-address risk signal and a case's customer history

Revision ID: 0003_i16_case
Revises: 0003_hooks
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_i16_case"
down_revision: str | None = "0003_hooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A hash index on PostgreSQL: a btree refuses keys over ~2.7 kB (a long Chinese address).
    op.create_index("ix_orders_address", "orders", ["address"], postgresql_using="hash")


def downgrade() -> None:
    op.drop_index("ix_orders_address", table_name="orders")
