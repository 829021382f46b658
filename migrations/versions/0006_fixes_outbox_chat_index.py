"""outbox: an index for the claim's "earlier pending row of this chat" check

Revision ID: 0002_fixes
Revises: 0002_multiproc
Create Date: 2026-12-07 05:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_fixes"
down_revision: str | None = "0002_hostile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_chat_pending", "outbox", ["channel", "recipient", "status", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_chat_pending", table_name="outbox")
