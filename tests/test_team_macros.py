"""Macros: a reply script plus an action in one step, previewed first (the status the case
goes to and the customer's exact words, nothing kept), applied through the same core action
and its checks (roles, a stale version); the macros file is checked like the policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel
from tests.factories import make_case
from tickets.context import Context
from tickets.exceptions import InvalidInput
from tickets.macros import load_macros
from tickets.models import Event, OutboxMessage, Ticket


def _version(page: str) -> str:
    found = re.search(r'data-version="(\d+)"', page)
    assert found
    return found.group(1)


def _state(sessions: sessionmaker[Session], number: str) -> tuple[str, int, int]:
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        sent = s.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.ticket_id == ticket.id, OutboxMessage.channel != "agents")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
        events = len(s.scalars(select(Event.id).where(Event.ticket_id == ticket.id)).all())
        return ticket.status, sent or 0, events


def test_ask_for_a_photo_previewed_then_applied(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "MC1")
    page = alice.get(f"/panel/cases/{number}").text
    assert 'data-macro="ask_for_photo"' in page
    version = _version(page)
    before = _state(sessions, number)
    r = alice.post(
        f"/panel/cases/{number}/macros/preview", {"name": "ask_for_photo", "version": version}
    )
    assert r.status_code == 200, r.text
    assert 'data-macro-status="needs_info"' in r.text
    # The customer's words, as the script fills them for this case (the case speaks Chinese).
    assert "一张能看清问题的近照" in r.text and number in r.text
    # A preview keeps nothing: no status change, no message queued, no event.
    assert _state(sessions, number) == before
    r = alice.post(
        f"/panel/cases/{number}/macros/apply", {"name": "ask_for_photo", "version": version}
    )
    assert r.status_code == 303, r.text
    status, sent, _events = _state(sessions, number)
    assert status == "needs_info"
    with sessions() as s:
        row = s.get(OutboxMessage, sent)
        assert row is not None
        assert row.payload["script"] == "notice_needs_info"
        assert "一张能看清问题的近照" in row.payload["text"]


def test_a_macro_goes_through_the_actions_checks(
    alice: Panel, sessions: sessionmaker[Session], ctx: Context
) -> None:
    number = make_case(sessions, ctx, "MC2")
    page = alice.get(f"/panel/cases/{number}").text
    version = _version(page)
    # A stale page: the preview says so, and applying changes nothing.
    stale = str(int(version) - 1 if int(version) > 1 else int(version) + 5)
    name = "refuse_insufficient_evidence"
    r = alice.post(f"/panel/cases/{number}/macros/preview", {"name": name, "version": stale})
    assert r.status_code == 409
    assert 'data-macro-problem="conflict"' in r.text
    before = _state(sessions, number)
    r = alice.post(f"/panel/cases/{number}/macros/apply", {"name": name, "version": stale})
    assert r.status_code == 409
    assert _state(sessions, number) == before
    # An unknown macro is a 404, and nothing changes.
    r = alice.post(f"/panel/cases/{number}/macros/apply", {"name": "nope", "version": version})
    assert r.status_code == 404
    # Applied for real: refused with the script's words and the reason recorded.
    r = alice.post(f"/panel/cases/{number}/macros/apply", {"name": name, "version": version})
    assert r.status_code == 303, re.findall(r'id="problem".{0,800}', r.text, re.S)
    status, sent, _ = _state(sessions, number)
    assert status == "refused"
    with sessions() as s:
        row = s.get(OutboxMessage, sent)
        assert row is not None and row.payload["script"] == "refusal_insufficient_evidence"
        assert "商品吊牌或水洗标的照片" in row.payload["text"]
    # A refused case offers no refusal macro any more (its action is not allowed now).
    assert f'data-macro="{name}"' not in alice.get(f"/panel/cases/{number}").text


def test_the_bundled_macros_are_valid_and_a_bad_file_is_refused(
    scripts: Any, tmp_path: Path
) -> None:
    macros = load_macros(None, scripts)
    assert {"ask_for_photo", "refuse_insufficient_evidence"} <= set(macros.by_name)
    bad = tmp_path / "macros.toml"
    for text, words in (
        (
            '[[macro]]\nname = "x"\ntitle = {"zh-CN" = "甲", en = "A"}\naction = "approve"\n'
            'script = "notice_refused"\n',
            "action",
        ),
        (
            '[[macro]]\nname = "x"\ntitle = {"zh-CN" = "甲", en = "A"}\naction = "refuse"\n'
            'script = "no_such_script"\n',
            "no_such_script",
        ),
        (
            '[[macro]]\nname = "x"\ntitle = {en = "A"}\naction = "refuse"\n'
            'script = "notice_refused"\n',
            "zh-CN and en",
        ),
        (
            '[[macro]]\nname = "x"\ntitle = {"zh-CN" = "甲", en = "A"}\naction = "refuse"\n'
            'script = "notice_refused"\ncolour = "red"\n',
            "colour",
        ),
    ):
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInput) as exc:
            load_macros(bad, scripts)
        assert words in exc.value.message
