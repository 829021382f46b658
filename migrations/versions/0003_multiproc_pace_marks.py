"""pace marks: Telegram's rate limits shared by every process on one database

Revision ID: 0002_multiproc
Revises: 0001
Create Date: 2026-12-07 04:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_multiproc"
down_revision: str | None = "0002_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pace_marks",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("ready_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_pace_marks")),
    )


def downgrade() -> None:
    op.drop_table("pace_marks")
