"""Safe bulk work and approvals (issue 16), over HTTP through the real app: a bulk approve says
what will happen to each case before it runs and leaves out the cases the policy holds for a
person (evidence awaited, a platform dispute, high risk), saying why; a large refund's
maker-checker refusal says the real reason and its maker is not offered the button; leads have
a "waiting for my approval" list; proposed and approved refunds are told apart in the queue; a
high-risk case, or one waiting for photos, is approved only deliberately (on the panel and the
API alike: the rule is the core's); an inspection has no outcome chosen for the agent."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, Panel, logged_in
from tests.factories import act, case_row, context, make_case, recent_order_json
from tickets.cases.opening import open_case
from tickets.context import SYSTEM, Context
from tickets.models import Refund, Ticket
from tickets.orders.store import upsert_order
from tickets.schemas import OrderIn, TicketCreate


def _who(order_no: str) -> dict[str, Any]:
    """A customer of their own (one customer's many orders would raise the risk)."""
    n = sum(map(ord, order_no))
    return {"name": f"客户{order_no}", "phone": f"1390001{n:04d}", "telegram_user_id": 70000 + n}


def _case(sessions: sessionmaker[Session], ctx: Context, order_no: str, **kw: Any) -> str:
    return make_case(sessions, ctx, order_no, customer=_who(order_no), **kw)


def _high_risk(sessions: sessionmaker[Session], number: str) -> None:
    with sessions() as s:
        s.execute(
            update(Ticket)
            .where(Ticket.number == number)
            .values(
                risk_level="high",
                risk_signals=[{"code": "new_customer", "text": "first order placed today"}],
            )
        )
        s.commit()


def _version(page: str) -> str:
    found = re.search(r'data-version="(\d+)"', page)
    assert found
    return found.group(1)


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", page))


def _tv_at_refund_pending(sessions: sessionmaker[Session], ctx: Context, order_no: str) -> str:
    """A 3999.00 TV sent back and inspected: its refund, when proposed, needs a second person
    (the threshold is 1000.00)."""
    data = recent_order_json(
        order_no,
        ctx.now,
        order_discount="0",
        customer=_who(order_no),
        lines=[
            {
                "sku": "TV",
                "title": "电视",
                "category": "electronics",
                "quantity": 1,
                "unit_price": "3999.00",
            }
        ],
    )
    with sessions() as s:
        upsert_order(session=s, data=OrderIn.model_validate(data), now=ctx.now)
        number = open_case(
            session=s,
            request=TicketCreate.model_validate(
                {
                    "order_no": order_no,
                    "kind": "return_refund",
                    "reason": "size_fit",
                    "items": [{"sku": "TV", "quantity": 1}],
                    "channel": "telegram",
                }
            ),
            actor=SYSTEM,
            ctx=ctx,
        ).number
        s.commit()
    act(sessions, ctx, number, "approve")
    act(sessions, ctx, number, "mark_received")
    act(
        sessions,
        ctx,
        number,
        "inspect",
        results=[{"sku": "TV", "quantity": 1, "outcome": "resalable"}],
    )
    return number


# ---------------------------------------------------------------- bulk approve


def test_a_bulk_approve_shows_each_case_first_and_leaves_out_the_held_ones(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    plain = _case(sessions, ctx, "H1")
    photos = _case(sessions, ctx, "H2", reason="quality_defect")  # no photo: waits for one
    dispute = _case(sessions, ctx, "H3")
    act(sessions, ctx, dispute, "escalate", reason="the customer opened a platform dispute")
    risky = _case(sessions, ctx, "H4")
    _high_risk(sessions, risky)
    talk = _case(sessions, ctx, "H5", kind="complaint", reason="service", items=())
    assert case_row(sessions, photos).status == "needs_info"
    everything = [plain, photos, dispute, risky, talk]
    seen = {n: case_row(sessions, n).version for n in everything}
    picked = [f"{n}@{v}" for n, v in seen.items()]

    lena = logged_in(panel_app, "lena")
    r = lena.post("/panel/bulk", {"action": "approve", "case": picked, "back": "/panel?queue=all"})
    assert r.status_code == 200, r.text
    page = _text(r.text)
    assert "1 will go ahead, 4 left out. Nothing has changed yet." in page
    going = dict(re.findall(r'data-plan="([^"]+)" data-going="(yes|no)"', r.text))
    assert going == {plain: "yes", photos: "no", dispute: "no", risky: "no", talk: "no"}

    def why(number: str) -> str:
        row = r.text[r.text.index(f'data-plan="{number}"') :]
        return _text(row[: row.index("</tr>")])

    assert "Approved: becomes Awaiting return" in why(plain)
    assert "the customer gets the return address and RMA" in why(plain)
    assert "Waiting for the customer's evidence" in why(photos)
    assert "Platform dispute: the platform's ruling decides it" in why(dispute)
    assert "High risk: decide it on its own" in why(risky)
    assert "first order placed today" in why(risky)
    assert "Not possible in its current status" in why(talk)
    # Nothing moved yet: the page only said what would happen.
    assert {n: case_row(sessions, n).version for n in everything} == seen
    # The button sends only the case that goes ahead, at the version the lead saw.
    form = r.text[r.text.index('id="bulk-go"') :]
    form = form[: form.index("</form>")]
    assert re.findall(r'name="case" value="([^"]+)"', form) == [f"{plain}@{seen[plain]}"]
    assert "Approve this case" in form
    done = lena.post(
        "/panel/bulk",
        {"action": "approve", "case": [f"{plain}@{seen[plain]}"], "confirmed": "1"},
    )
    assert "1 done, 0 refused." in done.text
    assert case_row(sessions, plain).status == "awaiting_return"
    # A forged confirmation naming the held cases: the core leaves them out all the same.
    forged = lena.post(
        "/panel/bulk",
        {"action": "approve", "case": [photos, dispute, risky], "confirmed": "1"},
    )
    assert "0 done, 3 refused." in forged.text
    assert [case_row(sessions, n).status for n in (photos, dispute, risky)] == [
        "needs_info",
        "escalated",
        "submitted",
    ]
    # In Chinese, the same reasons.
    lena.post("/panel/language", {"language": "zh-CN"})
    r = lena.post("/panel/bulk", {"action": "approve", "case": [photos, dispute, risky]})
    page = _text(r.text)
    assert "0 件将执行，3 件不包括在内。目前尚未做任何更改。" in page
    for words in ("等待客户补充凭证", "平台介入：以平台裁决为准", "高风险"):
        assert words in page
    assert "所选工单均无法执行。" in page
    assert 'id="bulk-go"' not in r.text


# ---------------------------------------------------------------- maker-checker, approvals


def test_a_large_refund_waits_for_a_second_person_who_finds_it_in_their_list(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = _tv_at_refund_pending(sessions, ctx, "L1")
    url = f"/panel/cases/{number}"
    r = alice.post(f"{url}/actions/propose_refund", {"version": _version(alice.get(url).text)})
    assert r.status_code == 303, r.text
    # Alice proposed it: no approve button for her, and the page says why, before any click.
    page = alice.get(url).text
    assert 'data-action="approve_refund"' not in page
    sentence = "A second person must approve refunds over CN¥1,000.00; you proposed this one."
    assert sentence in _text(page)
    # Pressing it anyway (an old page): refused with the real reason, not "your role".
    r = alice.post(f"{url}/actions/approve_refund", {"version": _version(page)})
    assert r.status_code == 403
    assert sentence in _text(r.text)
    assert "Your role may not do this." not in r.text
    # The queue tells a proposed refund from an approved one.
    row = alice.get("/panel?queue=all").text
    assert f'data-case="{number}"' in row
    assert 'data-refund-status="proposed"' in row
    # Alice's approvals list does not offer her own; Lena's does, with who proposed it.
    assert f'data-approval="{number}"' not in alice.get("/panel/approvals").text
    lena = logged_in(panel_app, "lena")
    assert 'id="nav-approvals"' in lena.get("/panel").text
    waiting = lena.get("/panel/approvals")
    assert waiting.status_code == 200
    mine = waiting.text[waiting.text.index(f'data-approval="{number}"') :]
    mine = _text(mine[: mine.index("</tr>")])
    assert "CN¥3,999.00" in mine and "Alice" in mine
    version = re.search(r'name="version" value="(\d+)"', waiting.text[waiting.text.index(number) :])
    assert version
    r = lena.post(
        f"{url}/actions/approve_refund",
        {"version": version.group(1), "back": "/panel/approvals?done=approve_refund"},
    )
    assert (r.status_code, r.headers["location"]) == (303, "/panel/approvals?done=approve_refund")
    with sessions() as s:
        ticket_id = case_row(sessions, number).id
        assert s.scalar(select(Refund.status).where(Refund.ticket_id == ticket_id)) == "approved"
    assert "Nothing is waiting for your approval." in lena.get("/panel/approvals").text
    assert 'data-refund-status="approved"' in alice.get("/panel?queue=all").text


def test_the_two_person_rule_speaks_chinese(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = _tv_at_refund_pending(sessions, ctx, "L2")
    url = f"/panel/cases/{number}"
    alice.post(f"{url}/actions/propose_refund", {"version": _version(alice.get(url).text)})
    alice.post("/panel/language", {"language": "zh-CN"})
    page = _text(alice.get(url).text)
    assert "超过 ¥1,000.00 的退款须由第二人审批；此退款由您提出。" in page
    assert "待审批" in _text(alice.get("/panel?queue=all").text)
    lena = logged_in(panel_app, "lena")
    lena.post("/panel/language", {"language": "zh-CN"})
    assert "待我审批" in lena.get("/panel/approvals").text


# ---------------------------------------------------------------- deliberate approvals


def test_a_high_risk_case_is_approved_only_deliberately(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    risky = _case(sessions, ctx, "R1")
    _high_risk(sessions, risky)
    url = f"/panel/cases/{risky}"
    page = alice.get(url).text
    assert 'id="confirm-approve"' in page
    assert "I have checked the risk signals" in page
    # A bare approve, or a wrong number: refused, saying what to confirm; nothing changes.
    for fields in ({}, {"confirm_number": "AS-00000000-0000"}):
        r = alice.post(f"{url}/actions/approve", {"version": _version(page), **fields})
        assert r.status_code == 422
        assert "Confirm what you checked before approving this case" in _text(r.text)
        assert case_row(sessions, risky).status == "submitted"
    # The case number typed (as people type it: lower case, spaces) is deliberate enough.
    typed = " ".join(risky.lower().split("-"))
    r = alice.post(f"{url}/actions/approve", {"version": _version(page), "confirm_number": typed})
    assert r.status_code == 303, r.text
    assert case_row(sessions, risky).status == "awaiting_return"
    # Or the box ticked.
    other = _case(sessions, ctx, "R2")
    _high_risk(sessions, other)
    page = alice.get(f"/panel/cases/{other}").text
    r = alice.post(
        f"/panel/cases/{other}/actions/approve",
        {"version": _version(page), "confirm_high_risk": "1"},
    )
    assert r.status_code == 303
    assert case_row(sessions, other).status == "awaiting_return"
    # In Chinese.
    third = _case(sessions, ctx, "R3")
    _high_risk(sessions, third)
    alice.post("/panel/language", {"language": "zh-CN"})
    page = _text(alice.get(f"/panel/cases/{third}").text)
    assert "我已核查风险信号" in page and "或输入工单号" in page
    r = alice.post(f"/panel/cases/{third}/actions/approve", {"version": _version(page)})
    assert "审批此工单前，请确认您已核查的内容" in _text(r.text)


def test_approving_a_case_waiting_for_photos_warns_and_needs_a_confirmation(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = _case(sessions, ctx, "E1", reason="quality_defect")
    assert case_row(sessions, number).status == "needs_info"
    url = f"/panel/cases/{number}"
    page = alice.get(url).text
    assert 'data-hold="awaiting_evidence"' in page
    assert "waiting for the customer's evidence" in _text(page)
    r = alice.post(f"{url}/actions/approve", {"version": _version(page)})
    assert r.status_code == 422
    assert case_row(sessions, number).status == "needs_info"
    r = alice.post(
        f"{url}/actions/approve", {"version": _version(page), "confirm_awaiting_evidence": "1"}
    )
    assert r.status_code == 303
    assert case_row(sessions, number).status == "awaiting_return"
    other = _case(sessions, ctx, "E2", reason="quality_defect")
    alice.post("/panel/language", {"language": "zh-CN"})
    page = _text(alice.get(f"/panel/cases/{other}").text)
    assert "此工单正在等待客户补充凭证" in page and "不等待补充凭证，直接审批" in page


def test_the_api_refuses_a_held_approval_with_a_clear_code(
    api: Api, sessions: sessionmaker[Session], scripts: Any
) -> None:
    ctx = context(scripts)
    risky = _case(sessions, ctx, "P1")
    _high_risk(sessions, risky)
    photos = _case(sessions, ctx, "P2", reason="quality_defect")

    def approve(number: str, **extra: Any) -> Any:
        return api.post(f"/api/v1/tickets/{number}/actions", json={"action": "approve", **extra})

    r = approve(risky)
    assert r.status_code == 422
    body = r.json()
    assert (body["error"], body["needs"]) == ("confirmation_required", ["high_risk"])
    assert "high risk (first order placed today)" in body["message"]
    r = approve(photos)
    assert (r.status_code, r.json()["needs"]) == (422, ["awaiting_evidence"])
    assert approve(risky, confirm=["high_risk"]).json()["status"] == "awaiting_return"
    assert approve(photos, confirm=["awaiting_evidence"]).json()["status"] == "awaiting_return"


# ---------------------------------------------------------------- inspection


def test_an_inspection_has_no_outcome_chosen_for_the_agent(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = _case(sessions, ctx, "I1")
    act(sessions, ctx, number, "approve")
    act(sessions, ctx, number, "mark_received")
    url = f"/panel/cases/{number}"
    page = alice.get(url).text
    selects = re.findall(r'<select name="(outcome_\d+)"[^>]*required>(.*?)</select>', page, re.S)
    assert len(selects) == 2
    for _name, options in selects:
        assert re.search(r'<option value="" selected>— choose after looking —</option>', options)
        assert options.count("selected") == 1
    # Left unchosen: refused, naming the unit; nothing recorded.
    r = alice.post(f"{url}/actions/inspect", {"version": _version(page)})
    assert r.status_code == 422
    assert "choose what SOCKS #1 is" in _text(r.text)
    assert case_row(sessions, number).status == "inspecting"
    chosen = {name: "resalable" for name, _o in selects}
    r = alice.post(f"{url}/actions/inspect", {"version": _version(page), **chosen})
    assert r.status_code == 303
    assert case_row(sessions, number).status == "refund_pending"
    other = _case(sessions, ctx, "I2")
    act(sessions, ctx, other, "approve")
    act(sessions, ctx, other, "mark_received")
    alice.post("/panel/language", {"language": "zh-CN"})
    assert (
        '<option value="" selected>— 查看后选择 —</option>'
        in alice.get(f"/panel/cases/{other}").text
    )
