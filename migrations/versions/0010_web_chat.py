"""web chat: a customer's web chat (a browser session's chat id, in a range Telegram's ids
never reach), beside their Telegram account

Revision ID: 0002_web_chat
Revises: 0002_reach
Create Date: 2026-12-12 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_web_chat"
down_revision: str | None = "0002_reach"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("web_chat_id", sa.BigInteger(), nullable=True))
        batch.create_unique_constraint(batch.f("uq_customers_web_chat_id"), ["web_chat_id"])


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint(batch.f("uq_customers_web_chat_id"), type_="unique")
        batch.drop_column("web_chat_id")
