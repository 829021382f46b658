"""Tags on cases: put on and taken off from the case page and the API, bounded (length,
characters, count per case), recorded as events naming who, filterable in the queues (panel and
`GET /api/v1/tickets?tag=`) and shown on the rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, Panel, case_numbers, counting, logged_in, order_json, query_diff
from tests.factories import make_case
from tickets.context import Context
from tickets.models import Event, TicketTag


def _case(api: Api, order_no: str) -> str:
    r = api.as_("shop").post("/api/v1/orders", json={"orders": [order_json(order_no)]})
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/v1/tickets",
        json={"order_no": order_no, "kind": "complaint", "reason": "service", "channel": "phone"},
    )
    assert r.status_code == 201, r.text
    number: str = r.json()["number"]
    return number


def _delete(api: Api, url: str) -> Any:
    return api.client.delete(url, headers=api._h())


def test_api_tags_a_case_filters_by_tag_and_untags(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    vip = _case(api, "TG1")
    other = _case(api, "TG2")
    r = api.post(f"/api/v1/tickets/{vip}/tags", json={"tags": ["VIP", "supplier x", "质检"]})
    assert r.status_code == 200, r.text
    # Stored in lower case, spaces inside a tag become "-", Chinese is a tag like any word.
    assert r.json() == {"tags": ["supplier-x", "vip", "质检"]}
    # Adding one it has again changes nothing and records nothing more.
    assert api.post(f"/api/v1/tickets/{vip}/tags", json={"tags": ["vip"]}).json()["tags"] == [
        "supplier-x",
        "vip",
        "质检",
    ]
    assert api.get(f"/api/v1/tickets/{vip}").json()["tags"] == ["supplier-x", "vip", "质检"]
    listed = api.get("/api/v1/tickets?tag=Vip").json()
    assert [t["number"] for t in listed["data"]] == [vip]
    assert listed["data"][0]["tags"] == ["supplier-x", "vip", "质检"]
    assert api.get("/api/v1/tickets?tag=nobody-has-it").json()["count"] == 0
    assert {t["number"] for t in api.get("/api/v1/tickets").json()["data"]} >= {vip, other}
    # Who tagged is on the case's record.
    events = [e for e in api.get(f"/api/v1/tickets/{vip}").json()["events"] if "tag" in e["type"]]
    assert events == [
        {
            "type": "tag.added",
            "actor": "agent:alice",
            "at": events[0]["at"],
            "data": {"tags": ["vip", "supplier-x", "质检"]},
        }
    ]
    r = _delete(api.as_("bob"), f"/api/v1/tickets/{vip}/tags/VIP")
    assert r.status_code == 200, r.text
    assert r.json() == {"tags": ["supplier-x", "质检"]}
    assert api.get("/api/v1/tickets?tag=vip").json()["count"] == 0
    last = api.get(f"/api/v1/tickets/{vip}").json()["events"][-1]
    assert (last["type"], last["actor"], last["data"]) == (
        "tag.removed",
        "agent:bob",
        {"tag": "vip"},
    )


def test_bad_tags_are_refused_naming_the_tag_and_nothing_is_written(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    number = _case(api, "TG3")
    url = f"/api/v1/tickets/{number}/tags"
    for bad, loc in (
        (["ok", "<script>"], "tags.1"),
        (["x" * 33], "tags.0"),
        (["   "], "tags.0"),
        (["a/b"], "tags.0"),
    ):
        r = api.post(url, json={"tags": bad})
        assert r.status_code == 422, (bad, r.text)
        assert loc in [e["loc"] for e in r.json()["errors"]], r.text
    assert api.post(url, json={"tags": []}).status_code == 422
    assert api.post(url, json={"tags": [f"t{i}" for i in range(21)]}).status_code == 422
    assert api.get("/api/v1/tickets?tag=a/b").status_code == 422
    assert api.get(f"/api/v1/tickets/{number}").json()["tags"] == []
    # At most AFTERSALES_LIMIT_TAGS_PER_CASE (20) on one case: the 21st is refused whole.
    assert api.post(url, json={"tags": [f"t{i}" for i in range(19)]}).status_code == 200
    r = api.post(url, json={"tags": ["one-more", "and-another"]})
    assert r.status_code == 422
    assert "limit is 20" in r.json()["message"]
    assert api.post(url, json={"tags": ["one-more"]}).status_code == 200
    with sessions() as s:
        assert len(s.scalars(select(TicketTag.tag)).all()) == 20
    assert api.post("/api/v1/tickets/AS-NOPE/tags", json={"tags": ["x"]}).status_code == 404


def test_panel_tags_from_the_case_page_and_filters_the_queue(
    alice: Panel, panel_app: Any, sessions: sessionmaker[Session], ctx: Context
) -> None:
    tagged = make_case(sessions, ctx, "TG4")
    plain = make_case(sessions, ctx, "TG5", customer={"name": "乙", "phone": "13900007777"})
    r = alice.post(f"/panel/cases/{tagged}/tags", {"tags": "vip， Fragile"})
    assert r.status_code == 303
    page = alice.get(f"/panel/cases/{tagged}").text
    assert 'data-tag="fragile"' in page and 'data-tag="vip"' in page
    queue = alice.get("/panel?queue=all&tag=VIP").text
    assert case_numbers(queue) == [tagged]
    assert 'data-row-tag="vip"' in queue and 'id="tag-filter"' in queue
    assert set(case_numbers(alice.get("/panel?queue=all").text)) >= {tagged, plain}
    # A malformed tag in the URL lists nothing rather than everything.
    assert case_numbers(alice.get("/panel?queue=all&tag=a%2Fb").text) == []
    # A bad tag typed on the case page says why and keeps the case as it was.
    r = alice.post(f"/panel/cases/{tagged}/tags", {"tags": "<b>"})
    assert r.status_code == 422
    assert "letters, digits" in r.text
    r = alice.post(f"/panel/cases/{tagged}/tags/remove", {"tag": "vip"})
    assert r.status_code == 303
    assert case_numbers(alice.get("/panel?queue=all&tag=vip").text) == []
    with sessions() as s:
        kinds = s.scalars(
            select(Event.type).where(Event.type.like("tag.%")).order_by(Event.id)
        ).all()
        assert kinds == ["tag.added", "tag.removed"]
    # Without the form's CSRF token nothing changes.
    bob = logged_in(panel_app, "bob")
    r = bob.client.post(f"/panel/cases/{plain}/tags", data={"tags": "x"})
    assert r.status_code == 403
    assert 'data-tag="x"' not in alice.get(f"/panel/cases/{plain}").text


def test_the_api_queue_costs_the_same_queries_for_1_row_or_12(api: Api, engine: Engine) -> None:
    first = _case(api, "TQ0")
    api.get("/api/v1/tickets")  # warm: nothing first-time-only in the measure
    with counting(engine) as few:
        assert [row["number"] for row in api.get("/api/v1/tickets").json()["data"]] == [first]
    for i in range(1, 12):
        number = _case(api, f"TQ{i}")
        if i % 2:
            r = api.post(f"/api/v1/tickets/{number}/tags", json={"tags": ["vip", f"batch-{i}"]})
            assert r.status_code == 200, r.text
        if i % 3 == 0:
            r = api.post(
                f"/api/v1/tickets/{number}/actions", json={"action": "assign", "assignee": "bob"}
            )
            assert r.status_code == 200, r.text
    with counting(engine) as many:
        page = api.get("/api/v1/tickets").json()
    assert len(many) == len(few), query_diff(few, many)
    assert page["count"] == 12
    rows = {row["number"]: row for row in page["data"]}
    tagged = [row for row in rows.values() if row["tags"]]
    assert len(tagged) == 6
    assert all(row["tags"][-1] == "vip" for row in tagged)  # in order, as on the case
    assert sum(row["assignee"] == "bob" for row in rows.values()) == 3
    assert all(row["order_no"] and row["customer_name"] for row in rows.values())
    # A page with no rows still counts its queue: the 12th case, the oldest, has no tag.
    first_11 = api.get("/api/v1/tickets", params={"limit": 11}).json()
    rest = {"cursor": first_11["next_cursor"]}
    assert [row["number"] for row in api.get("/api/v1/tickets", params=rest).json()["data"]] == [
        first
    ]
    past = api.get("/api/v1/tickets", params={**rest, "tag": "vip"}).json()
    assert (past["data"], past["count"], past["next_cursor"]) == ([], 6, None)
