"""throttles: failed guesses per scope and key (panel log-ins, the bot's ownership proof)

Revision ID: 0002_hostile
Revises: 0001
Create Date: 2026-12-07 04:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tickets.models

revision: str = "0002_hostile"
down_revision: str | None = "0002_money"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", tickets.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", tickets.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_throttles")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_throttles_scope_key")),
    )
    with op.batch_alter_table("throttles", schema=None) as batch_op:
        batch_op.create_index("ix_throttles_last_failed_at", ["last_failed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("throttles", schema=None) as batch_op:
        batch_op.drop_index("ix_throttles_last_failed_at")
    op.drop_table("throttles")
