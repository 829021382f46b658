"""Reply scripts through the API and in the lifecycle notices a customer receives."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, order_json
from tickets.models import OutboxMessage


def _case(api: Api, name: str = "李雷", language: str = "zh-CN", **body: Any) -> str:
    customer = {
        "name": name,
        "phone": "13800138000",
        "telegram_user_id": 5001,
        "language": language,
    }
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json(customer=customer)]})
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/v1/tickets",
        json={
            "order_no": "T1001",
            "kind": "return_refund",
            "reason": "no_reason",
            "items": [{"sku": "SOCKS", "quantity": 1}],
            **body,
        },
    )
    assert r.status_code == 201, r.text
    number: str = r.json()["number"]
    return number


def _outbox(sessions: sessionmaker[Session]) -> list[OutboxMessage]:
    with sessions() as s:
        return list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel != "agents")
                .order_by(OutboxMessage.id)
            )
        )


def test_each_step_queues_its_notice_in_the_customers_language(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    number = _case(api, name="Emma <b>&</b> Co", language="en")
    for action, params in [
        ("approve", {}),
        ("mark_in_transit", {"tracking_no": "SF1"}),
        ("mark_received", {}),
        ("inspect", {}),
        ("propose_refund", {}),
        ("approve_refund", {}),
        ("issue_refund", {}),
        ("close", {}),
    ]:
        r = api.post(f"/api/v1/tickets/{number}/actions", json={"action": action, **params})
        assert r.status_code == 200, r.text
    rows = _outbox(sessions)
    assert [r.payload["script"] for r in rows] == [
        "notice_received",
        "notice_approved",
        "notice_parcel_received",
        "notice_inspection_passed",
        "notice_refund_issued",
        "notice_closed",
    ]
    assert {(r.channel, r.recipient) for r in rows} == {("telegram", "5001")}
    received = rows[0].payload["text"]
    assert number in received
    assert "Emma &lt;b&gt;&amp;&lt;/b&gt; Co" in received  # the name is text, not markup
    assert "<b>&</b>" not in received
    approved = rows[1].payload["text"]
    assert "RMA-" in approved and "After-sales warehouse" in approved
    refund = rows[4].payload["text"]
    assert "44.18" in refund  # one sock at its stored net
    assert "Alipay" in refund


def test_refusal_always_offers_an_alternative(api: Api, sessions: sessionmaker[Session]) -> None:
    number = _case(api)
    r = api.post(
        f"/api/v1/tickets/{number}/actions",
        json={"action": "refuse", "reason": "已超过七天无理由退货期限"},
    )
    assert r.status_code == 200
    text = _outbox(sessions)[-1].payload["text"]
    assert "已超过七天无理由退货期限" in text
    assert "重新提交" in text  # the policy's default alternative


def test_reply_from_a_script_and_preview(api: Api, sessions: sessionmaker[Session]) -> None:
    number = _case(api)
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview",
        json={"number": number, "variables": {"reason": "发货慢了"}},
    )
    assert r.status_code == 422
    assert r.json()["variable"] == "valid_until"
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview",
        json={"number": number, "variables": {"reason": "发货慢了", "valid_until": "2026-12-31"}},
    )
    assert r.status_code == 200, r.text
    preview = r.json()["text"]
    assert "李雷" in preview and "¥5.00" in preview
    r = api.post(
        f"/api/v1/tickets/{number}/replies",
        json={
            "script": "compensation_coupon",
            "variables": {"reason": "发货慢了", "valid_until": "2026-12-31"},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["text"] == preview
    assert _outbox(sessions)[-1].payload == {
        "language": "zh-CN",
        "text": preview,
        "message_id": r.json()["id"],
        "parse_mode": "HTML",
        # What the customer types next is read against the words it asks for.
        "script": "compensation_coupon",
    }
    r = api.post(
        "/api/v1/scripts/compensation_coupon/preview",
        json={
            "number": number,
            "variables": {"reason": "x", "valid_until": "2026-12-31", "coupon_amount": "500 CNY"},
        },
    )
    assert r.status_code == 422  # above the shop's coupon limit
    assert api.post("/api/v1/scripts/no_such/preview", json={}).status_code == 404


def test_list_scripts_by_category_and_language(api: Api) -> None:
    body = api.get("/api/v1/scripts", params={"category": "refusal", "language": "en"}).json()
    assert body["count"] == len(body["data"]) >= 6
    assert {s["category"] for s in body["data"]} == {"refusal"}
    assert {s["language"] for s in body["data"]} == {"en"}
    assert api.get("/api/v1/scripts", params={"category": "jokes"}).status_code == 422
