"""peers: webhook updates' arrivals (one chat's updates in order across processes) and the
delivery workers' heartbeats (a killed worker's claimed outbox rows go out within seconds)

Revision ID: 0002_peers
Revises: 0002_intake
Create Date: 2026-12-07 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_peers"
down_revision: str | None = "0002_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "update_arrivals",
        sa.Column("chat_key", sa.String(length=200), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(length=80), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_key", "update_id", name=op.f("pk_update_arrivals")),
    )
    op.create_table(
        "outbox_workers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_workers")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("outbox_workers")
    op.drop_table("update_arrivals")
