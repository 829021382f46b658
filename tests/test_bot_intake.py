"""The customer's conversation, through the real aiogram Dispatcher with Telegram faked at the
HTTP-session boundary, on the real test database: the rows written and the messages sent.
Over 500 lines as one file: one conversation (the customer's) and the fakes its tests share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.methods import SendMessage
from aiogram.types import ReplyKeyboardMarkup
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from bot.keyboards import CaseCb, ItemCb, KindCb, MenuCb, NavCb, OrderCb, ReasonCb
from tests.factories import NOW, UTC_ZONE, add_order, context, open_case_for, order_json
from tests.fakes.telegram import (
    FAST,
    Customer,
    answered_callbacks,
    buttons_of,
    colour_name,
    colour_of,
    dispatcher,
    jpeg,
    texts_of,
)
from tickets.cases.lifecycle import perform_action
from tickets.cases.opening import open_case
from tickets.context import SYSTEM
from tickets.messages.scripts import format_moment
from tickets.models import (
    Customer as CustomerRow,
)
from tickets.models import (
    Event,
    FsmRecord,
    InboundUpdate,
    Order,
    OutboxMessage,
    SlaClock,
    Throttle,
    Ticket,
)
from tickets.models import (
    Message as MessageRow,
)
from tickets.orders.store import get_order, upsert_order
from tickets.policy.eligibility import EvidenceNeed
from tickets.policy.rules import Policy
from tickets.refunds.ledger import quote
from tickets.schemas import ActionRequest, OrderIn, TicketCreate
from tickets.storage import AttachmentStore

# No database call on the event loop (tickets/db.py): the guard is on in every test here.
pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()


def t(lang: str, key: str, **values: Any) -> str:
    return TEXTS.get(lang, key, **values)


def unlinked(order_no: str, status: str = "delivered") -> dict[str, Any]:
    """An order whose customer has a phone but no Telegram account yet."""
    data = order_json(order_no, status=status)
    data["customer"] = {"name": "Emma", "phone": "+86 138-0013-8000"}
    if status == "paid":
        data["shipped_at"] = data["delivered_at"] = None
    return data


def add_unlinked(sessions: sessionmaker[Session], order_no: str, status: str = "delivered") -> None:
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(unlinked(order_no, status)), now=NOW)
        s.commit()


def only_case(session: Session) -> Ticket:
    tickets = list(session.scalars(select(Ticket)))
    assert len(tickets) == 1, [x.number for x in tickets]
    return tickets[0]


def last_notice(session: Session, case: Ticket) -> str:
    """The text of the newest notice (a script) queued to the case's customer."""
    payload = session.scalar(
        select(OutboxMessage.payload)
        .where(OutboxMessage.ticket_id == case.id, OutboxMessage.kind == "notice")
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    assert payload is not None
    text = payload["text"]
    assert case.number in text
    return str(text)


def state_of(session: Session, user_id: int) -> str | None:
    rows = list(session.scalars(select(FsmRecord).where(FsmRecord.key.contains(f":{user_id}:"))))
    return rows[0].state if rows else None


# ---------------------------------------------------------------- full intakes


async def test_linked_customer_walks_a_return_in_chinese_with_photos(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], settings: Any
) -> None:
    add_order(sessions, lang="zh-CN")
    me = Customer(dp, bot, user_id=5001, language="zh-CN")

    sent = await me.text("/start")
    # Greeted by the name the customer gave Telegram, not the order's recipient (李雷).
    assert texts_of(sent) == [t("zh-CN", "menu.greeting", name="Li Lei", shop=settings.shop_name)]
    assert MenuCb(action="new").pack() in buttons_of(sent)

    sent = await me.press(MenuCb(action="new"))
    assert answered_callbacks(sent) == 1
    assert texts_of(sent) == [t("zh-CN", "intake.ask_order_recent")]
    assert OrderCb(index=0).pack() in buttons_of(sent)

    sent = await me.press(OrderCb(index=0))  # linked: no proof asked
    assert texts_of(sent)[0].startswith(t("zh-CN", "intake.ask_kind", order_no="T1001"))
    assert KindCb(kind="return_refund").pack() in buttons_of(sent)

    sent = await me.press(KindCb(kind="return_refund"))
    assert texts_of(sent) == [t("zh-CN", "intake.ask_items")]
    await me.press(ItemCb(index=0, delta=1))
    await me.press(ItemCb(index=1, delta=1))
    sent = await me.press(ItemCb(index=1, delta=1))
    # The quantities change in place, on the same message.
    assert not texts_of(sent)
    assert ItemCb(index=1, delta=-1).pack() in buttons_of(sent)

    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent) == [t("zh-CN", "intake.ask_reason")]
    await me.press(ReasonCb(reason="quality_defect"))
    # A NUL character in what the customer typed (no one means one; PostgreSQL cannot store
    # one) is dropped at the edge: the step goes on and the case keeps the words.
    sent = await me.text("拉链坏了\x00，袜子破洞")
    need = EvidenceNeed(photos=Policy().eligibility.evidence.min_photos).text("zh-CN")
    assert texts_of(sent) == [t("zh-CN", "intake.ask_evidence_required", count=0, need=need)]

    # A quality claim cannot go on without a photo.
    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent) == [t("zh-CN", "intake.evidence_required", need=need)]

    # The photo is all it needs: the summary at once (no Done), updated by a second photo.
    sent = await me.photo(jpeg("red"), caption="拉链特写")
    assert texts_of(sent)[0].startswith(t("zh-CN", "intake.evidence_ready", count=1))
    sent = await me.photo(jpeg("blue"))
    assert texts_of(sent)[0].startswith(t("zh-CN", "intake.evidence_ready", count=2))
    preview = texts_of(sent)[0]
    assert "T1001" in preview and "羽绒服 M ×1" in preview and "袜子 ×2" in preview

    # The estimate is the calculator's, on the units the case will name.
    with sessions() as s:
        order = get_order(session=s, order_no="T1001")
        units = [order.lines[0].units[0].id] + [u.id for u in order.lines[1].units[:2]]
        expected = quote(
            session=s,
            order=order,
            kind="return_refund",
            reason="quality_defect",
            unit_ids=units,
            policy=Policy(),
            now=NOW,
        )
    assert f"¥{expected.amount / 100:.2f}" in preview

    sent = await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        # The case's notice (number and promised time, from the shop's script), then the menu.
        assert texts_of(sent) == [last_notice(s, case), t("zh-CN", "menu.prompt")]
        assert "2026年11月23日" in texts_of(sent)[0]
        assert (case.kind, case.reason, case.channel, case.status) == (
            "return_refund",
            "quality_defect",
            "telegram",
            "submitted",
        )
        assert [(i.sku, i.quantity) for i in case.items] == [("JACKET-M", 1), ("SOCKS", 2)]
        assert len(case.units) == 3
        assert "拉链坏了，袜子破洞" in case.description and "拉链特写" in case.description
        assert "\x00" not in case.description
        photos = case.attachments
        assert [a.kind for a in photos] == ["photo", "photo"]
        store = AttachmentStore(settings.media_dir)
        colours = []
        for a in photos:
            with Image.open(store.path(a.storage_key)) as img:
                assert not img.getexif(), "location metadata must be stripped"
                colours.append(colour_of(img))
        assert colours[0][0] > 200 and colours[1][2] > 200  # red first, then blue
        notices = list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.ticket_id == case.id)
                .order_by(OutboxMessage.id)
            )
        )
        assert [(n.channel, n.recipient, n.kind) for n in notices] == [
            ("telegram", "5001", "notice"),
            ("agents", "agents", "case.created"),
        ]
        assert case.number in notices[0].payload["text"]
        assert state_of(s, 5001) is None


async def test_new_customer_proves_an_order_in_english_and_gets_a_refund_only(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "T2002", status="paid")
    me = Customer(dp, bot, user_id=6001, language="en", name="Emma")

    sent = await me.text("/start T2002")  # deep link from the shop's order page
    texts = texts_of(sent)
    assert t("en", "intake.ask_proof") in texts
    assert any(isinstance(r.reply_markup, ReplyKeyboardMarkup) for r in me.session.sent())

    sent = await me.text("1111")
    assert texts_of(sent) == [t("en", "intake.proof_failed", left=2)]
    sent = await me.contact("+86 139 0000 0000", own=False)
    assert texts_of(sent) == [t("en", "intake.proof_other_contact")]
    sent = await me.text("8000")
    texts = texts_of(sent)
    assert texts[0] == t("en", "intake.proof_ok", order_no="T2002")
    # Not shipped: no return or exchange, and the customer is told why.
    refused = texts[1].split(t("en", "intake.kinds_unavailable"))[1]
    assert t("en", "kind.return_refund") in refused and t("en", "kind.exchange") in refused
    assert KindCb(kind="return_refund").pack() not in buttons_of(sent)
    assert KindCb(kind="refund_only").pack() in buttons_of(sent)

    await me.press(KindCb(kind="refund_only"))
    await me.press(ItemCb(index=2, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="changed_mind"))
    sent = await me.press(NavCb(action="skip"))
    assert texts_of(sent) == [t("en", "intake.ask_evidence", count=0)]
    sent = await me.press(NavCb(action="done"))
    assert "Estimated refund" in texts_of(sent)[0]
    sent = await me.press(NavCb(action="confirm"))

    with sessions() as s:
        case = only_case(s)
        assert texts_of(sent) == [last_notice(s, case), t("en", "menu.prompt")]
        assert (case.kind, case.status, case.language) == ("refund_only", "refund_pending", "en")
        assert [(i.sku, i.quantity) for i in case.items] == [("TEA", 1)]
        owner = s.get(CustomerRow, case.customer_id)
        assert owner is not None and owner.telegram_user_id == 6001 and owner.language == "en"
        # The placeholder made on first contact was merged into the order's customer.
        assert s.scalar(select(func.count(CustomerRow.id)).where(CustomerRow.name == "Emma")) == 1


async def test_three_wrong_proofs_end_the_attempt(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_unlinked(sessions, "T2003")
    me = Customer(dp, bot, user_id=6002, language="en")
    await me.text("/start T2003")
    await me.text("0000")
    await me.text("1234")
    sent = await me.text("9999")
    assert texts_of(sent)[0] == t("en", "intake.proof_locked")
    with sessions() as s:
        assert state_of(s, 6002) is None
        order = s.scalar(select(Order).where(Order.order_no == "T2003"))
        assert order is not None and order.customer.telegram_user_id is None


async def test_starting_over_gives_no_new_guesses_on_an_order(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    """Three wrong proofs end a conversation; `/start <order>` used to begin a fresh one, and
    after 11 guesses an attacker was linked to a stranger's order. Now the order takes 5 wrong
    proofs a day, from anyone, whatever the conversations."""
    add_unlinked(sessions, "T2004")
    attacker = Customer(dp, bot, user_id=6003, language="en")
    await attacker.text("/start T2004")
    for guess in ("0000", "0001", "0002"):
        sent = await attacker.text(guess)
    assert texts_of(sent)[0] == t("en", "intake.proof_locked")
    sent = await attacker.text("/start T2004")
    assert t("en", "intake.ask_proof") in texts_of(sent)
    sent = await attacker.text("0003")
    assert texts_of(sent) == [t("en", "intake.proof_failed", left=1)]
    sent = await attacker.text("0004")
    assert texts_of(sent)[0] == t("en", "intake.proof_limit")
    # Starting over: refused before any guess, and even the right digits link nothing.
    sent = await attacker.text("/start T2004")
    assert t("en", "intake.proof_limit") in texts_of(sent)
    assert t("en", "intake.ask_proof") not in texts_of(sent)
    await attacker.text("8000")
    # Another account guessing at the same order is refused too (the order's count), in its
    # own language.
    other = Customer(dp, bot, user_id=6004, language="zh-CN", first_update=1000)
    sent = await other.text("/start T2004")
    assert t("zh-CN", "intake.proof_limit") in texts_of(sent)
    with sessions() as s:
        order = s.scalar(select(Order).where(Order.order_no == "T2004"))
        assert order is not None and order.customer.telegram_user_id is None
        # A day later the order may be proved again.
        for row in s.scalars(select(Throttle)):
            row.window_start -= timedelta(days=1, minutes=1)
        s.commit()
    await attacker.text("/start T2004")
    sent = await attacker.text("8000")
    assert texts_of(sent)[0] == t("en", "intake.proof_ok", order_no="T2004")


async def test_one_account_guessing_across_orders_is_stopped(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    """Ten wrong proofs a day per Telegram account, over all orders."""
    for n in range(4):
        add_unlinked(sessions, f"T21{n}")
    attacker = Customer(dp, bot, user_id=6005, language="en")
    for n in range(3):
        await attacker.text(f"/start T21{n}")
        for guess in ("0000", "0001", "0002"):
            await attacker.text(guess)
    sent = await attacker.text("/start T213")
    assert t("en", "intake.ask_proof") in texts_of(sent)
    sent = await attacker.text("0000")
    assert texts_of(sent)[0] == t("en", "intake.proof_limit")
    sent = await attacker.text("/start T213")
    assert t("en", "intake.proof_limit") in texts_of(sent)
    # The owner of that order, on their own account, still proves it.
    owner = Customer(dp, bot, user_id=6006, language="en", first_update=1000)
    await owner.text("/start T213")
    sent = await owner.text("8000")
    assert texts_of(sent)[0] == t("en", "intake.proof_ok", order_no="T213")


# ---------------------------------------------------------------- evidence


async def test_album_of_three_photos_lands_as_three_attachments_in_order(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], settings: Any
) -> None:
    add_order(sessions)
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.text("/start T1001")
    await me.press(KindCb(kind="exchange"))
    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="damaged_in_transit"))
    await me.press(NavCb(action="skip"))
    colours = ["red", "green", "blue"]
    for colour in colours:
        await me.photo(jpeg(colour), media_group_id="album-1")
    # (Its one answer, counting the whole album, is held a moment: test_bot_conversation.py.)
    await me.press(NavCb(action="done"))
    await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        assert case.status == "submitted"
        assert [a.kind for a in case.attachments] == ["photo"] * 3
        store = AttachmentStore(settings.media_dir)
        seen = []
        for a in case.attachments:
            with Image.open(store.path(a.storage_key)) as img:
                seen.append(colour_name(img))
        assert seen == colours


async def test_photo_before_any_text_is_kept_and_attached(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_order(sessions, lang="zh-CN")
    me = Customer(dp, bot, user_id=5001, language="zh-CN")
    sent = await me.photo(jpeg("red"))  # the very first thing the customer does
    assert texts_of(sent) == [
        t("zh-CN", "intake.start_with_photo"),
        t("zh-CN", "intake.ask_order_recent"),
    ]
    await me.text("T1001")
    await me.press(KindCb(kind="refund_only"))
    await me.press(ItemCb(index=1, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="missing_item"))
    sent = await me.text("少了一双袜子")
    # The photo sent first is the evidence: no evidence step, no Done, the summary.
    assert texts_of(sent)[0].startswith(t("zh-CN", "intake.evidence_ready", count=1))
    await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        assert [a.kind for a in case.attachments] == ["photo"]


async def test_album_to_an_open_case_adds_three_attachments_with_one_answer(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    answers = []
    for colour in ("red", "green", "blue"):
        answers += await me.photo(jpeg(colour), media_group_id="g2", caption=None)
    assert texts_of(answers) == [t("en", "cases.message_added", case_no=number)]
    with sessions() as s:
        case = s.scalar(select(Ticket).where(Ticket.number == number))
        assert case is not None
        assert len(case.attachments) == 3
        assert all(a.message_id is not None for a in case.attachments)
        assert [m.author for m in case.messages if m.author == "customer"] == ["customer"] * 3


async def test_a_document_that_is_a_photo_is_cleaned_and_a_fake_image_refused(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.document(jpeg("red"), name="IMG_0001.jpg", mime="image/jpeg")
    sent = await me.document(b"not really a jpeg", name="x.jpg", mime="image/jpeg")
    assert texts_of(sent) == [t("en", "intake.media_not_image")]
    with sessions() as s:
        case = s.scalar(select(Ticket).where(Ticket.number == number))
        assert case is not None
        assert [(a.kind, a.original_name) for a in case.attachments] == [("photo", "IMG_0001.jpg")]


# ---------------------------------------------------------------- guiding back


async def test_bad_input_at_each_step_gets_a_guide_back(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_order(sessions)
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.press(MenuCb(action="new"))

    sent = await me.sticker()
    assert texts_of(sent)[0] == t("en", "intake.guide_unsupported")
    assert texts_of(sent)[1] == t("en", "intake.ask_order_recent")
    sent = await me.text("no such order!")
    assert texts_of(sent) == [t("en", "intake.order_bad_format")]
    sent = await me.text("T404")
    assert texts_of(sent) == [t("en", "intake.order_not_found", order_no="T404")]

    await me.text("T1001")
    sent = await me.text("return please")  # text where a button is expected
    assert texts_of(sent)[0] == t("en", "intake.guide_button_expected")
    assert texts_of(sent)[1].startswith(t("en", "intake.ask_kind", order_no="T1001"))

    await me.press(KindCb(kind="return_refund"))
    sent = await me.press(NavCb(action="done"))  # nothing chosen yet
    assert texts_of(sent) == [t("en", "intake.items_pick_one")]
    sent = await me.press(ReasonCb(reason="no_reason"))  # a button of a later step
    assert t("en", "intake.guide_stale") in texts_of(sent)[0]

    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    sent = await me.press(NavCb(action="back"))  # back to the items
    assert texts_of(sent) == [t("en", "intake.ask_items")]
    with sessions() as s:
        assert state_of(s, 5001) == "Intake:items"

    sent = await me.press(NavCb(action="cancel"))
    assert texts_of(sent) == [t("en", "nav.cancelled")]
    with sessions() as s:
        assert state_of(s, 5001) is None
        assert s.scalar(select(func.count(Ticket.id))) == 0


# ---------------------------------------------------------------- delivery guarantees inbound


async def test_the_same_update_twice_makes_one_message(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    update = me._update(message=me._next_message(text="Where is my refund?"))
    first = await me.feed(update)
    again = await me.feed(update)
    assert texts_of(first) == [t("en", "cases.message_added", case_no=number)]
    assert again == []
    with sessions() as s:
        texts = list(
            s.scalars(select(MessageRow.text).where(MessageRow.text == "Where is my refund?"))
        )
        assert texts == ["Where is my refund?"]
        assert s.scalar(select(func.count(InboundUpdate.id))) == 1


async def test_an_answer_is_queued_with_the_update_and_survives_flood_control_and_a_crash(
    sessions: sessionmaker[Session], settings: Any, scripts: Any, bot: Bot
) -> None:
    """The answer is written with the update; Telegram saying 429 delays it, a process that
    dies before sending leaves it for the next one; it arrives once, in order."""
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    clock = [NOW]
    dp = dispatcher(sessions, settings, scripts, clock=lambda: clock[0])
    me = Customer(dp, bot, user_id=5001, language="en")
    fake = me.session
    worker = DeliveryWorker(
        bot=bot,
        sessions=sessions,
        settings=settings,
        config=FAST,
        clock=lambda: clock[0],
        monotonic=lambda: (clock[0] - NOW).total_seconds(),
    )
    await worker.drain()  # the case's opening notice, out of the way
    before = len(fake.requests)

    def to_me() -> list[str]:
        return [m.text for m in fake.requests[before:] if isinstance(m, SendMessage)]

    # No worker runs in this process (it "dies" before sending): the answers wait, queued.
    await me.text("Where is my refund?")
    await me.text("It was the green tea")
    assert to_me() == []
    with sessions() as s:
        queued = list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "bot_answer")
                .order_by(OutboxMessage.id)
            )
        )
        assert [(o.recipient, o.status, o.payload["method"]) for o in queued] == [
            ("5001", "pending", "sendMessage"),
            ("5001", "pending", "sendMessage"),
        ]
    # The next process's worker; Telegram first says "too many requests, retry after 3".
    fake.queue_error(SendMessage, 429, "Too Many Requests: retry after 3", retry_after=3)
    answer = t("en", "cases.message_added", case_no=number)
    await worker.drain()
    # Refused: it waits its 3 s, and the second answer waits behind it (order kept).
    assert to_me() == [answer]
    clock[0] = NOW + timedelta(seconds=4)
    await worker.drain()
    # Three tries in all (the first refused), each answer delivered once.
    assert to_me() == [answer] * 3
    with sessions() as s:
        statuses = s.scalars(
            select(OutboxMessage.status).where(OutboxMessage.kind == "bot_answer")
        ).all()
        assert statuses == ["sent", "sent"]


async def test_a_restart_mid_intake_continues_where_the_customer_was(
    make_dp: Callable[[], Dispatcher], bot: Bot, sessions: sessionmaker[Session]
) -> None:
    add_order(sessions)
    before = Customer(make_dp(), bot, user_id=5001, language="en")
    await before.text("/start T1001")
    await before.press(KindCb(kind="return_refund"))
    await before.press(ItemCb(index=0, delta=1))

    # The process restarts: a new Dispatcher and storage over the same database.
    after = Customer(make_dp(), bot, user_id=5001, language="en", first_update=before.update_id)
    after.message_id = before.message_id
    await after.press(ItemCb(index=1, delta=1))
    sent = await after.press(NavCb(action="done"))
    assert texts_of(sent) == [t("en", "intake.ask_reason")]
    await after.press(ReasonCb(reason="size_fit"))
    await after.press(NavCb(action="skip"))
    await after.press(NavCb(action="done"))
    await after.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        assert [(i.sku, i.quantity) for i in case.items] == [("JACKET-M", 1), ("SOCKS", 1)]


async def test_a_failing_handler_apologises_rolls_back_and_logs_the_update(
    dp: Dispatcher,
    bot: Bot,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_order(sessions)
    me = Customer(dp, bot, user_id=5001, language="en")
    await me.text("/start T1001")
    await me.press(KindCb(kind="complaint"))
    await me.press(ReasonCb(reason="service"))
    await me.text("rude on the phone")
    await me.press(NavCb(action="done"))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("tickets.self_service.submit_intake", broken)
    with caplog.at_level(logging.ERROR, logger="bot.middlewares"):
        sent = await me.press(NavCb(action="confirm"))
    assert texts_of(sent) == [t("en", "error.generic")]
    assert answered_callbacks(sent) == 1
    assert any("disk on fire" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert any('"update_id"' in r.getMessage() for r in caplog.records)
    with sessions() as s:
        assert s.scalar(select(func.count(Ticket.id))) == 0
        assert state_of(s, 5001) == "Intake:confirm"  # the customer can simply try again
    monkeypatch.undo()
    sent = await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        assert case.kind == "complaint"


# ---------------------------------------------------------------- my requests and free messages


async def test_my_requests_tracking_number_and_withdraw(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    with sessions() as s:
        ctx = context(scripts, tz=UTC_ZONE)
        perform_action(
            session=s, number=number, request=ActionRequest(action="approve"), actor=SYSTEM, ctx=ctx
        )
        s.commit()
    me = Customer(dp, bot, user_id=5001, language="en")
    sent = await me.press(MenuCb(action="mine"))
    assert texts_of(sent)[0] == t("en", "cases.header")
    assert number in texts_of(sent)[1] and t("en", "status.awaiting_return") in texts_of(sent)[1]
    assert CaseCb(number=number, action="track").pack() in buttons_of(sent)

    await me.press(CaseCb(number=number, action="track"))
    sent = await me.text("nope")
    assert texts_of(sent) == [t("en", "cases.tracking_bad")]
    sent = await me.text("SF1234567890")
    assert texts_of(sent) == [
        t("en", "cases.tracking_saved", case_no=number, tracking_no="SF1234567890")
    ]
    with sessions() as s:
        case = s.scalar(select(Ticket).where(Ticket.number == number))
        assert case is not None
        assert (case.status, case.tracking_no) == ("in_transit", "SF1234567890")
        assert (
            s.scalar(
                select(Event.actor)
                .where(Event.ticket_id == case.id, Event.type == "status.changed")
                .order_by(Event.id.desc())
                .limit(1)
            )
            == "customer"
        )

    # In transit it can no longer be withdrawn: the customer is told, nothing changes.
    sent = await me.press(CaseCb(number=number, action="withdraw_yes"))
    assert texts_of(sent) == [
        t("en", "cases.not_possible", case_no=number, status=t("en", "status.in_transit"))
    ]


async def test_withdraw_a_submitted_request(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions, lang="zh-CN")
    number = open_case_for(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="zh-CN")
    sent = await me.press(CaseCb(number=number, action="withdraw"))
    assert texts_of(sent) == [t("zh-CN", "cases.confirm_withdraw", case_no=number)]
    sent = await me.press(CaseCb(number=number, action="withdraw_yes"))
    with sessions() as s:
        case = s.scalar(select(Ticket).where(Ticket.number == number))
        assert case is not None and case.status == "cancelled"
        assert texts_of(sent) == [last_notice(s, case), t("zh-CN", "menu.prompt")]
        assert "撤销" in texts_of(sent)[0]


async def test_someone_elses_case_is_refused(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    stranger = Customer(dp, bot, user_id=7007, language="en")
    sent = await stranger.press(CaseCb(number=number, action="withdraw_yes"))
    assert texts_of(sent) == [t("en", "error.forbidden")]
    with sessions() as s:
        case = s.scalar(select(Ticket).where(Ticket.number == number))
        assert case is not None and case.status == "submitted"


async def test_free_text_goes_to_the_open_case_and_a_person_can_be_asked_for(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    me = Customer(dp, bot, user_id=8008, language="en", name="Ann")
    sent = await me.text("hello?")  # no case: the menu
    assert texts_of(sent) == [t("en", "menu.prompt")]
    await me.press(MenuCb(action="human"))
    sent = await me.text("I need help with a gift card")
    with sessions() as s:
        case = only_case(s)
        # The new case's notice says its number and when we answer; nothing said twice.
        assert texts_of(sent) == [last_notice(s, case)]
        assert (case.kind, case.reason, case.order_id) == ("complaint", "question", None)
    sent = await me.text("any news?")
    with sessions() as s:
        case = only_case(s)
        assert texts_of(sent) == [t("en", "cases.message_added", case_no=case.number)]
        assert [m.text for m in case.messages if m.author == "customer"] == ["any news?"]


async def test_language_can_be_changed(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session]
) -> None:
    from bot.keyboards import LangCb

    me = Customer(dp, bot, user_id=9009, language="zh-CN")
    await me.text("/language")
    sent = await me.press(LangCb(code="en"))
    assert texts_of(sent) == [t("en", "language.set")]
    sent = await me.text("/start")
    assert texts_of(sent)[0].startswith("Hello")
    with sessions() as s:
        row = s.scalar(select(CustomerRow).where(CustomerRow.telegram_user_id == 9009))
        assert row is not None and row.language == "en"


def test_every_language_has_every_text() -> None:
    # Texts.load refuses mismatched files; this names the two languages it checked.
    assert TEXTS.get("zh-CN", "nav.back") != TEXTS.get("en", "nav.back")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize(
    "kind", ["refund_only", "return_refund", "exchange", "complaint", "delivery"]
)
async def test_every_kind_of_request_in_both_languages(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], kind: str, lang: str
) -> None:
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text("/start T1001")
    assert KindCb(kind=kind).pack() in buttons_of(sent)
    sent = await me.press(KindCb(kind=kind))
    if kind in ("complaint", "delivery"):
        assert texts_of(sent) == [t(lang, "intake.ask_reason")]  # no goods to pick
    else:
        assert texts_of(sent) == [t(lang, "intake.ask_items")]
        await me.press(ItemCb(index=0, delta=1))
        sent = await me.press(NavCb(action="done"))
    reasons = [b for b in buttons_of(sent) if b.startswith("r:")]
    assert reasons, "the kind offers its reasons"
    await me.press(reasons[0])
    await me.text("details" if lang == "en" else "详细情况")
    await me.photo(jpeg("red"))
    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent)[0].startswith(t(lang, "intake.preview_title"))
    sent = await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        assert texts_of(sent) == [last_notice(s, case), t(lang, "menu.prompt")]
        assert (case.kind, case.language, case.channel) == (kind, lang, "telegram")
        assert case.reason == ReasonCb.unpack(reasons[0]).reason
        assert len(case.attachments) == 1
        assert bool(case.items) == (kind not in ("complaint", "delivery"))


async def test_a_file_over_the_limit_is_refused_before_downloading(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    from aiogram.methods import GetFile
    from aiogram.types import Document

    add_order(sessions)
    number = open_case_for(sessions, scripts)
    me = Customer(dp, bot, user_id=5001, language="en")
    big = Document(
        file_id="huge", file_unique_id="uh", file_name="unboxing.mov", file_size=300 * 1024**2
    )
    sent = await me.send(document=big)
    assert texts_of(sent) == [t("en", "intake.media_too_large", limit_mb=20)]
    assert not any(isinstance(r, GetFile) for r in sent)
    with sessions() as s:
        case = s.scalar(select(Ticket).where(Ticket.number == number))
        assert case is not None and case.attachments == []


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_an_order_number_typed_in_any_case_and_with_spaces_is_found(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add_order(sessions, lang=lang, data=order_json("VIC-1"))
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.press(MenuCb(action="new"))
    sent = await me.text("vic-2")
    assert texts_of(sent) == [t(lang, "intake.order_not_found", order_no="vic-2")]
    sent = await me.text("  vic - 1 ")
    assert texts_of(sent)[0].startswith(t(lang, "intake.ask_kind", order_no="VIC-1"))


def mixed_order(order_no: str = "MIX1") -> dict[str, Any]:
    """T1001's jacket and socks, and a fresh cake: no no-reason return for the cake."""
    data = order_json(order_no)
    data["lines"].append(
        {
            "sku": "CAKE",
            "title": "Birthday cake",
            "category": "fresh_food",
            "quantity": 1,
            "unit_price": "59.00",
        }
    )
    return data


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_mixed_order_offers_each_item_only_what_it_may_get(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], lang: str
) -> None:
    add_order(sessions, lang=lang, data=mixed_order())
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start MIX1")
    sent = await me.press(KindCb(kind="return_refund"))
    # Beside the items: the cake cannot go back without a reason, and why.
    items_text = texts_of(sent)[0]
    assert items_text.startswith(t(lang, "intake.ask_items"))
    assert "Birthday cake" in items_text
    why = "cannot be returned without a reason" if lang == "en" else "不支持无理由退换"
    assert why in items_text

    # The cake alone: no no-reason return offered, the reason shown; a quality claim is.
    await me.press(ItemCb(index=3, delta=1))
    sent = await me.press(NavCb(action="done"))
    assert ReasonCb(reason="no_reason").pack() not in buttons_of(sent)
    assert ReasonCb(reason="changed_mind").pack() not in buttons_of(sent)
    assert ReasonCb(reason="quality_defect").pack() in buttons_of(sent)
    assert "Birthday cake" in texts_of(sent)[0] and why in texts_of(sent)[0]
    # A reason not offered (an old button) is not taken.
    sent = await me.press(ReasonCb(reason="no_reason"))
    assert texts_of(sent)[0].startswith(t(lang, "intake.ask_reason"))

    # The jacket alone: the no-reason return is offered, with no note.
    await me.press(NavCb(action="back"))
    await me.press(ItemCb(index=3, delta=-1))
    await me.press(ItemCb(index=0, delta=1))
    sent = await me.press(NavCb(action="done"))
    assert ReasonCb(reason="no_reason").pack() in buttons_of(sent)
    assert texts_of(sent) == [t(lang, "intake.ask_reason")]

    # The jacket and the cake for a quality problem: offered, estimated and opened as shown.
    await me.press(NavCb(action="back"))
    await me.press(ItemCb(index=3, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="quality_defect"))
    await me.text("the cream was sour" if lang == "en" else "奶油变质了")
    await me.photo(jpeg("red"))
    sent = await me.press(NavCb(action="done"))
    preview = texts_of(sent)[0]
    assert t(lang, "intake.preview_refund", amount="").split("<b>")[0] in preview
    sent = await me.press(NavCb(action="confirm"))
    assert t(lang, "intake.no_longer_possible") not in texts_of(sent)
    with sessions() as s:
        case = only_case(s)
        assert (case.kind, case.reason) == ("return_refund", "quality_defect")
        assert sorted(i.sku for i in case.items) == ["CAKE", "JACKET-M"]


def open_earlier_case(
    sessions: sessionmaker[Session], scripts: Any, kind: str, before: timedelta
) -> str:
    """A case of `kind` on T1001, opened `before` the bot's now."""
    with sessions() as s:
        ticket = open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "kind": kind,
                    "reason": "size_fit" if kind != "complaint" else "service",
                    "order_no": "T1001",
                    "items": [{"sku": "SOCKS", "quantity": 1}] if kind != "complaint" else [],
                    "channel": "api",
                }
            ),
            actor=SYSTEM,
            ctx=context(scripts, now=NOW - before),
        )
        number = ticket.number
        s.commit()
    return number


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_case_in_the_way_is_named_at_once_and_words_go_to_it(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = open_earlier_case(sessions, scripts, "complaint", timedelta(minutes=5))
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text("/start T1001")
    # Right after the order: the case is named, and within the duplicate window no new
    # request of any kind is offered (each says why).
    text = texts_of(sent)[-1]
    assert t(lang, "intake.duplicate", order_no="T1001", case_no=number) in text
    assert not [b for b in buttons_of(sent) if b.startswith("k:")]
    assert t(lang, "intake.kind_has_case", case_no=number) in text
    words = "The courier was rude" if lang == "en" else "快递员态度很差"
    sent = await me.text(words)
    assert texts_of(sent) == [t(lang, "intake.added_to_case", case_no=number)]
    with sessions() as s:
        case = only_case(s)
        said = [m for m in case.messages if m.author == "customer"]
        assert [m.text for m in said] == [words]
        assert state_of(s, 5001) is None


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_an_older_open_case_blocks_only_its_own_kind(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    number = open_earlier_case(sessions, scripts, "return_refund", timedelta(hours=3))
    me = Customer(dp, bot, user_id=5001, language=lang)
    sent = await me.text("/start T1001")
    assert KindCb(kind="return_refund").pack() not in buttons_of(sent)
    assert KindCb(kind="complaint").pack() in buttons_of(sent)
    line = t(
        lang,
        "intake.kind_unavailable_line",
        kind=t(lang, "kind.return_refund"),
        why=t(lang, "intake.kind_has_case", case_no=number),
    )
    assert line in texts_of(sent)[-1]
    # Another kind goes on as usual.
    sent = await me.press(KindCb(kind="complaint"))
    assert texts_of(sent) == [t(lang, "intake.ask_reason")]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_case_opened_meanwhile_gets_what_was_typed_at_submit(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any, lang: str
) -> None:
    add_order(sessions, lang=lang)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start T1001")
    await me.press(KindCb(kind="complaint"))
    await me.press(ReasonCb(reason="service"))
    words = "The courier was rude" if lang == "en" else "快递员态度很差"
    await me.text(words)
    await me.press(NavCb(action="done"))
    # Meanwhile an agent opened a case on the order (by phone, say).
    number = open_earlier_case(sessions, scripts, "complaint", timedelta(0))
    sent = await me.press(NavCb(action="confirm"))
    assert texts_of(sent) == [t(lang, "intake.added_to_case", case_no=number)]
    with sessions() as s:
        case = only_case(s)
        assert [m.text for m in case.messages if m.author == "customer"] == [words]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_refund_only_held_by_risk_says_so_on_the_case_and_to_the_customer(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], settings: Any, lang: str
) -> None:
    # A first order placed three hours ago, not shipped: the new-customer signal holds the
    # automatic approval (the default rule takes no risk signal).
    placed = (NOW - timedelta(hours=3)).isoformat()
    data = order_json(
        "T9", status="paid", placed_at=placed, paid_at=placed, shipped_at=None, delivered_at=None
    )
    add_order(sessions, lang=lang, data=data)
    me = Customer(dp, bot, user_id=5001, language=lang)
    await me.text("/start T9")
    await me.press(KindCb(kind="refund_only"))
    await me.press(ItemCb(index=0, delta=1))
    await me.press(NavCb(action="done"))
    await me.press(ReasonCb(reason="changed_mind"))
    await me.press(NavCb(action="skip"))
    await me.press(NavCb(action="done"))
    sent = await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = only_case(s)
        assert (case.status, case.risk_level) == ("submitted", "medium")
        # The customer is told a person checks it, and by when: the review clock's due time
        # (business hours included), not a count of hours that ignores them.
        held = last_notice(s, case)
        assert held in texts_of(sent)
        review = s.scalars(
            select(SlaClock).where(SlaClock.ticket_id == case.id, SlaClock.clock == "review")
        ).one()
        assert format_moment(review.due_at, lang, settings.tz) in held
        assert ("a member of our team will review it" if lang == "en" else "人工") in held
        # The agents read on the case which signal held it.
        notes = [m.text for m in case.messages if m.author == "system"]
        assert any("new_customer" in n for n in notes), notes
        events = list(s.scalars(select(Event).where(Event.ticket_id == case.id)))
        held_events = [e for e in events if e.type == "automation.held"]
        assert held_events and held_events[0].data["signals"] == ["new_customer"]
