"""Bad input a client can send answers a clear 4xx naming the field, and writes nothing: numbers
larger than their column, amounts no currency holds, reserved script variables, NUL bytes.
Each was a 500 before (issue 12, "Clean errors")."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, Panel, walk_to_refund_pending
from tests.factories import make_case, order_json
from tickets.models import Customer, Order, Refund, Ticket

HUGE = 10**24  # 25 digits


def _names(r: Any) -> str:
    """The whole error body, to look for the field it names."""
    return r.text


def _count(sessions: sessionmaker[Session], model: Any) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# ---------------------------------------------------------------- integers beyond the column


def test_a_huge_attachment_id_is_a_422_on_the_api(api: Api) -> None:
    r = api.get(f"/api/v1/attachments/{HUGE}")
    assert r.status_code == 422, r.text
    assert "attachment_id" in _names(r)


def test_a_huge_attachment_id_is_a_422_on_the_panel(alice: Panel) -> None:
    r = alice.get(f"/panel/files/{HUGE}")
    assert r.status_code == 422, r.text
    assert "attachment_id" in _names(r)


def test_a_cursor_naming_a_huge_case_id_is_a_422(api: Api) -> None:
    raw = f"2026-11-22T02:00:00+00:00|{HUGE}".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    r = api.get("/api/v1/tickets", params={"cursor": cursor})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "cursor"


def test_the_panel_customer_filter_and_ids_refuse_huge_numbers(alice: Panel) -> None:
    r = alice.get("/panel/queue", params={"customer": str(HUGE)})
    assert r.status_code == 422, r.text
    assert "customer" in _names(r)
    r = alice.get("/panel/cases/AS-1/watch", params={"version": str(HUGE)})
    assert r.status_code == 422, r.text
    assert "version" in _names(r)


def test_a_huge_version_in_the_panel_forms_is_refused(
    alice: Panel, sessions: sessionmaker[Session], ctx: Any
) -> None:
    number = make_case(sessions, ctx, "HV1")
    r = alice.post(f"/panel/cases/{number}/take", {"version": str(HUGE)})
    assert r.status_code == 422, r.text
    assert "version" in _names(r)
    r = alice.post(f"/panel/cases/{number}/actions/approve", {"version": str(HUGE)})
    assert r.status_code == 422, r.text
    r = alice.post("/panel/bulk", {"action": "approve", "case": f"{number}@{HUGE}"})
    assert r.status_code == 422, r.text
    assert "version" in _names(r)
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        assert (ticket.status, ticket.assignee_id) == ("submitted", None)


def test_a_huge_telegram_user_id_is_a_422_and_nothing_is_written(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    order = order_json("TG1")
    order["customer"]["telegram_user_id"] = HUGE
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422, r.text
    assert "orders.0.customer.telegram_user_id" in _names(r)
    r = api.post(
        "/api/v1/tickets",
        json={
            "kind": "complaint",
            "reason": "service",
            "customer": {"name": "x", "telegram_user_id": HUGE},
        },
    )
    assert r.status_code == 422, r.text
    assert "customer.telegram_user_id" in _names(r)
    assert _count(sessions, Order) == 0
    assert _count(sessions, Customer) == 0
    assert _count(sessions, Ticket) == 0


def test_a_huge_version_in_an_action_is_a_422(api: Api) -> None:
    assert (
        api.as_("shop").post("/api/v1/orders", json={"orders": [order_json()]}).status_code == 200
    )
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "return_refund",
            "reason": "size_fit",
            "items": [{"sku": "SOCKS", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": "approve", "version": HUGE})
    assert r.status_code == 422, r.text
    assert "version" in _names(r)


# ---------------------------------------------------------------- amounts no column holds


def test_a_unit_price_of_1e20_is_a_422_naming_it(api: Api, sessions: sessionmaker[Session]) -> None:
    for price in ("1e20", 1e20, "100000000000000000000"):
        order = order_json("BIG1")
        order["lines"][0]["unit_price"] = price
        r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
        assert r.status_code == 422, r.text
        assert "orders.0.lines.0.unit_price" in _names(r)
    # Each price in bounds, but a total no BIGINT holds: refused naming the lines.
    lines = [
        {"sku": f"GOLD-{i}", "quantity": 100_000, "unit_price": "10000000000"} for i in range(100)
    ]
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json("BIG2", lines=lines)]})
    assert r.status_code == 422, r.text
    assert "orders.0.lines" in _names(r)
    assert _count(sessions, Order) == 0


def test_a_return_freight_finer_than_the_currency_is_a_422(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    assert (
        api.as_("shop").post("/api/v1/orders", json={"orders": [order_json()]}).status_code == 200
    )
    items = [{"sku": "JACKET-M", "quantity": 1}]
    r = api.post(
        "/api/v1/orders/T1001/refund-quote",
        json={"items": items, "reason": "quality_defect", "return_freight": "0.001"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "return_freight"
    number = walk_to_refund_pending(api, "TEA", 1)
    r = api.post(
        f"/api/v1/tickets/{number}/actions",
        json={"action": "propose_refund", "return_freight": "0.001"},
    )
    assert r.status_code == 422, r.text
    assert "return_freight" in _names(r)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Refund)) == 0


# ---------------------------------------------------------------- script variables


@pytest.mark.parametrize("name", ["ticket", "ctx", "session", "script"])
def test_a_variable_named_like_the_renderers_own_is_a_422(
    api: Api, sessions: sessionmaker[Session], name: str
) -> None:
    assert (
        api.as_("shop").post("/api/v1/orders", json={"orders": [order_json()]}).status_code == 200
    )
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "return_refund",
            "reason": "size_fit",
            "items": [{"sku": "SOCKS", "quantity": 1}],
        },
    )
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    r = api.post(
        f"/api/v1/tickets/{number}/actions", json={"action": "approve", "variables": {name: "x"}}
    )
    assert r.status_code == 422, r.text
    assert name in r.json()["message"]
    assert r.json()["errors"][0]["loc"] == "variables"
    r = api.post(
        f"/api/v1/tickets/{number}/replies",
        json={"script": "notice_reply", "variables": {name: "x"}},
    )
    assert r.status_code == 422, r.text
    assert name in r.json()["message"]
    assert api.get(f"/api/v1/tickets/{number}").json()["status"] == "submitted"


# ---------------------------------------------------------------- NUL characters


def test_a_nul_in_the_log_in_name_is_a_422_even_anonymously(panel_app: Any) -> None:
    anon = Panel(panel_app)
    page = anon.client.get("/panel/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token
    form = {"username": "admin\x00", "password": "x", "login_token": token.group(1)}
    r = anon.client.post("/panel/login", data=form)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {"loc": "form.username", "msg": "must not contain a NUL character (\\u0000)"}
    ]
    # The same as multipart/form-data.
    r = anon.client.post("/panel/login", files={k: (None, v) for k, v in form.items()})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "form.username"


def test_a_nul_in_a_panel_form_or_query_is_a_422(
    alice: Panel, sessions: sessionmaker[Session], ctx: Any
) -> None:
    number = make_case(sessions, ctx, "NUL1")
    r = alice.post(f"/panel/cases/{number}/reply", {"text": "hello\x00world"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "form.text"
    r = alice.get("/panel/queue", params={"q": "李\x00"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "query.q"
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        assert [m.text for m in ticket.messages if "world" in m.text] == []


def test_a_nul_anywhere_in_the_json_api_is_a_422_naming_the_field(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    order = order_json("NUL2")
    order["customer"]["name"] = "李\x00雷"
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "loc": "orders.0.customer.name",
            "msg": "Value error, must not contain a NUL character (\\u0000)",
        }
    ]
    r = api.post(
        "/api/v1/tickets",
        json={
            "kind": "complaint",
            "reason": "service",
            "description": "rude\x00",
            "customer": {"name": "x"},
        },
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "description"
    r = api.post("/api/v1/scripts/notice_reply/preview", json={"variables": {"text": "\x00"}})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "variables"
    assert "text: must not contain a NUL" in r.json()["message"]
    r = api.get("/api/v1/tickets", params={"order_no": "T\x00"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "query.order_no"
    r = api.get("/api/v1/tickets/AS-1%00")
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == "path"
    assert _count(sessions, Order) == 0
    assert _count(sessions, Ticket) == 0


# ---------------------------------------------------------------- digits int() does not read


@pytest.mark.parametrize("raw", ["²", "--5", "9" * 5000])
def test_a_number_field_int_cannot_read_is_a_clear_problem(
    alice: Panel, sessions: sessionmaker[Session], ctx: Any, raw: str
) -> None:
    number = make_case(sessions, ctx, "DIG1")
    # A script's number variable: the reply box says which variable is wrong.
    r = alice.get(
        f"/panel/cases/{number}/script",
        params={"name": "delay_logistics_peak", "language": "en", "var_delay_days": raw},
    )
    assert r.status_code == 200, r.text
    assert "delay_days" in r.text
    # A version or a quantity: a 422 naming it, nothing done.
    r = alice.post(f"/panel/cases/{number}/actions/approve", {"version": raw})
    assert r.status_code == 422, r.text
    r = alice.post(
        "/panel/cases/new",
        {
            "kind": "return_refund",
            "reason": "size_fit",
            "order_no": "DIG1",
            "channel": "phone",
            "sku_0": "SOCKS",
            "qty_0": raw,
        },
    )
    assert r.status_code == 422, r.text
    assert 'data-error-for="qty_0"' in r.text
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        assert ticket.status == "submitted"


# ---------------------------------------------------------------- times datetime cannot hold


def test_a_time_beyond_what_datetime_holds_is_a_422_naming_it(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    for params in (
        {"until": "0001-01-01T00:00:00+00:00"},
        {"until": "9999-12-31T23:59:59-14:00"},
    ):
        for url in ("/api/v1/sla/report", "/api/v1/sla/breaches.csv"):
            r = api.as_("lena").get(url, params=params)  # the SLA reports are a lead's
            assert r.status_code == 422, (url, r.text)
            assert r.json()["errors"][0]["loc"] == "query.until"
    late = "9999-12-31T23:59:59-14:00"
    order = order_json("Y9", placed_at=late, paid_at=late, shipped_at=late, delivered_at=late)
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order]})
    assert r.status_code == 422, r.text
    assert "orders.0.placed_at" in r.text
    assert _count(sessions, Order) == 0


def test_the_panel_ignores_a_creation_date_filter_no_case_can_have(alice: Panel) -> None:
    for params in ({"created_to": "9999-12-31"}, {"created_from": "0001-01-01"}):
        r = alice.get("/panel/queue", params={"queue": "all", **params})
        assert r.status_code == 200, r.text


def test_a_non_ascii_log_in_or_csrf_token_is_refused_not_a_500(alice: Panel) -> None:
    anon = Panel(alice.client.app)
    anon.client.get("/panel/login")
    r = anon.client.post(
        "/panel/login", data={"username": "alice", "password": "x", "login_token": "令牌"}
    )
    assert r.status_code in (400, 403, 422), r.text
    r = alice.client.post("/panel/me/away", data={"csrf_token": "令牌"})
    assert r.status_code == 403, r.text
    r = alice.client.post("/panel/me/away", headers={"X-CSRF-Token": "令牌".encode()})  # type: ignore[arg-type]  # raw bytes on purpose
    assert r.status_code == 403, r.text
