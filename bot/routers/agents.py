"""The agents' side of the bot, in the agents' group chat (AFTERSALES_AGENT_CHAT_ID): the
buttons under the cards the delivery worker posts there, and replies to those cards.

- "Take it" assigns the case to the agent who pressed it (the `assign` action, as that agent,
  exactly as the panel's "take" does); a case a colleague has already taken is not taken from
  them: the presser is told who has it.
- A Telegram reply to a card (or to any message of the bot naming a case) answers the customer
  on that case, as that agent (`add_reply`): it goes through the outbox like a panel reply. A
  photo, video or file sent as that reply is stored like a customer's evidence (checked, its
  location metadata stripped), shown on the case, and sent to the customer with its caption.

Agents are matched by `Agent.telegram_user_id` (the middleware injects `agent`); someone whose
Telegram account is linked to no active agent is told, privately when the Telegram API allows
it, to ask an admin to link it. Anything else said in the group is the agents' own talk: the
bot stays silent.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import keyboards
from bot.keyboards import AgentCb
from bot.media import Media, rejection_text
from bot.replies import Replies
from bot.routers.handlers import Handlers
from tickets.cases.conversation import add_reply
from tickets.cases.events import case_number_in
from tickets.cases.lifecycle import perform_action
from tickets.context import Actor, Context
from tickets.exceptions import DomainError
from tickets.models import Agent, Ticket
from tickets.schemas import ActionRequest, ReplyCreate
from tickets.self_service import attachments_from
from tickets.storage import AttachmentStore

REPLY_MAX = 4096


# Filters are async on purpose: aiogram runs a synchronous filter (a magic `F.chat.id`, a plain
# function) in a worker thread, one thread hop per check on every update.


class InChat(Filter):
    """The update comes from this chat: the message's, or the chat of the message a button was
    pressed under (as `F.chat.id == chat_id` / `F.message.chat.id == chat_id`)."""

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id

    async def __call__(self, event: Message | CallbackQuery) -> bool:
        message = event if isinstance(event, Message) else event.message
        return message is not None and message.chat.id == self.chat_id


class RepliesToBot(Filter):
    """The message answers one of the bot's own messages."""

    async def __call__(self, message: Message, bot: Bot) -> bool:
        return answers_the_bot(message, bot)


def answers_the_bot(message: Message, bot: Bot) -> bool:
    """The message is a Telegram reply to one of this bot's own messages."""
    target = message.reply_to_message
    return target is not None and target.from_user is not None and target.from_user.id == bot.id


def case_of(message: Message, prefix: str) -> str | None:
    """The case a message of the bot is about: its "take it" button's case, else the first
    case number in its text."""
    markup = message.reply_markup
    if markup is not None:
        for row in markup.inline_keyboard:
            for button in row:
                data = button.callback_data or ""
                if data.startswith(AgentCb.__prefix__ + ":"):
                    return AgentCb.unpack(data).number
    return case_number_in(message.text or message.caption or "", prefix)


handlers = Handlers()


@handlers.callback(AgentCb.filter(F.action == "take"))
async def take(
    query: CallbackQuery,
    callback_data: AgentCb,
    db: Session,
    agent: Agent | None,
    reply: Replies,
    svc: Context,
    public_url: str | None,
) -> None:
    """Take it: the case is assigned to the agent who pressed. (`public_url` comes from the
    dispatcher's data: bot/runtime.py.)"""
    number = callback_data.number
    if agent is None:
        reply.answer_callback(
            reply.plain("agents.not_linked", user_id=query.from_user.id), alert=True
        )
        return
    assignee = db.scalar(
        select(Agent).join(Ticket, Ticket.assignee_id == Agent.id).where(Ticket.number == number)
    )
    if assignee is not None and assignee.id == agent.id:
        reply.answer_callback(reply.plain("agents.already_yours", case_no=number))
        return
    if assignee is not None:
        # Taken meanwhile (another card's button, the panel): "take it" never takes a case
        # from a colleague; a lead reassigns in the panel. The stale button goes.
        reply.answer_callback(
            reply.plain(
                "agents.taken_by_other",
                case_no=number,
                agent=assignee.display_name or assignee.username,
            ),
            alert=True,
        )
        if query.message is not None:
            reply.edit_markup(
                query.message.message_id,
                keyboards.agent_card(reply.t, number, public_url=public_url, take=False),
            )
        return
    try:
        with db.begin_nested():
            perform_action(
                session=db,
                number=number,
                request=ActionRequest(action="assign", assignee=agent.username),
                actor=Actor(kind="agent", agent=agent),
                ctx=svc,
            )
    except DomainError as exc:
        reply.answer_callback(
            reply.plain("agents.not_possible", case_no=number, why=exc.message), alert=True
        )
        return
    reply.answer_callback(reply.plain("agents.taken_toast", case_no=number))
    # The group learns who took it from the case's cards, this one included, which the
    # delivery worker edits (the assignment queued that: tickets/cases/ `_assign`).


@handlers.message(RepliesToBot())
async def reply_to_card(
    message: Message,
    db: Session,
    agent: Agent | None,
    reply: Replies,
    svc: Context,
    media: list[Media],
    store: AttachmentStore,
) -> None:
    """A reply to one of the bot's messages about a case: the answer (words, a photo or a
    file with its caption) goes to the customer."""
    assert message.reply_to_message is not None
    number = case_of(message.reply_to_message, svc.case_prefix)
    if agent is None:
        user_id = message.from_user.id if message.from_user is not None else "?"
        reply.send_text(reply.t("agents.not_linked", user_id=user_id), reply_to=message.message_id)
        return
    if number is None:
        reply.send_text(reply.t("agents.reply_no_case"), reply_to=message.message_id)
        return
    refused = [m for m in media if m.stored is None]
    if refused:
        reply.send_text(
            rejection_text(refused[0], reply.t, store.limits), reply_to=message.message_id
        )
        return
    text = (message.text or message.caption or "").strip()
    files = [{**m.stored.to_dict(), "message_id": m.message_id} for m in media if m.stored]
    if not text and not files:
        reply.send_text(reply.t("agents.reply_empty"), reply_to=message.message_id)
        return
    try:
        with db.begin_nested():
            add_reply(
                session=db,
                number=number,
                reply=ReplyCreate(text=text[:REPLY_MAX]),
                actor=Actor(kind="agent", agent=agent),
                ctx=svc,
                attachments=attachments_from(files, svc),
            )
    except DomainError as exc:
        reply.send_text(
            reply.t("agents.not_possible", case_no=number, why=exc.message),
            reply_to=message.message_id,
        )
        return
    reply.send_text(reply.t("agents.reply_sent", case_no=number), reply_to=message.message_id)


def make_router(*, chat_id: int) -> Router:
    """The agents' router: updates of the agents' chat only."""
    router = Router(name="agents")
    router.message.filter(InChat(chat_id))
    router.callback_query.filter(InChat(chat_id))
    handlers.register(router)
    return router
