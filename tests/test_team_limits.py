"""The team tools' counts are the shop's settings (tickets/limits.py): tags named in one
request, cases linked to one case, notifications kept per agent. Set low here, each is
enforced through the real API with a 422 saying the limit, nothing written; a setting out of
its bounds is refused naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Api, logged_in
from tests.factories import make_case
from tickets.models import Agent, Notification, TicketTag
from tickets.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    return Settings(
        database_url="sqlite:///unused.db",
        media_dir=tmp_path / "media",
        limit_tags_per_request=3,
        limit_links_per_case=2,
        limit_notifications_per_agent=10,
        _env_file=None,
    )


def _complaint(api: Api, phone: str) -> str:
    r = api.post(
        "/api/v1/tickets",
        json={
            "kind": "complaint",
            "reason": "service",
            "channel": "phone",
            "description": "called about a parcel",
            "customer": {"name": "李雷", "phone": phone},
        },
    )
    assert r.status_code == 201, r.text
    number: str = r.json()["number"]
    return number


def test_tags_named_at_once_follow_the_setting(api: Api, sessions: sessionmaker[Session]) -> None:
    number = _complaint(api, "13800000001")
    r = api.post(f"/api/v1/tickets/{number}/tags", json={"tags": ["a", "b", "c", "d"]})
    assert r.status_code == 422, r.text
    assert "at most 3 tags at once" in r.json()["message"]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(TicketTag)) == 0
    r = api.post(f"/api/v1/tickets/{number}/tags", json={"tags": ["a", "b", "c"]})
    assert r.status_code == 200, r.text


def test_links_per_case_follow_the_setting_on_both_cases(api: Api) -> None:
    one, two, three, four = (_complaint(api, f"1380000010{i}") for i in range(4))
    for other in (two, three):
        assert api.post(f"/api/v1/tickets/{one}/links", json={"number": other}).status_code == 200
    # A third link on `one`, asked from either end, is refused naming the case and the limit.
    for number, other in ((one, four), (four, one)):
        r = api.post(f"/api/v1/tickets/{number}/links", json={"number": other})
        assert r.status_code == 422, r.text
        assert f"case {one} has 2 links already" in r.json()["message"]
    assert api.get(f"/api/v1/tickets/{four}").json()["links"] == []
    # Linking again what is linked already is no new link: still fine at the limit.
    assert api.post(f"/api/v1/tickets/{one}/links", json={"number": two}).status_code == 200


def test_notifications_kept_per_agent_follow_the_setting(
    api: Api, sessions: sessionmaker[Session]
) -> None:
    # Alice opens 12 cases in the service group: Lena (service) hears of each, keeps the
    # newest 10.
    numbers = [_complaint(api, f"139000002{i:02d}") for i in range(12)]
    with sessions() as s:
        kept = s.scalars(
            select(Notification.number)
            .join(Agent, Agent.id == Notification.agent_id)
            .where(Agent.username == "lena")
            .order_by(Notification.id)
        ).all()
    assert kept == numbers[-10:]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit_tags_per_request", 0),
        ("limit_tags_per_request", 101),
        ("limit_links_per_case", 501),
        ("limit_notifications_per_agent", 5),
        ("limit_notifications_per_agent", 10_001),
    ],
)
def test_a_limit_out_of_its_bounds_is_refused_naming_it(name: str, value: int) -> None:
    with pytest.raises(ValidationError) as exc:
        Settings.model_validate({"database_url": "sqlite:///unused.db", name: value})
    assert name in str(exc.value)


def test_the_panels_tag_field_follows_the_setting_too(
    panel_app: Any, sessions: sessionmaker[Session], ctx: Any
) -> None:
    number = make_case(sessions, ctx, "TL1")
    alice = logged_in(panel_app, "alice")
    r = alice.post(f"/panel/cases/{number}/tags", {"tags": "a, b, c, d"})
    assert r.status_code == 422
    assert "at most 3 tags at once" in r.text
    assert alice.post(f"/panel/cases/{number}/tags", {"tags": "a, b, c"}).status_code == 303
    with sessions() as s:
        assert sorted(s.scalars(select(TicketTag.tag))) == ["a", "b", "c"]
