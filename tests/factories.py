"""What tests build, with sensible defaults: an order (and its customer), a case, an agent and
a token, outbox rows, order files for the importer. Each takes only what a test changes.

Builders write through the product's own functions (`upsert_order`, `open_case`,
`create_agent`...), so what a test starts from is what the product would have written.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tickets.auth import create_agent, create_token
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.context import SYSTEM, Actor, Context
from tickets.models import Agent, OutboxMessage, Role, Ticket
from tickets.orders.store import upsert_order
from tickets.policy.rules import Policy
from tickets.schemas import ActionRequest, OrderIn, TicketCreate

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Sunday
SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC_ZONE = ZoneInfo("UTC")
# The panel's agents' password in tests.
PASSWORD = "correct horse battery"


# ---------------------------------------------------------------- customers and orders


def customer_json(
    name: str = "李雷", phone: str = "13800138000", telegram_user_id: int | None = 5001
) -> dict[str, Any]:
    """An order's customer: by default T1001's, linked to Telegram user 5001."""
    data: dict[str, Any] = {"name": name, "phone": phone}
    if telegram_user_id is not None:
        data["telegram_user_id"] = telegram_user_id
    return data


def order_json(order_no: str = "T1001", **over: Any) -> dict[str, Any]:
    """A delivered two-line order with a coupon: the default of most tests."""
    data: dict[str, Any] = {
        "order_no": order_no,
        "platform": "shop",
        "status": "delivered",
        "currency": "CNY",
        "placed_at": "2026-11-15T10:00:00+08:00",
        "paid_at": "2026-11-15T10:01:00+08:00",
        "shipped_at": "2026-11-16T09:00:00+08:00",
        "delivered_at": "2026-11-18T15:00:00+08:00",
        "payment_method": "alipay",
        "shipping_fee": "8.00",
        "order_discount": "30.00",
        "address": "上海市浦东新区世纪大道 100 号",
        "customer": customer_json(),
        "lines": [
            {
                "sku": "JACKET-M",
                "title": "羽绒服 M",
                "category": "apparel",
                "quantity": 1,
                "unit_price": "99.90",
            },
            {
                "sku": "SOCKS",
                "title": "袜子",
                "category": "apparel",
                "quantity": 2,
                "unit_price": "49.95",
            },
            {
                "sku": "TEA",
                "title": "Green tea",
                "category": "food",
                "quantity": 3,
                "unit_price": "19.99",
            },
        ],
    }
    data.update(over)
    return data


def recent_order_json(order_no: str, now: datetime, **over: Any) -> dict[str, Any]:
    """`order_json` delivered two days before `now`, so its no-reason return window is open
    whenever the test runs."""
    day = timedelta(days=1)
    return order_json(
        order_no,
        placed_at=(now - 5 * day).isoformat(),
        paid_at=(now - 5 * day).isoformat(),
        shipped_at=(now - 4 * day).isoformat(),
        delivered_at=(now - 2 * day).isoformat(),
        **over,
    )


def add_order(
    sessions: sessionmaker[Session], lang: str = "en", data: dict[str, Any] | None = None
) -> None:
    """T1001 (or `data`), its customer already linked to Telegram user 5001, speaking `lang`."""
    data = data if data is not None else order_json()
    data["customer"]["language"] = lang
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=NOW)
        s.commit()


# ---------------------------------------------------------------- cases


def context(scripts: Any = None, now: datetime = NOW, tz: ZoneInfo = SHANGHAI) -> Context:
    """The core's context as the app builds it: the default policy, the shop in Shanghai
    (unless `tz`), the script library if given."""
    return Context(policy=Policy(), now=now, tz=tz, scripts=scripts)


def open_case_for(
    sessions: sessionmaker[Session], scripts: Any, *, kind: str = "return_refund"
) -> str:
    """A submitted case for T1001's customer (5001), opened as the API would."""
    with sessions() as s:
        ticket = open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "kind": kind,
                    "reason": "size_fit",
                    "order_no": "T1001",
                    "items": [{"sku": "SOCKS", "quantity": 1}],
                    "channel": "api",
                }
            ),
            actor=SYSTEM,
            ctx=context(scripts, tz=UTC_ZONE),
        )
        number = ticket.number
        s.commit()
    return number


def make_case(
    sessions: sessionmaker[Session],
    ctx: Context,
    order_no: str,
    *,
    kind: str = "return_refund",
    reason: str = "size_fit",
    items: tuple[tuple[str, int], ...] = (("SOCKS", 2),),
    customer: dict[str, Any] | None = None,
    channel: str = "telegram",
    order_status: str = "delivered",
) -> str:
    """A recent order `order_no` and a case on it, opened as the bot would; its number."""
    data = recent_order_json(order_no, ctx.now)
    if order_status == "paid":
        data.update(status="paid", shipped_at=None, delivered_at=None)
    if customer is not None:
        data["customer"] = customer
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=ctx.now)
        ticket = open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "order_no": order_no,
                    "kind": kind,
                    "reason": reason,
                    "items": [{"sku": sku, "quantity": q} for sku, q in items],
                    "channel": channel,
                    "description": "too small",
                }
            ),
            actor=SYSTEM,
            ctx=ctx,
        )
        s.commit()
        return ticket.number


def all_resalable(sessions: sessionmaker[Session], number: str) -> list[dict[str, Any]]:
    """Inspection results finding every unit of case `number` resalable (the core assumes no
    outcome: a test that inspects says what it found)."""
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        return [
            {"sku": i.sku, "quantity": i.quantity, "outcome": "resalable"} for i in ticket.items
        ]


def act(sessions: sessionmaker[Session], ctx: Context, number: str, action: str, **kw: Any) -> None:
    """Lena (a lead) performs `action` on case `number` (an inspection without `results`
    finds every unit resalable)."""
    if action == "inspect" and "results" not in kw:
        kw["results"] = all_resalable(sessions, number)
    with sessions() as s:
        agent = s.scalar(select(Agent).where(Agent.username == "lena"))
        perform_action(
            session=s,
            number=number,
            request=ActionRequest(action=action, **kw),
            actor=Actor("agent", agent),
            ctx=ctx,
        )
        s.commit()


def act_on(
    sessions: sessionmaker[Session],
    scripts: Any,
    number: str,
    actor: Actor = SYSTEM,
    **request: Any,
) -> None:
    """`actor` (the system unless given) performs the action `request` names on case `number`,
    the shop in UTC, committed (the notices it queues go to the outbox)."""
    with sessions() as s:
        perform_action(
            session=s,
            number=number,
            request=ActionRequest(**request),
            actor=actor,
            ctx=context(scripts, tz=UTC_ZONE),
        )
        s.commit()


def case_row(sessions: sessionmaker[Session], number: str) -> Ticket:
    """Case `number` as stored now, detached from its session."""
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        s.expunge(ticket)
        return ticket


def dashboard_cases(sessions: sessionmaker[Session], ctx: Context, n: int = 3) -> list[str]:
    """The dashboard's shop: n returns of socks (two of them refunded and rated), one
    refund-only of tea."""
    made = []
    for i in range(n):
        who = {"name": f"顾客{i}", "phone": f"1380000{i:04d}", "telegram_user_id": 8000 + i}
        made.append(make_case(sessions, ctx, f"D{i}", customer=who))
    who = {"name": "茶客", "phone": "13999990000", "telegram_user_id": 8999}
    tea = make_case(
        sessions,
        ctx,
        "DT",
        kind="refund_only",
        reason="changed_mind",
        items=(("TEA", 1),),
        customer=who,
        order_status="paid",
    )
    for number in made[:2]:
        act(sessions, ctx, number, "approve")
        act(sessions, ctx, number, "mark_received")
        act(sessions, ctx, number, "inspect")
        act(sessions, ctx, number, "propose_refund")
        act(sessions, ctx, number, "approve_refund")
        act(sessions, ctx, number, "issue_refund")
    with sessions() as s:
        for number, score in zip(made[:2], (5, 3), strict=False):
            s.execute(update(Ticket).where(Ticket.number == number).values(satisfaction=score))
        s.commit()
    return [*made, tea]


# ---------------------------------------------------------------- agents and tokens

# The panel's people: username, role, group, display name.
PEOPLE = (
    ("alice", Role.agent, "service", "Alice"),
    ("bob", Role.agent, "finance", "Bob"),
    ("lena", Role.lead, "service", "Lena"),
)


def add_agent(
    session: Session,
    username: str,
    role: Role = Role.agent,
    *,
    group: str | None = None,
    password: str | None = None,
    display_name: str = "",
    telegram_user_id: int | None = None,
    language: str | None = None,
    now: datetime = NOW,
) -> Agent:
    """An agent (not committed); `language` set as the agent would in the panel."""
    agent = create_agent(
        session=session,
        username=username,
        role=role,
        group=group,
        password=password,
        display_name=display_name,
        telegram_user_id=telegram_user_id,
        now=now,
    )
    if language is not None:
        agent.language = language
    return agent


def add_agent_with_token(
    session: Session,
    username: str,
    role: Role = Role.agent,
    *,
    group: str | None = None,
    scopes: list[str] | None = None,
    now: datetime = NOW,
) -> str:
    """An agent and an API token of theirs (not committed); the token."""
    add_agent(session, username, role, group=group, now=now)
    return create_token(session=session, username=username, now=now, scopes=scopes)


# ---------------------------------------------------------------- the outbox


def queue(
    sessions: sessionmaker[Session],
    *texts: str,
    recipient: str = "5001",
    channel: str = "telegram",
    ticket_id: int | None = None,
    due: datetime = NOW,
) -> list[int]:
    """One notice row per text, due at `due`, for `recipient`; their ids."""
    with sessions() as s:
        rows = [
            OutboxMessage(
                channel=channel,
                recipient=recipient,
                ticket_id=ticket_id,
                kind="notice",
                payload={"text": text, "parse_mode": "HTML", "language": "en"},
                next_attempt_at=due,
                created_at=NOW,
            )
            for text in texts
        ]
        s.add_all(rows)
        s.commit()
        return [r.id for r in rows]


def outbox_row(sessions: sessionmaker[Session], ident: int) -> OutboxMessage:
    """Outbox row `ident` as stored now, detached from its session."""
    with sessions() as s:
        found = s.get(OutboxMessage, ident)
        assert found is not None
        s.expunge(found)
        return found


# ---------------------------------------------------------------- order files (the importer)

SAMPLE = Path(__file__).parent / "data" / "orders_sample.csv"


def sample_rows() -> list[list[str]]:
    """The rows of tests/data/orders_sample.csv (three orders of three shops), header first."""
    with SAMPLE.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[Any]], sheet: str = "orders") -> Path:
    """A workbook as a shop backend exports it: a notes sheet first, the orders in `sheet`."""
    book = openpyxl.Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "notes"
    notes.append(["exported from the shop backend"])
    orders = book.create_sheet(sheet)
    for row in rows:
        orders.append(row)
    book.save(path)
    return path


def xlsx_one_line(tmp_path: Path, **cells: Any) -> Path:
    """A one-order workbook; `cells` change its defaults."""
    values: dict[str, Any] = {
        "order_no": "X1",
        "status": "paid",
        "placed_at": "2024-03-01T10:00:00+08:00",
        "sku": "A",
        "quantity": 1,
        "unit_price": 19.99,
    }
    values.update(cells)
    return write_xlsx(tmp_path / "one.xlsx", [list(values), list(values.values())])
