"""The bot's buttons: typed callback data and the keyboards of each step.

Labels come from the texts (a `t(key, **values)` function in the customer's language); callback
data carries codes and indexes only, never free text, and stays within Telegram's 64 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.draft import OrderLine
from tickets.messages.payloads import Notice, OutboxPayload

if TYPE_CHECKING:
    from bot.i18n import Texts

T = Callable[..., str]


class MenuCb(CallbackData, prefix="m"):
    """A main-menu choice: new, mine, human, language."""

    action: str


class LangCb(CallbackData, prefix="lang"):
    code: str


class NavCb(CallbackData, prefix="nav"):
    """Moving through the intake: back, cancel, done, skip, confirm; discard and edit (a
    finished request met on the way to a new one)."""

    action: str


class OrderCb(CallbackData, prefix="o"):
    """One of the customer's recent orders, by its position in the list offered."""

    index: int


class KindCb(CallbackData, prefix="k"):
    kind: str


class ItemCb(CallbackData, prefix="it"):
    """Change the quantity of the order line at `index` by `delta`."""

    index: int
    delta: int


class ReasonCb(CallbackData, prefix="r"):
    reason: str


class CaseCb(CallbackData, prefix="c"):
    """An action on one of the customer's cases: track, pickup, withdraw, withdraw_yes,
    refund_anyway, send_back."""

    number: str
    action: str


class SlotCb(CallbackData, prefix="ps"):
    """A pickup time slot: the local day (YYYYMMDD) and the part of it (am, pm)."""

    day: str
    slot: str


class AddressCb(CallbackData, prefix="pa"):
    """Pick up at the order's own address."""

    use: str = "order"


class RateCb(CallbackData, prefix="sat"):
    """A satisfaction score (1-5; 0 skips the comment) for the case with this id."""

    ticket: int
    score: int


class AgentCb(CallbackData, prefix="ag"):
    """A button under an agents' card: take (assign it to me)."""

    action: str
    number: str


def _rows(*rows: Sequence[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup.model_construct(inline_keyboard=[list(r) for r in rows if r])


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return _button_of(text, data.pack())


@lru_cache(maxsize=4096)
def _button_of(text: str, packed: str) -> InlineKeyboardButton:
    # Built once per label and data (buttons are frozen, so one object serves every keyboard
    # that shows it), and without pydantic's validation: both are already strings. Building
    # one costs ~17 us; a keyboard of the items step (rebuilt on every press) has eleven.
    return InlineKeyboardButton.model_construct(text=text, callback_data=packed)


def nav_row(t: T, *, back: bool = True, extra: Sequence[str] = ()) -> list[InlineKeyboardButton]:
    """Back and cancel, with `extra` navigation actions (done, skip, confirm) first."""
    row = [_button(t(f"nav.{a}"), NavCb(action=a)) for a in extra]
    if back:
        row.append(_button(t("nav.back"), NavCb(action="back")))
    row.append(_button(t("nav.cancel"), NavCb(action="cancel")))
    return row


def main_menu(t: T) -> InlineKeyboardMarkup:
    """New request, my requests, a person, language."""
    return _rows(
        [_button(t("menu.btn_new"), MenuCb(action="new"))],
        [_button(t("menu.btn_mine"), MenuCb(action="mine"))],
        [
            _button(t("menu.btn_human"), MenuCb(action="human")),
            _button(t("menu.btn_language"), MenuCb(action="language")),
        ],
    )


def languages() -> InlineKeyboardMarkup:
    """Both languages, each named in its own words."""
    # Each language in its own words, whatever the current one is.
    return _rows(
        [
            _button("中文", LangCb(code="zh-CN")),
            _button("English", LangCb(code="en")),
        ]
    )


def only_nav(t: T, *, back: bool = True, extra: Sequence[str] = ()) -> InlineKeyboardMarkup:
    """Just the navigation row (and `extra` actions)."""
    return _rows(nav_row(t, back=back, extra=extra))


def ready_to_send(t: T) -> InlineKeyboardMarkup:
    """A finished request met on the way to a new one: send it, discard it, or keep editing."""
    return _rows(
        [_button(t("intake.btn_send_ready"), NavCb(action="confirm"))],
        [_button(t("intake.btn_discard_ready"), NavCb(action="discard"))],
        [_button(t("intake.btn_keep_editing"), NavCb(action="edit"))],
    )


def recent_orders(t: T, order_nos: Sequence[str]) -> InlineKeyboardMarkup:
    """The customer's recent orders, by position, and cancel."""
    rows = [[_button(no, OrderCb(index=i))] for i, no in enumerate(order_nos)]
    return _rows(*rows, nav_row(t, back=False))


def share_contact(t: T) -> ReplyKeyboardMarkup:
    """The reply keyboard that shares the customer's own phone number."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t("intake.btn_share_contact"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def kinds(t: T, allowed: Sequence[str]) -> InlineKeyboardMarkup:
    """The kinds of request open for the order."""
    rows = [[_button(t(f"kind.{k}"), KindCb(kind=k))] for k in allowed]
    return _rows(*rows, nav_row(t))


def items(t: T, lines: Sequence[OrderLine], chosen: dict[str, int]) -> InlineKeyboardMarkup:
    """One row per order line: − label +; lines with nothing left show why, without buttons."""
    rows: list[list[InlineKeyboardButton]] = []
    for i, line in enumerate(lines):
        qty, free = chosen.get(line.sku, 0), line.free
        if free <= 0:
            label = t("intake.item_none_left", title=line.title)
            rows.append([_button(label, ItemCb(index=i, delta=0))])
            continue
        rows.append(
            [
                _button("−", ItemCb(index=i, delta=-1)),
                _button(
                    t("intake.item_button", title=line.title, qty=qty, max=free),
                    ItemCb(index=i, delta=0),
                ),
                _button("+", ItemCb(index=i, delta=1)),
            ]
        )
    return _rows(*rows, nav_row(t, extra=("done",)))


def reasons(t: T, codes: Sequence[str]) -> InlineKeyboardMarkup:
    """The reasons the kind offers."""
    rows = [[_button(t(f"reason.{c}"), ReasonCb(reason=c))] for c in codes]
    return _rows(*rows, nav_row(t))


def case_actions(
    t: T, number: str, *, track: bool, withdraw: bool, pickup: bool = False
) -> InlineKeyboardMarkup:
    """What the customer may do on one case now."""
    rows = []
    if track:
        rows.append([_button(t("cases.btn_track"), CaseCb(number=number, action="track"))])
    if pickup:
        rows.append([_button(t("cases.btn_pickup"), CaseCb(number=number, action="pickup"))])
    if withdraw:
        rows.append([_button(t("cases.btn_withdraw"), CaseCb(number=number, action="withdraw"))])
    return _rows(*rows)


def confirm_withdraw(t: T, number: str) -> InlineKeyboardMarkup:
    """Withdraw for real, or cancel."""
    return _rows(
        [
            _button(t("cases.btn_withdraw_yes"), CaseCb(number=number, action="withdraw_yes")),
            _button(t("nav.cancel"), NavCb(action="cancel")),
        ]
    )


def pickup_slots(t: T, slots: Sequence[tuple[str, str, str]]) -> InlineKeyboardMarkup:
    """One row per working day: its morning and afternoon, as (day, slot, label) triples."""
    by_day: dict[str, list[InlineKeyboardButton]] = {}
    for day, slot, label in slots:
        by_day.setdefault(day, []).append(_button(label, SlotCb(day=day, slot=slot)))
    return _rows(*by_day.values(), nav_row(t, back=False))


def pickup_address(t: T, *, has_address: bool) -> InlineKeyboardMarkup:
    """Use the order's address (when it has one), or cancel."""
    first = [_button(t("pickup.btn_use_address"), AddressCb())] if has_address else []
    return _rows(first, nav_row(t, back=False))


def refused_goods(t: T, number: str) -> InlineKeyboardMarkup:
    """The choices after goods were refused on inspection: the refund anyway, the item back."""
    return _rows(
        [_button(t("cases.btn_refund_anyway"), CaseCb(number=number, action="refund_anyway"))],
        [_button(t("cases.btn_send_back"), CaseCb(number=number, action="send_back"))],
    )


def satisfaction(t: T, ticket_id: int) -> InlineKeyboardMarkup:
    """1 to 5, worst to best, on one row."""
    return _rows(
        [
            _button(t("satisfaction.btn_score", score=n), RateCb(ticket=ticket_id, score=n))
            for n in range(1, 6)
        ]
    )


def skip_comment(t: T, ticket_id: int) -> InlineKeyboardMarkup:
    """No comment, thanks."""
    return _rows([_button(t("satisfaction.btn_skip"), RateCb(ticket=ticket_id, score=0))])


def panel_url(public_url: str, number: str) -> str:
    """The case's page in the agents' panel."""
    return f"{public_url.rstrip('/')}/panel/cases/{number}"


def agent_card(
    t: T, number: str, *, public_url: str | None, take: bool = True
) -> InlineKeyboardMarkup | None:
    """Take it (assign to the agent pressing it) and open in the panel (a link); None when
    there is nothing to show."""
    row: list[InlineKeyboardButton] = []
    if take:
        row.append(_button(t("agents.btn_take"), AgentCb(action="take", number=number)))
    if public_url:
        row.append(
            InlineKeyboardButton(text=t("agents.btn_panel"), url=panel_url(public_url, number))
        )
    return _rows(row) if row else None


def customer_markup(
    texts: Texts, message: OutboxPayload, ticket_id: int | None
) -> InlineKeyboardMarkup | None:
    """The buttons a notice to a customer carries, in its language, on any chat (Telegram, the
    web chat): a notice asking for a rating gets the 1-5 buttons; one asking to ship the return
    gets "tracking number" and "book a pickup"; one refusing goods the shop has back, the
    customer's choices (refund anyway, send back)."""
    if not isinstance(message, Notice):
        return None
    language = message.language or "zh-CN"

    def tc(key: str, **values: Any) -> str:
        return texts.get(language, key, **values)

    # A notice whose script asks for a rating (`asks_rating`, tickets/messages/notices.py).
    if message.keyboard == "satisfaction" and ticket_id is not None:
        return satisfaction(tc, ticket_id)
    # A notice asking to ship the return (SHIPPING_NOTICES): the two ways of doing it.
    if message.keyboard == "return_shipping" and message.case_no:
        return case_actions(tc, message.case_no, track=True, pickup=True, withdraw=False)
    # A notice refusing goods the shop has back (CHOICE_NOTICES): the customer's choices.
    if message.keyboard == "refused_goods" and message.case_no:
        return refused_goods(tc, message.case_no)
    return None
