"""The menu, the language and the commands (/start, /start ORDER, /menu, /help, /cancel,
/language)."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from sqlalchemy.orm import Session

from bot import keyboards
from bot.keyboards import (
    LangCb,
    MenuCb,
    NavCb,
)
from bot.replies import Replies
from bot.routers.customer.intake import start_intake
from bot.routers.customer.my_cases import list_cases
from bot.routers.customer.states import ORDER_NO, Intake, Talk
from bot.routers.customer.steps import ask, reset, show_menu
from bot.routers.handlers import Handlers
from tickets import self_service
from tickets.context import Context
from tickets.customers import set_language as choose_language
from tickets.models import Customer

handlers = Handlers()


def own_name(message: Message) -> str:
    """The name the customer gave Telegram: the one to greet them by. The order's name (on
    their record once an order is proved theirs) is the recipient's, for agents and parcels."""
    user = message.from_user
    return user.first_name if user is not None and user.first_name else ""


@handlers.message(CommandStart(deep_link=True))
async def start_with_order(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """/start ORDERNO from a shop's order page: straight into the request for that order."""
    payload = (command.args or "").strip()
    if not ORDER_NO.match(payload):
        await reset(state, keep_evidence=True)
        await show_menu(reply, "menu.greeting", name=own_name(message), shop=svc.shop_name)
        return
    reply.say("menu.greeting_short", name=own_name(message), shop=svc.shop_name)
    await start_intake(
        state=state, db=db, customer=customer, reply=reply, svc=svc, order_no=payload
    )


@handlers.message(CommandStart())
async def start(message: Message, state: FSMContext, reply: Replies, svc: Context) -> None:
    """/start: greeting and menu (files already sent are kept)."""
    await reset(state, keep_evidence=True)
    await show_menu(reply, "menu.greeting", name=own_name(message), shop=svc.shop_name)


@handlers.message(Command("help"))
async def help_command(message: Message, reply: Replies, svc: Context) -> None:
    """/help: what the bot can do and how to reach a person, with the menu. A request being
    filled in is kept: its step's buttons still work, /menu or /cancel leave it."""
    await show_menu(reply, "menu.help", shop=svc.shop_name)


@handlers.message(Command("menu"))
async def menu(message: Message, state: FSMContext, reply: Replies) -> None:
    """/menu: back to the menu from anywhere (files already sent are kept)."""
    await reset(state, keep_evidence=True)
    await show_menu(reply)


@handlers.message(Command("cancel"))
async def cancel_command(message: Message, state: FSMContext, reply: Replies) -> None:
    """/cancel: drop the request being filled in, files included."""
    await reset(state, keep_evidence=False)
    await show_menu(reply, "nav.cancelled")


@handlers.message(Command("language"))
async def language_command(message: Message, reply: Replies) -> None:
    """/language: offer both languages."""
    reply.say("language.prompt", keyboards.languages())


@handlers.callback(LangCb.filter())
async def set_language(
    query: CallbackQuery, callback_data: LangCb, db: Session, customer: Customer, reply: Replies
) -> None:
    """The customer's language, kept on their record as their choice (Telegram's language no
    longer overrides it)."""
    if callback_data.code in ("zh-CN", "en"):
        choose_language(db, customer, callback_data.code, chosen=True)
        reply.language = callback_data.code
    reply.answer_callback()
    await show_menu(reply, "language.set")


@handlers.callback(MenuCb.filter())
async def menu_choice(
    query: CallbackQuery,
    callback_data: MenuCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """A main-menu button: new request, my requests, a person, language."""
    reply.answer_callback()
    action = callback_data.action
    if action == "new":
        if await state.get_state() == Intake.confirm.state:
            # An old "New request" under a finished request: never drop it unasked.
            reply.say("intake.ready_to_send", keyboards.ready_to_send(reply.t))
            return
        await start_intake(state=state, db=db, customer=customer, reply=reply, svc=svc)
    elif action == "mine":
        await reset(state, keep_evidence=True)
        list_cases(db, customer, reply, svc)
    elif action == "human":
        await reset(state, keep_evidence=True)
        case = self_service.latest_open_case(db, customer)
        if case is not None:
            reply.say("human.prompt_case", case_no=case.number)
        else:
            await state.set_state(Talk.message)
            reply.say("human.prompt", keyboards.only_nav(reply.t, back=False))
    else:
        reply.say("language.prompt", keyboards.languages())


@handlers.callback(Intake.confirm, NavCb.filter(F.action.in_({"discard", "edit"})))
async def ready_request_choice(
    query: CallbackQuery,
    callback_data: NavCb,
    state: FSMContext,
    db: Session,
    customer: Customer,
    reply: Replies,
    svc: Context,
) -> None:
    """The answer to "a request is ready to send" (its "send it" is the summary's Submit):
    discard it, files included, and begin the new one; or back to its summary."""
    reply.answer_callback()
    if callback_data.action == "discard":
        await reset(state, keep_evidence=False)
        reply.say("intake.ready_discarded")
        await start_intake(state=state, db=db, customer=customer, reply=reply, svc=svc)
        return
    await ask("confirm", state=state, db=db, customer=customer, reply=reply, svc=svc)
