"""Admin pages over HTTP (agents, groups, tokens, the policy, the script library: admins edit,
leads read, agents are refused) and the evidence bundle for a platform dispute."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Panel, admin_panel, logged_in
from tests.factories import PASSWORD, make_case
from tickets.auth import agent_for_token
from tickets.context import Context
from tickets.models import Agent, ApiToken, Attachment, AuditEntry, Ticket, utcnow


def test_admin_pages_are_for_admins_and_read_only_for_leads(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session]
) -> None:
    for url in ("/panel/admin", "/panel/admin/policy", "/panel/admin/scripts"):
        assert alice.get(url).status_code == 403, url
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/admin")
    assert page.status_code == 200
    assert "Read-only" in page.text
    assert 'id="new-agent"' not in page.text
    assert (
        lena.post("/panel/admin/agents", {"username": "x", "password": "p" * 12}).status_code == 403
    )
    with sessions() as s:
        bob = s.scalar(select(Agent.id).where(Agent.username == "bob"))
    r = lena.post(f"/panel/admin/agents/{bob}", {"role": "admin", "active": "1"})
    assert r.status_code == 403
    assert lena.post("/panel/admin/tokens", {"username": "bob"}).status_code == 403


def test_an_admin_creates_changes_and_deactivates_agents(
    panel_app: Any, sessions: sessionmaker[Session]
) -> None:
    boss = admin_panel(panel_app, sessions)
    page = boss.get("/panel/admin")
    assert 'id="new-agent"' in page.text
    # Problems next to their fields.
    r = boss.post("/panel/admin/agents", {"username": "bad name!", "password": "p" * 12})
    assert r.status_code == 422
    assert 'data-error-for="username"' in r.text
    r = boss.post("/panel/admin/agents", {"username": "dora", "password": "short"})
    assert r.status_code == 422
    assert 'data-error-for="password"' in r.text
    r = boss.post(
        "/panel/admin/agents",
        {
            "username": "dora",
            "display_name": "Dora",
            "role": "agent",
            "group": "logistics",
            "password": "a long enough secret",
        },
    )
    assert (r.status_code, r.headers["location"]) == (303, "/panel/admin?saved=agent")
    dora = Panel(panel_app)
    assert dora.login("dora", "a long enough secret").status_code == 303
    assert dora.get("/panel").status_code == 200
    with sessions() as s:
        dora_id = s.scalar(select(Agent.id).where(Agent.username == "dora"))
    r = boss.post(f"/panel/admin/agents/{dora_id}", {"role": "lead", "group": "finance"})
    assert r.status_code == 303
    with sessions() as s:
        row = s.get(Agent, dora_id)
        assert row is not None
        assert (row.role, row.group, row.active) == ("lead", "finance", False)
    # Deactivated: her session is gone, and she cannot log in again.
    assert dora.get("/panel").status_code == 303
    assert Panel(panel_app).login("dora", "a long enough secret").status_code == 401
    # An admin cannot lock themselves out.
    with sessions() as s:
        boss_id = s.scalar(select(Agent.id).where(Agent.username == "boss"))
    r = boss.post(f"/panel/admin/agents/{boss_id}", {"role": "agent", "active": "1"})
    assert r.status_code == 422
    # Every change is in the desk's audit trail, with who made it.
    with sessions() as s:
        trail = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.data)
            .where(AuditEntry.target == "dora")
            .order_by(AuditEntry.id)
        ).all()
    assert [(a, act, t) for a, act, t, _ in trail] == [
        ("agent:boss", "agent.created", "dora"),
        ("agent:boss", "agent.changed", "dora"),
    ]
    assert trail[1][3]["changes"] == {
        "role": ["agent", "lead"],
        "group": ["logistics", "finance"],
        "active": [True, False],
    }


def test_an_api_token_is_shown_once_and_can_be_revoked(
    panel_app: Any, sessions: sessionmaker[Session]
) -> None:
    boss = admin_panel(panel_app, sessions)
    r = boss.post("/panel/admin/tokens", {"username": "bob", "name": "ERP sync"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    token = re.search(r'id="token-value">([^<]+)<', r.text)
    assert token
    value = token.group(1)
    api = TestClient(panel_app)
    assert (
        api.get("/api/v1/scripts", headers={"Authorization": f"Bearer {value}"}).status_code == 200
    )
    # Never shown again.
    assert value not in boss.get("/panel/admin").text
    with sessions() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "ERP sync"))
        assert row is not None
        token_id = row.id
    assert boss.post(f"/panel/admin/tokens/{token_id}/revoke").status_code == 303
    with sessions() as s:
        assert agent_for_token(session=s, token=value, now=utcnow()) is None
    assert (
        api.get("/api/v1/scripts", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    )
    assert boss.post("/panel/admin/tokens", {"username": "nobody"}).status_code == 422
    with sessions() as s:
        actions = list(
            s.scalars(
                select(AuditEntry.action).where(AuditEntry.target == "bob").order_by(AuditEntry.id)
            )
        )
    assert actions[-2:] == ["token.created", "token.revoked"]


def test_the_policy_and_the_script_library_read_only(panel_app: Any) -> None:
    lena = logged_in(panel_app, "lena")
    page = lena.get("/panel/admin/policy")
    assert page.status_code == 200
    for section in ("sla-targets", "calendars", "routing", "policy-eligibility", "policy-risk"):
        assert f'id="{section}"' in page.text, section
    assert "policy-auto_approval" in page.text
    assert "First response" in page.text
    scripts = lena.get("/panel/admin/scripts?language=en")
    assert scripts.status_code == 200
    assert "compensation_coupon" in scripts.text
    one = lena.get("/panel/admin/scripts?name=compensation_coupon&language=en")
    assert one.status_code == 200
    preview = re.search(r'id="script-preview">(.*?)</div>', one.text, re.S)
    assert preview and preview.group(1).strip()
    assert lena.get("/panel/admin/scripts?name=nope&language=en").status_code == 404


# ---------------------------------------------------------------- the evidence bundle


def test_the_evidence_bundle_holds_the_timeline_and_the_photos(
    panel_app: Any, alice: Panel, sessions: sessionmaker[Session], ctx: Context, settings: Any
) -> None:
    number = make_case(sessions, ctx, "Z1")
    media = settings.media_dir
    media.mkdir(parents=True, exist_ok=True)
    (media / "seam.jpg").write_bytes(b"\xff\xd8\xff a torn seam")
    with sessions() as s:
        ticket = s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        s.add_all(
            [
                Attachment(
                    ticket=ticket,
                    kind="photo",
                    mime="image/jpeg",
                    size=16,
                    sha256="a" * 64,
                    storage_key="seam.jpg",
                    original_name="../../seam photo.jpg",
                ),
                Attachment(
                    ticket=ticket,
                    kind="photo",
                    mime="image/jpeg",
                    size=1,
                    sha256="b" * 64,
                    storage_key="gone.jpg",
                ),
            ]
        )
        s.commit()
    assert alice.post(f"/panel/cases/{number}/reply", {"text": "收到，正在处理"}).status_code == 303
    anon = TestClient(panel_app, follow_redirects=False)
    assert anon.get(f"/panel/cases/{number}/bundle.zip").status_code == 303
    r = alice.get(f"/panel/cases/{number}/bundle.zip")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert f"{number}-evidence.zip" in r.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    names = archive.namelist()
    assert "timeline.html" in names
    photos = [n for n in names if n.startswith("files/")]
    assert len(photos) == 1
    assert ".." not in photos[0] and " " not in photos[0]
    assert archive.read(photos[0]) == b"\xff\xd8\xff a torn seam"
    page = archive.read("timeline.html").decode()
    assert number in page
    assert "收到，正在处理" in page  # the conversation
    assert "袜子" in page  # the order
    assert f'src="{photos[0]}"' not in page or "<img" in page
    assert "missing from storage" in page
    assert "a" * 64 in page
    assert alice.get("/panel/cases/AS-19990101-0001/bundle.zip").status_code == 404


def test_an_admin_resetting_a_password_ends_that_agents_sessions(
    panel_app: Any, sessions: sessionmaker[Session]
) -> None:
    boss = admin_panel(panel_app, sessions)
    alice_laptop, alice_phone = logged_in(panel_app, "alice"), logged_in(panel_app, "alice")
    bob = logged_in(panel_app, "bob")
    with sessions() as s:
        alice_id = s.scalar(select(Agent.id).where(Agent.username == "alice"))
        boss_id = s.scalar(select(Agent.id).where(Agent.username == "boss"))
    r = boss.post(
        f"/panel/admin/agents/{alice_id}",
        {"role": "agent", "group": "service", "active": "1", "password": "a brand new secret"},
    )
    assert r.status_code == 303, r.text
    # Whoever held her old password (or a session opened with it) is out, on every device.
    assert alice_laptop.get("/panel").status_code == 303
    assert alice_phone.get("/panel").status_code == 303
    assert Panel(panel_app).login("alice", PASSWORD).status_code == 401
    assert Panel(panel_app).login("alice", "a brand new secret").status_code == 303
    # Nobody else's session is touched; an admin resetting their own keeps the one in use.
    assert bob.get("/panel").status_code == 200
    other_boss_tab = logged_in(panel_app, "boss")
    r = boss.post(
        f"/panel/admin/agents/{boss_id}",
        {"role": "admin", "active": "1", "password": "the boss's new secret"},
    )
    assert r.status_code == 303, r.text
    assert boss.get("/panel").status_code == 200
    assert other_boss_tab.get("/panel").status_code == 303
