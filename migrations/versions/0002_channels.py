"""channels: an outbox row may be undeliverable; a gift line may name the line it came with

Revision ID: 0002_channels
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_channels"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=12),
            type_=sa.String(length=20),
            existing_nullable=False,
        )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gift_for", sa.String(length=64), nullable=True))
    # Nothing has ever delivered the web channel: rows queued there would wait forever.
    op.execute(
        "UPDATE outbox SET status = 'undeliverable', "
        "last_error = 'not sent: the web chat is not running' "
        "WHERE channel = 'web' AND status = 'pending'"
    )


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'failed' WHERE status = 'undeliverable'")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("gift_for")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=20),
            type_=sa.String(length=12),
            existing_nullable=False,
        )
