"""The customer and the case, over HTTP: the customer's history beside a case (same
customer, linked accounts, same phone, same address) and the risk signals that open exactly
what they counted; agents' files in replies; the phone-call form; a reply from a stale page;
and the API's contract fixes (no default inspection outcome, no approve button for the
proposer, the approvals list).
Over 500 lines as one file: its sections (marked below) share the panel, case and delivery
fixtures and helpers.
"""

from __future__ import annotations

import functools
import io
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.delivery import DeliveryWorker
from bot.i18n import Texts
from tests.conftest import Panel, in_thread
from tests.factories import case_row, make_case, recent_order_json
from tests.fakes.clock import Clock
from tests.fakes.telegram import FAST
from tickets.context import Context
from tickets.models import Attachment, Customer, Message, Order, OutboxMessage, Ticket, utcnow
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn


def _who(n: int, phone: str | None = None) -> dict[str, Any]:
    return {"name": f"客户{n}", "phone": phone or f"1390000{n:04d}", "telegram_user_id": 80000 + n}


def _history_numbers(page: str) -> list[str]:
    return re.findall(r'data-history-case="([^"]+)"', page)


def _history_orders(page: str) -> list[str]:
    return re.findall(r'data-history-order="([^"]+)"', page)


def _order(sessions: sessionmaker[Session], ctx: Context, order_no: str, **over: Any) -> None:
    with sessions() as s:
        upsert_order(
            session=s,
            data=OrderIn.model_validate(recent_order_json(order_no, ctx.now, **over)),
            now=ctx.now,
        )
        s.commit()


# ---------------------------------------------------------------- customer history


def test_a_case_lists_the_customers_other_cases_and_orders_with_why(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    first = make_case(sessions, ctx, "H1", customer=_who(1))
    second = make_case(sessions, ctx, "H2", customer=_who(1))
    # Another phone of the same person, linked to the first customer's account.
    other_phone = make_case(sessions, ctx, "H3", customer=_who(3))
    # A stranger's order to the same address (a different address for everyone else).
    _order(sessions, ctx, "H4", customer=_who(4), address="北京市朝阳区建国路 1 号")
    _order(sessions, ctx, "H5", customer=_who(5), address="北京市朝阳区建国路 1 号")
    unrelated = make_case(sessions, ctx, "H6", customer=_who(6))
    with sessions() as s:
        c1 = s.scalar(select(Customer).where(Customer.phone == _who(1)["phone"]))
        assert c1 is not None
        s.execute(
            update(Customer).where(Customer.phone == _who(3)["phone"]).values(linked_to_id=c1.id)
        )
        s.execute(
            update(Order).where(Order.order_no == "H2").values(address="北京市朝阳区建国路 1 号")
        )
        s.commit()

    page = alice.get(f"/panel/cases/{second}")
    assert page.status_code == 200
    cases = _history_numbers(page.text)
    # Newest first; this case itself and the stranger's case are not listed.
    assert cases == [other_phone, first]
    assert unrelated not in cases and second not in cases
    assert re.search(rf'data-history-case="{other_phone}".*?linked account', page.text, re.S)
    assert re.search(rf'data-history-case="{first}".*?same customer', page.text, re.S)
    orders = _history_orders(page.text)
    assert set(orders) == {"H1", "H3", "H4", "H5"}
    assert re.search(r'data-history-order="H5".*?same address', page.text, re.S)
    assert f'href="/panel/cases/{first}"' in page.text
    assert 'href="/panel?queue=all&amp;q=H4"' in page.text


def test_the_history_is_bounded_with_a_count(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context, monkeypatch: Any
) -> None:
    numbers = [make_case(sessions, ctx, f"B{i}", customer=_who(7)) for i in range(4)]
    settings = alice.client.app.state.settings  # type: ignore[attr-defined]  # a FastAPI app
    monkeypatch.setitem(settings.__dict__, "panel_history_limit", 2)
    page = alice.get(f"/panel/cases/{numbers[-1]}")
    assert _history_numbers(page.text) == [numbers[2], numbers[1]]
    assert 'data-count="cases">3<' in page.text
    # The full list is a click away.
    full = alice.get(f"/panel/cases/{numbers[-1]}/history")
    assert _history_numbers(full.text) == [numbers[2], numbers[1], numbers[0]]


def test_a_repeat_claims_signal_opens_exactly_the_cases_it_counted(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    old = make_case(sessions, ctx, "R0", customer=_who(8))
    with sessions() as s:
        # Long before the 30-day window: not counted.
        s.execute(
            update(Ticket)
            .where(Ticket.number == old)
            .values(created_at=ctx.now.replace(year=ctx.now.year - 1))
        )
        s.commit()
    counted = [make_case(sessions, ctx, f"R{i}", customer=_who(8)) for i in range(1, 4)]
    third = counted[-1]
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == third))
        assert ticket is not None
        codes = [sig["code"] for sig in ticket.risk_signals]
    assert "repeat_claims" in codes
    page = alice.get(f"/panel/cases/{third}")
    assert f'href="/panel/cases/{third}/history?signal=repeat_claims"' in page.text
    listed = alice.get(f"/panel/cases/{third}/history?signal=repeat_claims")
    assert listed.status_code == 200
    assert sorted(_history_numbers(listed.text)) == sorted(counted)
    assert old not in listed.text
    # The customer's whole history still has the old one.
    assert old in _history_numbers(alice.get(f"/panel/cases/{third}/history").text)


# ---------------------------------------------------------------- agents' files in replies

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _telegram_on(panel: Panel) -> None:
    """Replies to a Telegram customer are queued for the bot (the test app runs none)."""
    from tickets.messages.outbox import DEFAULT_CHANNELS

    panel.client.app.state.channels = DEFAULT_CHANNELS  # type: ignore[attr-defined]


def _replies(sessions: sessionmaker[Session], number: str) -> list[OutboxMessage]:
    with sessions() as s:
        ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
        return list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.ticket_id == ticket_id, OutboxMessage.kind == "reply")
                .order_by(OutboxMessage.id)
            )
        )


async def test_an_agent_attaches_a_photo_and_a_pdf_and_the_customer_gets_them_cleaned(
    alice: Panel,
    sessions: sessionmaker[Session],
    ctx: Context,
    bot: Any,
    fake: Any,
    settings: Any,
) -> None:
    from aiogram.methods import SendDocument, SendMessage, SendPhoto
    from aiogram.types import BufferedInputFile
    from PIL import Image

    from tests.fakes.telegram import jpeg

    _telegram_on(alice)
    number = make_case(sessions, ctx, "F1", customer=_who(20))
    sent = await in_thread(
        lambda: alice.post(
            f"/panel/cases/{number}/reply",
            {"text": "Here is the label and the size chart"},
            files=[
                ("files", ("label.pdf", PDF, "application/pdf")),
                ("files", ("chart.jpg", jpeg("blue", gps=True), "image/jpeg")),
            ],
        )
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"].endswith("done=reply")
    page = await in_thread(lambda: alice.get(f"/panel/cases/{number}"))
    # On the case, in the agent's message: the photo's thumbnail and the PDF as a file.
    assert re.search(r'class="msg agent.*?<img src="/panel/files/\d+\?thumb=1"', page.text, re.S)
    assert "document · " in page.text
    rows = _replies(sessions, number)
    assert [r.payload.get("attachment", {}).get("kind") for r in rows] == [
        None,
        "document",
        "photo",
    ]

    worker = DeliveryWorker(
        bot=bot,
        sessions=sessions,
        settings=settings,
        config=FAST,
        texts=Texts.load(),
        clock=Clock(utcnow() + timedelta(minutes=1)),
    )
    await worker.drain()
    to_customer = [r for r in fake.requests if getattr(r, "chat_id", None) == 80020]
    # After the case's own notices: the reply's text, then each file.
    assert [type(r) for r in to_customer[-3:]] == [SendMessage, SendDocument, SendPhoto]
    document, photo = to_customer[-2], to_customer[-1]
    assert isinstance(document.document, BufferedInputFile)
    assert document.document.data == PDF and document.document.filename == "label.pdf"
    assert isinstance(photo.photo, BufferedInputFile)
    # The cleaned copy: no GPS position of the agent's phone.
    assert Image.open(io.BytesIO(photo.photo.data)).getexif().get_ifd(0x8825) == {}


async def test_a_photo_goes_to_telegram_under_its_text_only_when_the_text_fits_a_caption(
    alice: Panel,
    sessions: sessionmaker[Session],
    ctx: Context,
    bot: Any,
    fake: Any,
    settings: Any,
) -> None:
    from aiogram.methods import SendMessage, SendPhoto

    from tests.fakes.telegram import jpeg

    _telegram_on(alice)
    number = make_case(sessions, ctx, "F4", customer=_who(23))
    short, long = "贴这个标签寄回", "退货说明。" * 210  # 1050 characters: over a caption's 1024

    def reply(text: str) -> Any:
        return alice.post(
            f"/panel/cases/{number}/reply",
            {"text": text},
            files=[("files", ("label.jpg", jpeg("blue"), "image/jpeg"))],
        )

    for text in (short, long):
        sent = await in_thread(functools.partial(reply, text))
        assert sent.status_code == 303, sent.text
    worker = DeliveryWorker(
        bot=bot,
        sessions=sessions,
        settings=settings,
        config=FAST,
        texts=Texts.load(),
        clock=Clock(utcnow() + timedelta(minutes=1)),
    )
    await worker.drain()
    to_customer = [r for r in fake.requests if getattr(r, "chat_id", None) == 80023]
    # The short text under the photo; the long one whole in a message of its own, then the
    # photo: never cut, never refused by Telegram.
    assert [type(r) for r in to_customer[-3:]] == [SendPhoto, SendMessage, SendPhoto]
    assert to_customer[-3].caption == short
    assert to_customer[-2].text == long and to_customer[-1].caption is None


def test_files_are_checked_before_anything_is_written(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    _telegram_on(alice)
    number = make_case(sessions, ctx, "F2", customer=_who(21))
    # A program named like a PDF: the type is read from the bytes.
    r = alice.post(
        f"/panel/cases/{number}/reply",
        {"text": "see attached"},
        files=[("files", ("label.pdf", b"MZ\x90\x00\x03" + b"\x00" * 100, "application/pdf"))],
    )
    assert r.status_code == 422
    assert "not a photo or a PDF" in r.text
    # Over the shop's count of files in one message.
    many = [("files", (f"p{i}.pdf", PDF, "application/pdf")) for i in range(11)]
    r = alice.post(f"/panel/cases/{number}/reply", {"text": "many"}, files=many)
    assert r.status_code == 422
    assert "at most 10" in r.text
    assert _replies(sessions, number) == []
    with sessions() as s:
        assert s.scalar(select(func.count(Message.id)).where(Message.author == "agent")) == 0


def test_the_api_reply_takes_files_with_the_same_checks(
    api: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.fakes.telegram import jpeg

    number = make_case(sessions, ctx, "F3", customer=_who(22))
    r = api.post(
        f"/api/v1/tickets/{number}/replies/files",
        data={"text": "the label"},
        files=[("files", ("label.pdf", PDF, "application/pdf"))],
    )
    assert r.status_code == 201, r.text
    assert len(r.json()["attachments"]) == 1
    case = api.get(f"/api/v1/tickets/{number}").json()
    [attachment] = [a for a in case["attachments"] if a["id"] in r.json()["attachments"]]
    assert attachment["kind"] == "document"
    r = api.post(
        f"/api/v1/tickets/{number}/replies/files",
        files=[("files", ("x.png", b"GIF89a" + b"\x00" * 50, "image/png"))],
    )
    assert r.status_code == 422
    assert "not a photo or a PDF" in r.json()["message"]
    r = api.post(
        f"/api/v1/tickets/{number}/replies/files",
        data={"internal": "true"},
        files=[("files", ("me.jpg", jpeg("red"), "image/jpeg"))],
    )
    assert r.status_code == 201 and r.json()["internal"] is True


def test_a_nul_in_a_text_field_beside_a_file_is_still_refused(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    """A file's bytes may hold NULs (a PDF, a photo); the form's text fields may not
    (api/inputs.py)."""
    _telegram_on(alice)
    number = make_case(sessions, ctx, "F4", customer=_who(23))
    binary = PDF + b"\x00\x01\x00" * 5000
    r = alice.post(
        f"/panel/cases/{number}/reply",
        {"text": "bad\x00text"},
        files=[("files", ("label.pdf", binary, "application/pdf"))],
    )
    assert r.status_code == 422 and "form.text" in r.text
    assert _replies(sessions, number) == []
    r = alice.post(
        f"/panel/cases/{number}/reply",
        {"text": "fine"},
        files=[("files", ("label.pdf", binary, "application/pdf"))],
    )
    assert r.status_code == 303
    with sessions() as s:
        [name] = s.scalars(select(Attachment.original_name).where(Attachment.kind == "document"))
    assert name == "label.pdf"


def test_the_nul_scanner_tells_a_files_bytes_from_text_in_any_chunking() -> None:
    from api.inputs import _FormScanner

    def body(text: bytes) -> bytes:
        return (
            b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n'
            b"Content-Type: application/pdf\r\n\r\n" + b"%PDF\x00\x00" * 3000 + b"\r\n"
            b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\n\r\n' + text + b"\r\n"
            b"--XyZ--\r\n"
        )

    for size in (7, 100, 4096, 5000, 1 << 20):
        for text, refused in ((b"hello", None), (b"he\x00llo", "form.text")):
            scanner = _FormScanner(multipart=True, boundary=b"XyZ")
            data = body(text)
            hits = [scanner.feed(data[i : i + size]) for i in range(0, len(data), size)]
            assert next((h for h in hits if h), None) == refused, (size, text)


# ---------------------------------------------------------------- the phone-call form


def test_the_phone_form_ticks_the_orders_items_and_the_case_is_the_agents(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.fakes.telegram import jpeg

    _order(sessions, ctx, "P-100", customer=_who(30))
    form = alice.get("/panel/cases/new")
    assert 'name="take" value="1" id="take" checked' in form.text
    # No quantity is pre-filled anywhere: nothing to make a complaint fail.
    assert 'name="qty_0"' not in form.text
    # The order is looked up as typed (in any case): its lines to tick, with how many.
    items = alice.get("/panel/cases/new/items?order_no=p-100")
    assert items.status_code == 200
    assert re.findall(r'data-line="([^"]+)"', items.text) == ["JACKET-M", "SOCKS", "TEA"]
    assert 'name="qty_1" min="1" max="2" value="2"' in items.text
    assert "no order" in alice.get("/panel/cases/new/items?order_no=P-999").text.lower()
    # Without JavaScript, "Look up" draws the same lines in the form, keeping what was typed.
    looked = alice.get("/panel/cases/new?lookup=1&order_no=P-100&description=called+at+9")
    assert 'data-line="SOCKS"' in looked.text and "called at 9</textarea>" in looked.text

    r = alice.post(
        "/panel/cases/new",
        {
            "order_no": "p-100",
            "kind": "return_refund",
            "reason": "quality_defect",
            "channel": "phone",
            "take": "1",
            # Socks ticked, one of two; the jacket's quantity left as drawn but not ticked.
            "sku_1": "SOCKS",
            "qty_1": "1",
            "qty_0": "1",
            "description": "the seam is open",
        },
        files=[("files", ("seam.jpg", jpeg("red", gps=True), "image/jpeg"))],
    )
    assert r.status_code == 303, r.text
    number = r.headers["location"].split("/")[-1].split("?")[0]
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        assert [(i.sku, i.quantity) for i in ticket.items] == [("SOCKS", 1)]
        assert ticket.assignee is not None and ticket.assignee.username == "alice"
        assert [a.kind for a in ticket.attachments] == ["photo"]
        # The photo counts as the quality claim's evidence: not sent to wait for one.
        assert ticket.status != "needs_info"
    page = alice.get(f"/panel/cases/{number}")
    assert "Evidence" in page.text and "data-photo" in page.text


def test_a_complaint_without_an_order_opens_and_may_be_left_to_the_queue(
    alice: Panel, sessions: sessionmaker[Session]
) -> None:
    r = alice.post(
        "/panel/cases/new",
        {
            "kind": "complaint",
            "reason": "service",
            "channel": "phone",
            "customer_name": "王五",
            "customer_phone": "13311112222",
            # What an old form pre-filled: a quantity with no item. Not an item.
            "qty_0": "1",
        },
    )
    assert r.status_code == 303, r.text
    number = r.headers["location"].split("/")[-1].split("?")[0]
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        assert ticket.items == [] and ticket.assignee_id is None


def test_the_api_opens_a_case_taken_by_its_agent(api: Any, sessions: sessionmaker[Session]) -> None:
    r = api.post(
        "/api/v1/tickets",
        json={
            "kind": "complaint",
            "reason": "service",
            "channel": "phone",
            "customer": {"name": "赵六", "phone": "13322223333"},
            "take": True,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["assignee"] is not None


# ---------------------------------------------------------------- a reply from a stale page


def _version(page: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found
    return found.group(1)


def test_a_reply_from_a_stale_page_is_not_sent_and_keeps_the_text(
    alice: Panel, panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.conftest import logged_in

    _telegram_on(alice)
    number = make_case(sessions, ctx, "S1", customer=_who(40))
    page = alice.get(f"/panel/cases/{number}")
    seen = _version(page.text)
    assert 'id="reply"' in page.text and "data-stale-warning=" in page.text
    # Bob answers first, from his own page.
    bob = logged_in(panel_app, "bob")
    bobs = bob.get(f"/panel/cases/{number}")
    r = bob.post(
        f"/panel/cases/{number}/reply", {"text": "Bob here", "version": _version(bobs.text)}
    )
    assert r.status_code == 303
    # Alice's reply, from the page drawn before Bob's: refused, her words kept, nothing sent.
    r = alice.post(
        f"/panel/cases/{number}/reply", {"text": "Alice: we will refund you", "version": seen}
    )
    assert r.status_code == 409
    assert 'id="reply-kept"' in r.text
    assert "Alice: we will refund you</textarea>" in r.text
    assert "Bob here" in r.text  # the case as it is now
    assert [row.payload["text"] for row in _replies(sessions, number)] == ["Bob here"]
    # Sent again from the fresh page: it goes.
    r = alice.post(
        f"/panel/cases/{number}/reply",
        {"text": "Alice: we will refund you", "version": _version(r.text)},
    )
    assert r.status_code == 303
    assert len(_replies(sessions, number)) == 2
    # A note never conflicts: it goes to no customer.
    r = alice.post(
        f"/panel/cases/{number}/reply", {"text": "checked", "internal": "1", "version": seen}
    )
    assert r.status_code == 303


def test_a_refusal_refused_as_stale_keeps_what_the_agent_typed(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.factories import act

    number = make_case(sessions, ctx, "S2", customer=_who(41))
    seen = _version(alice.get(f"/panel/cases/{number}").text)
    act(sessions, ctx, number, "assign", priority="high")  # a lead changes the case meanwhile
    r = alice.post(
        f"/panel/cases/{number}/actions/refuse",
        {
            "version": seen,
            "reason": "worn and washed, tags removed",
            "alternative": "a 10 yuan coupon",
        },
    )
    assert r.status_code == 409
    assert re.search(r'<details class="action" data-action-form="refuse"\s+open', r.text)
    assert "worn and washed, tags removed</textarea>" in r.text
    assert "a 10 yuan coupon</textarea>" in r.text
    assert case_row(sessions, number).status == "submitted"


def test_the_api_reply_refuses_a_stale_version(
    api: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "S3", customer=_who(42))
    version = api.get(f"/api/v1/tickets/{number}").json()["version"]
    assert api.post(f"/api/v1/tickets/{number}/replies", json={"text": "one"}).status_code == 201
    r = api.post(f"/api/v1/tickets/{number}/replies", json={"text": "two", "version": version})
    assert r.status_code == 409 and r.json()["version"] == version + 1


# ---------------------------------------------------------------- the API's contract


def test_allowed_actions_never_offer_the_proposer_the_approval_and_leads_list_theirs(
    api: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.test_panel_approvals import _tv_at_refund_pending

    number = _tv_at_refund_pending(sessions, ctx, "A1")
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "propose_refund"})
    assert r.status_code == 200, r.text
    # Alice proposed it: the answer to her own action, and her reading of the case, leave the
    # approval out; Lena (anyone else) is offered it.
    assert "approve_refund" not in r.json()["allowed_actions"]
    assert "approve_refund" not in api.get(f"/api/v1/tickets/{number}").json()["allowed_actions"]
    lena = api.as_("lena")
    assert "approve_refund" in lena.get(f"/api/v1/tickets/{number}").json()["allowed_actions"]
    # "Waiting for my approval" as JSON: Lena's list has it, with who proposed it; Alice's not.
    mine = lena.get("/api/v1/approvals").json()
    assert mine["count"] == 1
    [row] = mine["data"]
    assert (row["number"], row["amount"], row["currency"]) == (number, "3999.00", "CNY")
    assert (row["proposed_by"], row["refund_status"]) == ("alice", "proposed")
    assert api.get("/api/v1/approvals").json() == {"data": [], "count": 0}
    r = lena.post(f"/api/v1/tickets/{number}/actions", json={"action": "approve_refund"})
    assert r.status_code == 200
    assert lena.get("/api/v1/approvals").json()["count"] == 0


def test_the_panel_nav_counts_what_waits_for_my_approval(
    alice: Panel, panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.conftest import logged_in
    from tests.test_panel_approvals import _tv_at_refund_pending

    number = _tv_at_refund_pending(sessions, ctx, "A2")
    url = f"/panel/cases/{number}"
    r = alice.post(f"{url}/actions/propose_refund", {"version": _version(alice.get(url).text)})
    assert r.status_code == 303, r.text
    lena = logged_in(panel_app, "lena")
    assert 'hx-get="/panel/approvals/count"' in lena.get("/panel").text
    assert lena.get("/panel/approvals/count").text == '<span class="count" data-count="1">1</span>'
    assert alice.get("/panel/approvals/count").text == ""


def test_an_inspection_without_results_records_nothing(
    api: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "I1", customer=_who(50))
    for action in ("approve", "mark_received"):
        assert (
            api.post(f"/api/v1/tickets/{number}/actions", json={"action": action}).status_code
            == 200
        )
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "inspect"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == "results"
    case = api.get(f"/api/v1/tickets/{number}").json()
    assert case["status"] == "inspecting"
    assert {s for i in case["items"] for s in i["units"]} == {"received"}


def test_the_history_costs_the_same_few_queries_however_long_it_is(
    alice: Panel, engine: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    from tests.conftest import counting, query_diff

    first = make_case(sessions, ctx, "Q0", customer=_who(60))
    alice.get(f"/panel/cases/{first}")  # warm: nothing first-time-only in the measure
    with counting(engine) as few:
        alice.get(f"/panel/cases/{first}")
    for i in range(1, 8):
        make_case(sessions, ctx, f"Q{i}", customer=_who(60))
    with counting(engine) as many:
        page = alice.get(f"/panel/cases/{first}").text
    assert len(_history_numbers(page)) == 7
    assert len(many) == len(few), query_diff(few, many)
