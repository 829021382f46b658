"""The database tables: customers, orders and their units, agents, cases and everything on a case.
Over 500 lines as one file: the tables share one metadata and relationships across one another,
and the models-match-migrations test reads them together.

Money is integer minor units (fen, cents) in the currency of its order. Every timestamp is
timezone-aware UTC. Constraint names come from the naming convention so migrations are stable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that comes back aware on SQLite too (stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC. Edges call it and pass `now` down."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class OrderStatus(StrEnum):
    unpaid = "unpaid"
    paid = "paid"
    shipped = "shipped"
    delivered = "delivered"
    cancelled = "cancelled"
    refused = "refused"


class CaseKind(StrEnum):
    refund_only = "refund_only"
    return_refund = "return_refund"
    exchange = "exchange"
    complaint = "complaint"
    delivery = "delivery"


# Kinds where goods travel back to the shop (a return, an exchange).
GOODS_KINDS = frozenset({CaseKind.return_refund, CaseKind.exchange})


class EventType(StrEnum):
    """What a case's audit log records (`Event.type`): the one list of them. Stored as the
    value; the panel names each (api/panel/labels.py)."""

    case_created = "case.created"
    case_routed = "case.routed"
    case_assigned = "case.assigned"
    status_changed = "status.changed"
    inspection_recorded = "inspection.recorded"
    refund_proposed = "refund.proposed"
    refund_approved = "refund.approved"
    refund_issued = "refund.issued"
    refund_confirmed = "refund.confirmed"
    refund_failed = "refund.failed"
    refund_withdrawn = "refund.withdrawn"
    order_corrected = "order.corrected"
    exchange_shipped = "exchange.shipped"
    pickup_rebooked = "pickup.rebooked"
    sla_warning = "sla.warning"
    sla_breached = "sla.breached"
    sla_escalated = "sla.escalated"
    customer_reminded = "customer.reminded"
    tag_added = "tag.added"
    tag_removed = "tag.removed"
    case_linked = "case.linked"
    case_unlinked = "case.unlinked"
    # A duplicate merged into another case (on the duplicate), and taken in (on the target).
    case_merged = "case.merged"
    case_merged_in = "case.merged_in"
    note_added = "note.added"
    reply_sent = "reply.sent"
    customer_message = "customer.message"
    risk_assessed = "risk.assessed"
    policy_overridden = "policy.overridden"
    # The customer's answers to a failed inspection (notice_inspection_failed): the refund
    # anyway, shipping both ways theirs; or the item back.
    refusal_overridden = "refusal.overridden"
    send_back_requested = "send_back.requested"
    automation_held = "automation.held"
    case_auto_approved = "case.auto_approved"
    case_offered = "case.offered"
    satisfaction_recorded = "satisfaction.recorded"
    evidence_added = "evidence.added"
    bot_error = "bot.error"
    delivery_failed = "delivery.failed"
    delivery_undeliverable = "delivery.undeliverable"


class CaseStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    needs_info = "needs_info"
    awaiting_return = "awaiting_return"
    # A courier pickup is booked: nothing has moved yet (the carrier or an agent marks it
    # collected, then it is in transit).
    pickup_booked = "pickup_booked"
    in_transit = "in_transit"
    inspecting = "inspecting"
    refund_pending = "refund_pending"
    exchange_shipping = "exchange_shipping"
    refused = "refused"
    escalated = "escalated"
    resolved = "resolved"
    refunded = "refunded"
    closed = "closed"
    cancelled = "cancelled"


OPEN_STATUSES = frozenset(
    s
    for s in CaseStatus
    if s not in {CaseStatus.closed, CaseStatus.cancelled, CaseStatus.refunded, CaseStatus.resolved}
)
# Open cases whose units no other request may name. A refused request lets go of them: the
# refusal notice invites the customer to ask again, and a new request must be able to name the
# same items (tickets/orders/store.py units_taken keeps, on a refused case, only the units the
# shop already has back: their fate is argued on that case).
HOLDING_STATUSES = OPEN_STATUSES - {CaseStatus.refused}


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Channel(StrEnum):
    telegram = "telegram"
    web = "web"
    phone = "phone"
    email = "email"
    platform = "platform"
    api = "api"


class UnitStatus(StrEnum):
    requested = "requested"
    received = "received"
    resalable = "resalable"
    damaged = "damaged"
    missing = "missing"
    wrong_item = "wrong_item"
    refunded = "refunded"


class Role(StrEnum):
    agent = "agent"
    lead = "lead"
    admin = "admin"


# ---------------------------------------------------------------- customers and orders


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    email: Mapped[str | None] = mapped_column(String(200))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # The browser session's chat on the web chat (api/chat.py): an id in a range Telegram's
    # never reach (tickets/customers.py, WEB_CHAT_BASE), so every handler of the bot serves it.
    web_chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # A customer of another phone whose order a Telegram account proved theirs: the row that
    # holds that account (tickets/customers.py). Its chat reaches this customer's cases, and the
    # account sees them, so one person with two phones keeps every case. None on the account's
    # own row, and on customers no Telegram account has claimed.
    linked_to_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    language: Mapped[str] = mapped_column(String(10), default="zh-CN")
    # Whether the customer picked `language` themselves (/language). Otherwise it is a default
    # (the shop's, or zh-CN) and the bot follows what Telegram says they read.
    language_chosen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    orders: Mapped[list[Order]] = relationship(back_populates="customer")
    linked_to: Mapped[Customer | None] = relationship(remote_side=[id])


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # Orders to the same address: the risk signal and a case's customer history look them
        # up by the exact text. A hash index on PostgreSQL (a btree refuses a key over ~2.7 kB,
        # and an address may be 1 000 characters of Chinese): POSTGRESQL_INDEX_OPTIONS.
        Index("ix_orders_address", "address"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(40), default="shop")
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    placed_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    payment_method: Mapped[str] = mapped_column(String(40), default="alipay")
    shipping_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    order_discount: Mapped[int] = mapped_column(BigInteger, default=0)
    free_shipping_threshold: Mapped[int | None] = mapped_column(BigInteger)
    # A threshold promotion (满减): order_discount given for spending at least this much.
    promotion_threshold: Mapped[int | None] = mapped_column(BigInteger)
    address: Mapped[str] = mapped_column(Text, default="")
    presale: Mapped[bool] = mapped_column(Boolean, default=False)
    # Decimal as text: the rate to the shop's currency at purchase, recorded and never re-read.
    exchange_rate: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # Ids of the agents who created or changed the order through the API (an integration's
    # account included): none of them may be the second approver of a refund on it.
    touched_by: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="orders")
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.line_no", cascade="all, delete-orphan"
    )
    payments: Mapped[list[Payment]] = relationship(
        back_populates="order", order_by="Payment.id", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300), default="")
    category: Mapped[str] = mapped_column(String(80), default="")
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    # Discount on the whole line (all its units), minor units.
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    gift_value: Mapped[int] = mapped_column(BigInteger, default=0)
    # A gift line (price 0, gift_value declared) may name the paid line it came with, by sku;
    # without it the gift belongs to the order's paid lines (MONEY.md's gift rule).
    gift_for: Mapped[str | None] = mapped_column(String(64))
    no_reason_return: Mapped[bool] = mapped_column(Boolean, default=True)

    order: Mapped[Order] = relationship(back_populates="lines")
    units: Mapped[list[OrderUnit]] = relationship(
        back_populates="line", order_by="OrderUnit.unit_index", cascade="all, delete-orphan"
    )


class OrderUnit(Base):
    """One unit of a line with the net the customer paid for it, allocated once (MONEY.md 3)."""

    __tablename__ = "order_units"
    __table_args__ = (UniqueConstraint("line_id", "unit_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id", ondelete="CASCADE"))
    unit_index: Mapped[int] = mapped_column(Integer)
    net: Mapped[int] = mapped_column(BigInteger)

    line: Mapped[OrderLine] = relationship(back_populates="units")


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10), default="full")
    paid_at: Mapped[datetime | None]

    order: Mapped[Order] = relationship(back_populates="payments")


# ---------------------------------------------------------------- agents


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10), default=Role.agent.value)
    group: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(10), default="zh-CN")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    away: Mapped[bool] = mapped_column(Boolean, default=False)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SavedView(Base):
    """An agent's own named queue: a queue page's filters (its query string, checked by
    tickets/saved_views.py) kept under a name, shown in their sidebar with its live count."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("agent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    query: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """Something an agent should hear about (tickets/notifications.py): a new case in their
    group, a customer's reply on their case, a colleague's @mention in a note, a case assigned
    to them. Kept per agent, the newest few hundred; read when they open or dismiss it."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_agent_id_id", "agent_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # new_case | customer_reply | mention | assigned
    kind: Mapped[str] = mapped_column(String(20))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32), default="")
    # Who caused it (an actor's label) and a short excerpt (a mention's note).
    by: Mapped[str] = mapped_column(String(120), default="")
    excerpt: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    # What the token may do, space-separated: "cases" (work cases, read orders and quotes),
    # "orders" (push orders: POST /api/v1/orders). See tickets/auth.py SCOPES.
    scopes: Mapped[str] = mapped_column(String(80), default="cases", server_default="cases")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    agent: Mapped[Agent] = relationship()


# ---------------------------------------------------------------- cases


# Cases still being worked (the statuses outside the terminal ones and draft).
_OPEN_CASE = text("status NOT IN ('closed', 'refunded', 'resolved', 'cancelled', 'draft')")


class Ticket(Base):
    """A case: one after-sales request and everything that happens to it."""

    __tablename__ = "tickets"
    __table_args__ = (
        # The queue: open cases by status, newest first, keyset-paginated by (created_at, id).
        Index("ix_tickets_status_created", "status", "created_at", "id"),
        Index("ix_tickets_group_status_created", "group", "status", "created_at", "id"),
        Index("ix_tickets_assignee_status_created", "assignee_id", "status", "created_at", "id"),
        Index("ix_tickets_kind_created", "kind", "created_at", "id"),
        Index("ix_tickets_created", "created_at", "id"),
        # The working queues (unassigned, mine, my group) read only open cases: a partial index
        # keeps them as fast at a million cases as at ten thousand (bench/ticket_list.py).
        Index(
            "ix_tickets_open_assignee_created",
            "assignee_id",
            "created_at",
            "id",
            sqlite_where=_OPEN_CASE,  # and on PostgreSQL: POSTGRESQL_INDEX_OPTIONS
        ),
        Index(
            "ix_tickets_open_group_created",
            "group",
            "created_at",
            "id",
            sqlite_where=_OPEN_CASE,  # and on PostgreSQL: POSTGRESQL_INDEX_OPTIONS
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(10), default=Priority.normal.value)
    group: Mapped[str] = mapped_column(String(40))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    # The agent who opened the case (by phone, e-mail, the API); None when the customer did.
    # An agent's id without a foreign key: agents are deactivated, never deleted, and a plain
    # column can be dropped again by a downgrade on SQLite (a keyed one cannot).
    opened_by_id: Mapped[int | None] = mapped_column(Integer)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(10), default="zh-CN")
    risk_level: Mapped[str] = mapped_column(String(10), default="low")
    risk_signals: Mapped[list[Any]] = mapped_column(default=list)
    rma_no: Mapped[str | None] = mapped_column(String(40))
    tracking_no: Mapped[str | None] = mapped_column(String(80))
    carrier: Mapped[str | None] = mapped_column(String(80))
    pickup: Mapped[dict[str, Any] | None]
    exchange_tracking_no: Mapped[str | None] = mapped_column(String(80))
    resolution: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    # A duplicate merged into another case (tickets/cases/links.py): that case's id. Its
    # messages, files and events show in that case's history; it is closed. A plain column,
    # as opened_by_id (SQLite can drop it again on a downgrade).
    merged_into_id: Mapped[int | None] = mapped_column(Integer)
    # Optimistic lock: two agents acting at once, exactly one wins (the other gets 409).
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    customer: Mapped[Customer] = relationship()
    order: Mapped[Order | None] = relationship()
    assignee: Mapped[Agent | None] = relationship()
    items: Mapped[list[TicketItem]] = relationship(
        back_populates="ticket", order_by="TicketItem.id", cascade="all, delete-orphan"
    )
    units: Mapped[list[TicketUnit]] = relationship(
        back_populates="ticket", order_by="TicketUnit.id", cascade="all, delete-orphan"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", cascade="all, delete-orphan"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="ticket", order_by="Attachment.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="ticket", order_by="Event.id", cascade="all, delete-orphan"
    )
    tags: Mapped[list[TicketTag]] = relationship(
        order_by="TicketTag.tag", cascade="all, delete-orphan", viewonly=True
    )


class TicketTag(Base):
    """A word an agent put on a case to find it again ("vip", "supplier-x", "质检"): short,
    lower-case, letters, digits, "-" and "_" (tickets/cases/tags.py owns the rule)."""

    __tablename__ = "ticket_tags"
    __table_args__ = (
        UniqueConstraint("ticket_id", "tag"),
        # A queue filtered by tag looks the tag up first.
        Index("ix_ticket_tags_tag_ticket", "tag", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(32))
    # Who tagged it (an agent's id, no key: agents are deactivated, never deleted).
    added_by_id: Mapped[int | None] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseLink(Base):
    """Two cases an agent linked as related (the same parcel, the same customer's two
    requests): one row per pair, the smaller id first (tickets/cases/links.py)."""

    __tablename__ = "case_links"
    __table_args__ = (UniqueConstraint("ticket_id", "other_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    other_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="related")
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketItem(Base):
    __tablename__ = "ticket_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)

    ticket: Mapped[Ticket] = relationship(back_populates="items")
    line: Mapped[OrderLine] = relationship()


class TicketUnit(Base):
    """A unit of goods named by a case, with its own outcome (partial outcomes are normal)."""

    __tablename__ = "ticket_units"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("order_units.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=UnitStatus.requested.value)

    ticket: Mapped[Ticket] = relationship(back_populates="units")
    unit: Mapped[OrderUnit] = relationship()


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(10))  # customer | agent | system
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    agent: Mapped[Agent | None] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    kind: Mapped[str] = mapped_column(String(20))  # photo | video | document
    mime: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    original_name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="attachments")
    message: Mapped[Message | None] = relationship(back_populates="attachments")


class Event(Base):
    """The append-only audit log of a case: every change, with who and when."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class CaseCounter(Base):
    """The last case number handed out per day (AS-YYYYMMDD-NNNN)."""

    __tablename__ = "case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


# ---------------------------------------------------------------- delivery


class OutboxMessage(Base):
    """An outbound message, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at", "id"),
        # The claim's check for an earlier pending row of the same chat (bot/delivery.py).
        Index("ix_outbox_chat_pending", "channel", "recipient", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # telegram | web | agents
    recipient: Mapped[str] = mapped_column(String(80))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # pending | sent | failed | undeliverable (no channel delivers it: never sent, see outbox.py)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # The delivery worker (`OutboxWorker.id`) whose claim holds the row, while it is leased:
    # when that worker stops being seen, another takes the row back (bot/delivery.py).
    claimed_by: Mapped[str | None] = mapped_column(String(32))


class OutboxWorker(Base):
    """A delivery worker's heartbeat: the rows it claims are taken back by the others once it
    has not been seen for a while (killed, frozen), not after their whole lease."""

    __tablename__ = "outbox_workers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[datetime]


class InboundUpdate(Base):
    """Every inbound update's id, stored before it is acted on: a redelivery is a no-op."""

    __tablename__ = "inbound_updates"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class PolledUpdate(Base):
    """An update fetched by polling, stored before Telegram is told it arrived, until it is
    handled (bot/polling.py): a killed poller's successor resumes it. Its `InboundUpdate`
    row, written when it is handled, still makes a second handling a no-op."""

    __tablename__ = "polled_updates"
    __table_args__ = (UniqueConstraint("bot", "update_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The bot's numeric id (the token's public part): two bots on one database, two queues.
    bot: Mapped[str] = mapped_column(String(40))
    update_id: Mapped[int] = mapped_column(BigInteger)
    # The update as Telegram sent it (JSON text: PostgreSQL's jsonb would refuse a NUL).
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class UpdateArrival(Base):
    """A webhook update that reached some process and may not be handled yet, by conversation:
    a later update of the same conversation, in any process, waits for it (bot/middlewares.py).
    Handled means its id is in `inbound_updates`; rows are pruned by the conversation's next
    update."""

    __tablename__ = "update_arrivals"

    chat_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    external_id: Mapped[str] = mapped_column(String(80))
    arrived_at: Mapped[datetime]


# ---------------------------------------------------------------- refunds


class RefundStatus(StrEnum):
    proposed = "proposed"
    approved = "approved"
    issued = "issued"
    confirmed = "confirmed"
    failed = "failed"
    cancelled = "cancelled"


class Refund(Base):
    """A refund in the ledger: what goes back, on which route, and who decided each step."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default=RefundStatus.proposed.value)
    # The itemised quote it was made from (lines, routes, rules), frozen at proposal.
    breakdown: Mapped[dict[str, Any]] = mapped_column(default=dict)
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    failed_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Above the policy's threshold a different agent than the proposer must approve.
    needs_second_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # The order-level ledger this refund moves once issued (MONEY.md rules 5, 7, 8).
    shipping_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    freight_reimbursed: Mapped[int] = mapped_column(BigInteger, default=0)
    promotion_clawback: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_clawback: Mapped[int] = mapped_column(BigInteger, default=0)

    ticket: Mapped[Ticket] = relationship()
    lines: Mapped[list[RefundLine]] = relationship(
        back_populates="refund", order_by="RefundLine.id", cascade="all, delete-orphan"
    )


class RefundLine(Base):
    """One part of a refund: a unit's net (or an order-level amount) paid back on one payment."""

    __tablename__ = "refund_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"), index=True)
    # unit: a unit's refund; payment: the part one payment pays back; freight: return
    # freight reimbursed on its own route. Units and payments are two views of one amount.
    kind: Mapped[str] = mapped_column(String(10), default="unit")
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("order_units.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    method: Mapped[str] = mapped_column(String(40), default="")
    amount: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(80), default="")

    refund: Mapped[Refund] = relationship(back_populates="lines")


# ---------------------------------------------------------------- SLA clocks


class SlaClock(Base):
    """One promise on a case (first response, review, inspection ...): its target, its
    calendar, pauses, and where it stands. The sweep finds due work through `next_check_at`."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "clock", "round"),
        Index("ix_sla_clocks_next_check_at", "next_check_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    clock: Mapped[str] = mapped_column(String(40))
    # A clock started again for the same case (a resubmitted request's review) is a new round.
    round: Mapped[int] = mapped_column(Integer, default=1)
    calendar: Mapped[str] = mapped_column(String(40))
    # Working seconds to the target (business time on `calendar`).
    target_seconds: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    legal_due_at: Mapped[datetime | None]
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(10), default="running")
    # [[start, end-or-null], ...] as ISO strings: the working time they cover moves due_at.
    pauses: Mapped[list[Any]] = mapped_column(default=list)
    met_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    # An unanswered case whose first response breached is offered back to its group.
    offered_at: Mapped[datetime | None]
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_reminder_at: Mapped[datetime | None]
    # When the sweep must look at this clock next (a warning, the breach, an escalation, a
    # reminder); None when nothing more can happen.
    next_check_at: Mapped[datetime | None]

    ticket: Mapped[Ticket] = relationship()


# ---------------------------------------------------------------- sessions and conversations


class PanelSession(Base):
    """A logged-in panel session: the cookie carries `id` (random), stored here as its hash."""

    __tablename__ = "panel_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    user_agent: Mapped[str] = mapped_column(String(300), default="")

    agent: Mapped[Agent] = relationship()


class PaceMark(Base):
    """When a Telegram rate key (the bot, one chat) may next be sent to: the pace shared by
    every process on this database (bot/pacing.py). Seconds since the epoch."""

    __tablename__ = "pace_marks"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    ready_at: Mapped[float] = mapped_column(Float)


class FsmRecord(Base):
    """The bot's conversation state (aiogram FSM) per storage key, so a restart loses nothing."""

    __tablename__ = "fsm_records"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """What was done outside any case (agents, roles, tokens), by whom and when: the audit
    trail of the desk itself. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Throttle(Base):
    """Failed guesses at a secret (a panel password, the last digits of an order's phone), per
    scope and key, counted in a window that starts at the first failure. Kept in the database
    so every process sees the same count. The key is a SHA-256 of the scoped value (a username
    and an address, an order number, a Telegram id): nothing here names anyone."""

    __tablename__ = "throttles"
    __table_args__ = (
        UniqueConstraint("scope", "key"),
        Index("ix_throttles_last_failed_at", "last_failed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime]
    last_failed_at: Mapped[datetime]


# ---------------------------------------------------------------- webhooks to the shop


class WebhookSubscription(Base):
    """A URL of the shop's that hears about case events (tickets/webhooks.py), signed per the
    Standard Webhooks specification with `secret`; or, as `kind` "refund_executor", the shop's
    system that sends an issued refund's money and answers whether it went."""

    __tablename__ = "webhook_subscriptions"
    # Ids never handed out again (SQLite reuses the highest one once deleted): a deleted
    # subscription's rows and log name its id, and must never reach a later one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    # events | refund_executor (tickets/webhooks.py KINDS)
    kind: Mapped[str] = mapped_column(String(20), default="events")
    url: Mapped[str] = mapped_column(String(2000))
    # The event types it hears (tickets/webhooks.py EVENT_TYPES); empty for an executor.
    events: Mapped[list[Any]] = mapped_column(default=list)
    # "whsec_" and base64 of 32 random bytes: shown once when made, needed to sign.
    secret: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    # The run of failed attempts since the last success: past the settings' limits (so many in
    # a row, or failing for so long) delivery is switched off and the admins are told.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class WebhookAttempt(Base):
    """One try at sending an outbox row to a subscription: the delivery log admins read."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_subscription_id_id", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    outbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox.id", ondelete="SET NULL"), index=True
    )
    webhook_id: Mapped[str] = mapped_column(String(80))
    event_type: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # The receiver's HTTP status, None when no answer came (refused, timed out, unsafe address).
    status_code: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    # The answer's first bytes (at most tickets/webhooks.py EXCERPT characters).
    body_excerpt: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


# PostgreSQL's own index options, put on the metadata only where PostgreSQL is in use
# (`use_postgresql_options`, from tickets/db.make_engine): named in Index(...) above, they would
# make SQLAlchemy load its PostgreSQL dialect when this module is imported, on SQLite too. The
# migrations name them as they create the indexes.
POSTGRESQL_INDEX_OPTIONS: dict[str, dict[str, Any]] = {
    "ix_orders_address": {"using": "hash"},
    "ix_tickets_open_assignee_created": {"where": _OPEN_CASE},
    "ix_tickets_open_group_created": {"where": _OPEN_CASE},
}


def use_postgresql_options() -> None:
    """Give the indexes their PostgreSQL options (idempotent): before any DDL on PostgreSQL."""
    for table in Base.metadata.tables.values():
        for index in table.indexes:
            for key, value in POSTGRESQL_INDEX_OPTIONS.get(str(index.name), {}).items():
                index.dialect_kwargs[f"postgresql_{key}"] = value
