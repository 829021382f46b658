"""Customers who talk to the real bot through the fake Bot API: each reads what the bot sends
and answers it as a person would (types the order number, the phone's last 4 digits, presses
the buttons the bot offers, sends a photo when asked), files a request and then writes to it.

Nothing here hard-codes callback data: a button is found by its label (the English texts of
bot/messages.py), so a change of the bot's keyboards does not break the script, only a change
of what the customer reads.

The orders they talk about are made for them (`orders_for`): one delivered order per chat, with
a phone number of its own, so each customer proves their own order with its last 4 digits.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.bot_api import BotMessage, FakeBotApi

# What the bot says, and what the customer does about it (first match wins).
ASK_ORDER = "Which order is it about?"
ASK_PROOF = "To keep your order safe"
ASK_KIND = "What do you need for order"
ASK_ITEMS = "Which items, and how many?"
ASK_REASON = "What is the reason?"
ASK_DESCRIPTION = "Describe the problem"
ASK_EVIDENCE = ("Send photos of the problem", "Several at once is fine")
RECEIVED = "Received, "
PREVIEW = "Please check your request"
DUPLICATE = "already has a request in progress"
ADDED = "Added to your case"
CASE_NO = re.compile(r"\b[A-Z]{1,6}-\d{8}-\d{4,}\b")
# Answers that mean the script went off the road (or the server failed).
TROUBLE = (
    "Sorry, something went wrong",
    "Please choose with the buttons",
    "Please type your answer",
    "That button belongs to an earlier step",
    "That doesn't match the phone number",
    "I can't find order",
    "Sorry, we're very busy",
)
# Kinds in the order a customer would pick them (the first one the bot offers wins).
KIND_LABELS = ("Refund only", "Return and refund", "Exchange", "Complaint", "Delivery problem")


@dataclass
class Customer:
    chat_id: int
    order_no: str
    phone: str
    case_no: str | None = None
    done: bool = False
    problem: str | None = None
    transcript: list[str] = field(default_factory=list)
    seconds: float = 0.0


def orders_for(customers: list[Customer], now: datetime | None = None) -> dict[str, Any]:
    """The JSON API batch (POST /api/v1/orders) with each customer's order: delivered two
    days ago, one line of two units."""
    now = now or datetime.now(UTC)
    delivered = now - timedelta(days=2)
    orders = []
    for c in customers:
        orders.append(
            {
                "order_no": c.order_no,
                "platform": "shop",
                "status": "delivered",
                "currency": "CNY",
                "placed_at": (delivered - timedelta(days=3)).isoformat(),
                "paid_at": (delivered - timedelta(days=3)).isoformat(),
                "shipped_at": (delivered - timedelta(days=2)).isoformat(),
                "delivered_at": delivered.isoformat(),
                "payment_method": "alipay",
                "shipping_fee": "0.00",
                "address": "上海市浦东新区世纪大道 100 号",
                "customer": {"name": f"Customer {c.chat_id}", "phone": c.phone},
                "lines": [
                    {
                        "sku": "TEE-WHT-L",
                        "title": "Organic cotton T-shirt, white, L",
                        "category": "apparel",
                        "quantity": 2,
                        "unit_price": "89.00",
                    }
                ],
            }
        )
    return {"orders": orders}


def make_customers(n: int, *, first_chat: int = 700_001, prefix: str = "E2E") -> list[Customer]:
    return [
        Customer(
            chat_id=first_chat + i,
            order_no=f"{prefix}-{i + 1:05d}",
            phone=f"138{(first_chat + i) % 100_000_000:08d}",
        )
        for i in range(n)
    ]


def photo_bytes() -> bytes:
    """A small real JPEG, as a phone camera would send (the bot cleans and thumbnails it)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(out, "JPEG")
    return out.getvalue()


def _button(message: BotMessage, *labels: str) -> str | None:
    """The callback data of the first button whose label contains one of `labels` (in the
    order of `labels`)."""
    for label in labels:
        for b in message.buttons():
            if label in b.get("text", "") and b.get("callback_data"):
                return str(b["callback_data"])
    return None


class _Script:
    """One customer's conversation; `step_timeout`: how long an answer may take."""

    def __init__(self, fake: FakeBotApi, c: Customer, step_timeout: float, photo: bytes) -> None:
        self.fake = fake
        self.c = c
        self.step_timeout = step_timeout
        self.photo = photo
        self.read = 0

    def say(self, text: str) -> None:
        self.c.transcript.append(f"> {text}")
        self.fake.message(self.c.chat_id, text)

    def press(self, message: BotMessage, data: str) -> None:
        self.c.transcript.append(f"> [{data}]")
        self.fake.press(message, data)

    async def next(self) -> BotMessage:
        msgs = await self.fake.wait_messages(self.c.chat_id, self.read + 1, self.step_timeout)
        m = msgs[self.read]
        self.read += 1
        self.c.transcript.append(f"< {m.text[:120]}")
        return m

    async def markup_changed(self, message: BotMessage, before: Any) -> BotMessage:
        """The same message once its buttons changed (an edit)."""
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            for m in self.fake.messages(self.c.chat_id):
                if m.message_id == message.message_id and m.markup != before:
                    return m
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"chat {self.c.chat_id}: the buttons of {message.message_id} never changed"
        )

    async def run(self) -> None:
        c = self.c
        self.say("/start")
        pressed_new = sent_photo = submitted = False
        for _ in range(40):
            m = await self.next()
            text = m.text
            if any(t in text for t in TROUBLE):
                c.problem = f"the bot said: {text[:200]}"
                return
            if not pressed_new and (data := _button(m, "New request")):
                pressed_new = True
                self.press(m, data)
            elif ASK_ORDER in text:
                self.say(c.order_no)
            elif ASK_PROOF in text:
                self.say(c.phone[-4:])
            elif ASK_KIND in text:
                data = _button(m, *KIND_LABELS)
                if data is None:
                    c.problem = f"no kind offered: {m.buttons()}"
                    return
                self.press(m, data)
            elif ASK_ITEMS in text:
                plus = next(
                    (b["callback_data"] for b in m.buttons() if b.get("text", "").strip() == "+"),
                    None,
                ) or _button(m, "+")
                if plus is None:
                    c.problem = f"no + button: {m.buttons()}"
                    return
                before = m.markup
                self.press(m, plus)
                m = await self.markup_changed(m, before)
                done = _button(m, "Done")
                assert done is not None, m.buttons()
                self.press(m, done)
            elif ASK_REASON in text:
                buttons = [
                    b for b in m.buttons() if str(b.get("callback_data", "")).startswith("r:")
                ]
                if not buttons:
                    c.problem = f"no reason offered: {m.buttons()}"
                    return
                self.press(m, str(buttons[0]["callback_data"]))
            elif ASK_DESCRIPTION in text:
                self.say(f"The seam came apart after one wash ({c.chat_id}).")
            elif any(a in text for a in ASK_EVIDENCE) and not sent_photo:
                sent_photo = True
                c.transcript.append("> (photo)")
                self.fake.photo(c.chat_id, self.photo)
            elif text.startswith(RECEIVED) and (done := _button(m, "Done")):
                self.press(m, done)
            elif PREVIEW in text and (confirm := _button(m, "Submit")):
                submitted = True
                self.press(m, confirm)
            elif DUPLICATE in text or (submitted and CASE_NO.search(text) and c.case_no is None):
                found = CASE_NO.search(text)
                c.case_no = found.group(0) if found else None
                self.say(f"One more thing: the colour faded too ({c.chat_id}).")
            elif ADDED in text:
                c.done = True
                return
        c.problem = "the conversation did not end"


async def converse(
    fake: FakeBotApi, customers: list[Customer], *, step_timeout: float = 20.0
) -> None:
    """Every customer's conversation at once, on the fake's loop; each one's result is on
    its Customer (done, problem, transcript)."""
    photo = photo_bytes()

    async def one(c: Customer) -> None:
        t0 = time.monotonic()
        try:
            await _Script(fake, c, step_timeout, photo).run()
        except (TimeoutError, AssertionError) as exc:
            c.problem = f"{type(exc).__name__}: {exc}"
        finally:
            c.seconds = time.monotonic() - t0

    await asyncio.gather(*(one(c) for c in customers))


def seed_orders(database_url: str, customers: list[Customer]) -> None:
    """The customers' orders, written through the core before the server starts (as a shop's
    order import would), so the run measures the conversations alone."""
    from tickets.db import make_engine, make_sessionmaker, unit_of_work
    from tickets.orders.store import upsert_order
    from tickets.schemas import OrderIn

    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            now = datetime.now(UTC)
            for data in orders_for(customers, now)["orders"]:
                upsert_order(session=session, data=OrderIn.model_validate(data), now=now)
    finally:
        engine.dispose()
