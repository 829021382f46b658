"""polled updates: durable intake, so one slow chat does not hold polling's window

Revision ID: 0002_intake
Revises: 0002_fixes
Create Date: 2026-12-07 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tickets.models

revision: str = "0002_intake"
down_revision: str | None = "0002_fixes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "polled_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot", sa.String(length=40), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", tickets.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_polled_updates")),
        sa.UniqueConstraint("bot", "update_id", name=op.f("uq_polled_updates_bot_update_id")),
    )


def downgrade() -> None:
    op.drop_table("polled_updates")
