"""The conversation's draft as a typed value (bot/draft.py): a conversation the previous version
stored as a plain dict goes on after an upgrade, through the real Dispatcher and storage."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import StorageKey
from aiogram.methods import AnswerCallbackQuery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.i18n import Texts
from bot.keyboards import ItemCb, NavCb, ReasonCb
from bot.routers.customer.states import Intake, Tracking
from tests.factories import UTC_ZONE, add_order, context, open_case_for
from tests.fakes.telegram import Customer, jpeg, texts_of
from tickets.cases.lifecycle import perform_action
from tickets.context import SYSTEM
from tickets.models import Ticket
from tickets.schemas import ActionRequest
from tickets.storage import AttachmentStore

pytestmark = pytest.mark.usefixtures("db_guard")

TEXTS = Texts.load()


def t(key: str, **values: Any) -> str:
    return TEXTS.get("en", key, **values)


async def stored_as_before(
    dp: Dispatcher, bot: Bot, user_id: int, state: State, data: dict[str, Any]
) -> None:
    """The conversation as the previous version left it in the FSM storage."""
    key = StorageKey(bot_id=bot.id, chat_id=user_id, user_id=user_id)
    await dp.fsm.storage.set_state(key, state.state)
    await dp.fsm.storage.set_data(key, data)


async def test_an_intake_begun_before_the_upgrade_goes_on_to_a_case(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], settings: Any
) -> None:
    add_order(sessions)
    photo = AttachmentStore(settings.media_dir).store_photo(jpeg("red"))
    # At the items step, as the previous version wrote it (dicts built in place): its lines
    # from before "bought" was kept, no categories yet, a photo sent before any words.
    await stored_as_before(
        dp,
        bot,
        5001,
        Intake.items,
        {
            "evidence": [
                {**photo.to_dict(), "message_id": 90, "media_group_id": None, "caption": "seam"}
            ],
            "recent": ["T1001"],
            "order_no": "T1001",
            "proof_tries": 0,
            "chosen": {},
            "kind": "return_refund",
            "items_auto": False,
            "existing_case": None,
            "reason": None,
            "reasons": ["quality_defect"],
            "reason_notes": [],
            "lines": [
                {"sku": "JACKET-M", "title": "羽绒服 M", "free": 1},
                {"sku": "SOCKS", "title": "袜子", "free": 2},
                {"sku": "TEA", "title": "Green tea", "free": 3},
            ],
        },
    )
    me = Customer(dp, bot, user_id=5001, language="en")

    await me.press(ItemCb(index=0, delta=1))
    sent = await me.press(ItemCb(index=0, delta=1))
    # Past the most: said on the button, the line's free units standing for what was bought.
    [answer] = [r for r in sent if isinstance(r, AnswerCallbackQuery)]
    assert answer.text == TEXTS.plain("en", "intake.items_most", bought=1, most=1)

    sent = await me.press(NavCb(action="done"))
    assert texts_of(sent)[0].startswith(t("intake.ask_reason"))
    await me.press(ReasonCb(reason="quality_defect"))
    # The photo kept before the upgrade is the evidence: the summary at once.
    sent = await me.text("The zip broke")
    assert texts_of(sent)[0].startswith(t("intake.evidence_ready", count=1))

    await me.press(NavCb(action="confirm"))
    with sessions() as s:
        case = s.scalars(select(Ticket)).one()
        assert (case.kind, case.reason) == ("return_refund", "quality_defect")
        assert [(i.sku, i.quantity) for i in case.items] == [("JACKET-M", 1)]
        assert [a.storage_key for a in case.attachments] == [photo.storage_key]
        assert "The zip broke" in case.description and "seam" in case.description


async def test_a_tracking_number_asked_before_the_upgrade_is_recorded_on_its_case(
    dp: Dispatcher, bot: Bot, sessions: sessionmaker[Session], scripts: Any
) -> None:
    add_order(sessions)
    number = open_case_for(sessions, scripts)
    with sessions() as s:
        approve = ActionRequest(action="approve")
        ctx = context(scripts, tz=UTC_ZONE)
        perform_action(session=s, number=number, request=approve, actor=SYSTEM, ctx=ctx)
        s.commit()
    await stored_as_before(dp, bot, 5001, Tracking.number, {"case_no": number})
    me = Customer(dp, bot, user_id=5001, language="en")

    sent = await me.text("SF1234567890")

    assert texts_of(sent) == [t("cases.tracking_saved", case_no=number, tracking_no="SF1234567890")]
    with sessions() as s:
        case = s.scalars(select(Ticket).where(Ticket.number == number)).one()
        assert (case.status, case.tracking_no) == ("in_transit", "SF1234567890")
