"""The `aftersales` command as a user runs it: a real process, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import order_json
from tickets.settings import Settings

DATA = Path(__file__).resolve().parent / "data"


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    return {
        **clean,
        "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "AFTERSALES_MEDIA_DIR": str(tmp_path / "media"),
    }


def test_agent_token_and_import(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "migrate").returncode == 0
    r = run(
        env,
        "create-agent",
        "wang",
        "--role",
        "lead",
        "--group",
        "service",
        "--telegram-user-id",
        "777001",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    assert r.returncode == 0, r.stderr
    assert "agent wang created (lead, group service)" in r.stdout
    assert "no password" not in r.stdout
    r = run(env, "create-agent", "wang", "--password-stdin", stdin="another password\n")
    assert r.returncode == 2
    assert "already exists" in r.stderr
    # No terminal to ask on and no --password-stdin: an agent for API tokens, and it says so.
    r = run(env, "create-agent", "erp", "--role", "agent")
    assert r.returncode == 0, r.stderr
    assert "no password: it cannot log in to the panel" in r.stdout
    r = run(env, "create-token", "wang")
    assert r.returncode == 0
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("as_")
    assert run(env, "create-token", "nobody").returncode == 2
    # The shop's integration: a token that may push orders (and only that).
    r = run(env, "create-token", "wang", "--scope", "orders", "--name", "ERP")
    assert r.returncode == 0, r.stderr
    orders_token = r.stdout.strip().splitlines()[-1]
    assert run(env, "create-token", "wang", "--scope", "everything").returncode == 2

    r = run(env, "import-orders", str(DATA / "orders_sample.csv"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "dry run" in r.stdout
    r = run(env, "import-orders", str(DATA / "orders_sample.csv"))
    assert r.returncode == 0, r.stderr
    assert "3 created" in r.stdout
    r = run(env, "import-orders", str(DATA / "orders_sample.csv"))
    assert "3 unchanged" in r.stdout

    bad = tmp_path / "bad.csv"
    lines = (DATA / "orders_sample.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("89.90", "eighty")
    lines.append(lines[1].replace("TB20240301001", "NEW-1").replace("TEA-LJ-250,", ","))
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run(env, "import-orders", str(bad))
    assert r.returncode == 2
    assert "nothing was imported" in r.stderr
    assert "line 3, unit_price" in r.stderr
    assert "line 7, sku" in r.stderr

    # The token works against the API, and the imported order is there.
    settings = Settings(database_url=env["AFTERSALES_DATABASE_URL"], _env_file=None)
    with TestClient(create_app(settings)) as client:
        got = client.get(
            "/api/v1/orders/TB20240301001", headers={"Authorization": f"Bearer {token}"}
        )
        assert got.status_code == 200
        pushed = {"orders": [order_json("PUSHED-1")]}
        as_desk = {"Authorization": f"Bearer {token}"}
        as_shop = {"Authorization": f"Bearer {orders_token}"}
        assert client.post("/api/v1/orders", json=pushed, headers=as_desk).status_code == 403
        pushed_r = client.post("/api/v1/orders", json=pushed, headers=as_shop)
        assert pushed_r.status_code == 200, pushed_r.text
        assert client.get("/api/v1/tickets", headers=as_shop).status_code == 403
        assert got.json()["customer"]["name"] == "张伟"
        assert (
            client.get(
                "/api/v1/orders/NEW-1", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 404
        )
    from sqlalchemy import select

    from tickets.db import make_engine
    from tickets.models import Agent, AuditEntry

    engine = make_engine(env["AFTERSALES_DATABASE_URL"])
    with engine.connect() as conn:
        linked = conn.scalar(select(Agent.telegram_user_id).where(Agent.username == "wang"))
        trail = conn.execute(
            select(AuditEntry.actor, AuditEntry.action).where(AuditEntry.target == "wang")
        ).all()
    assert [tuple(row) for row in trail] == [
        ("cli", "agent.created"),
        ("cli", "token.created"),
        ("cli", "token.created"),
    ]
    engine.dispose()
    assert linked == 777001  # the agents' chat knows who presses "take it"


def test_the_version_shown_is_the_newest_release_in_the_changelog(
    env: dict[str, str], app: Any
) -> None:
    """One version everywhere a user reads it: `aftersales --version`, the API's OpenAPI, and
    the newest release CHANGELOG.md describes."""
    import re

    changelog = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text("utf-8")
    newest = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)[0]
    done = run(env, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"aftersales {newest}"
    with TestClient(app) as client:
        assert client.get("/api/v1/openapi.json").json()["info"]["version"] == newest


def test_check_gives_a_verdict_per_line(env: dict[str, str]) -> None:
    r = run(env, "check")
    assert r.returncode == 1
    assert "FAIL  database schema is behind: run `aftersales migrate`" in r.stdout
    run(env, "migrate")
    r = run(env, "check")
    assert r.returncode == 0, r.stdout
    assert "ok    database schema up to date" in r.stdout
    assert "warn  AFTERSALES_SECRET_KEY is the development default" in r.stdout
    r = run({**env, "AFTERSALES_TIMEZONE": "Mars/Olympus"}, "check")
    assert r.returncode != 0
    assert "error: AFTERSALES_TIMEZONE: unknown timezone 'Mars/Olympus'" in r.stderr


def test_migrate_check_says_whether_the_schema_is_current_and_changes_nothing(
    env: dict[str, str],
) -> None:
    r = run(env, "migrate", "--check")
    assert r.returncode == 3
    assert "the database schema is behind: run `aftersales migrate`" in r.stderr
    assert run(env, "migrate", "--check").returncode == 3  # still behind: nothing migrated
    run(env, "migrate")
    r = run(env, "migrate", "--check")
    assert r.returncode == 0, r.stderr
    assert "database schema is up to date" in r.stdout


def test_scripts_check(env: dict[str, str], tmp_path: Path) -> None:
    r = run(env, "scripts", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: 60 scripts" in r.stdout
    shop = tmp_path / "shop_scripts"
    shop.mkdir()
    bundled = Path(__file__).resolve().parent.parent / "templates" / "scripts"
    text = (bundled / "notice_closed.en.md").read_text(encoding="utf-8")
    (shop / "notice_closed.en.md").write_text(
        text.replace("{{ shop_name }}", "{{ shopname }}"), encoding="utf-8"
    )
    r = run({**env, "AFTERSALES_SCRIPTS_DIR": str(shop)}, "scripts", "check")
    assert r.returncode == 1
    assert "notice_closed.en.md" in r.stdout
    assert "shopname" in r.stdout


def test_serve_refuses_to_start_with_a_script_override_that_breaks_a_check(
    env: dict[str, str], tmp_path: Path
) -> None:
    # The check runs in serve's preflight child (api/preflight.py), not in the server.
    shop = tmp_path / "shop_scripts"
    shop.mkdir()
    bundled = Path(__file__).resolve().parent.parent / "templates" / "scripts"
    text = (bundled / "notice_closed.zh-CN.md").read_text(encoding="utf-8")
    (shop / "notice_closed.zh-CN.md").write_text(
        text.replace("{{ shop_name }}", "{{ shopname }}"), encoding="utf-8"
    )
    r = run({**env, "AFTERSALES_SCRIPTS_DIR": str(shop)}, "serve", "--port", "0")
    assert r.returncode == 2
    assert "the reply scripts do not pass their checks" in r.stderr
    assert "notice_closed.zh-CN.md" in r.stderr and "shopname" in r.stderr
    assert "serving on" not in r.stdout


def test_serve_refuses_to_start_with_a_bad_policy_file_and_says_why_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('default_group = "nobody"\n', encoding="utf-8")
    r = run({**env, "AFTERSALES_POLICY_FILE": str(policy)}, "serve", "--port", "0")
    assert r.returncode == 2
    assert r.stderr.count("policy.toml is refused") == 1, r.stderr
    assert "default_group 'nobody' is not one of the groups" in r.stderr
    assert "serving on" not in r.stdout


def test_sla_sweep_once_as_of_a_given_time(env: dict[str, str]) -> None:
    r = run(env, "sla-sweep", "--now", "next tuesday")
    assert r.returncode == 2
    assert "ISO time with an offset" in r.stderr
    assert run(env, "demo").returncode == 0
    r = run(env, "sla-sweep", "--now", "2099-01-01T09:00:00+08:00")
    assert r.returncode == 0, r.stderr
    assert "SLA sweep as of 2099-01-01T09:00:00+08:00" in r.stdout
    # The demo's open cases are all long overdue by then; those waiting on the customer close.
    breached = int(r.stdout.split(" breached")[0].rsplit(" ", 1)[-1])
    closed = int(r.stdout.split(" closed for silence")[0].rsplit(" ", 1)[-1])
    assert breached > 5 and closed >= 4
    r = run(env, "sla-sweep", "--now", "2099-01-01T09:00:00+08:00")
    assert " 0 breached" in r.stdout and " 0 closed" in r.stdout  # nothing twice


def test_demo_and_chat_link_print_a_signed_link_that_opens_the_chat(env: dict[str, str]) -> None:
    from datetime import UTC, datetime

    from tickets.chat_links import read_token
    from tickets.settings import DEV_SECRET

    r = run(env, "demo")
    assert r.returncode == 0, r.stderr
    # The first run shows the customer's side too: a link for a demo order.
    demo_url = r.stdout.splitlines()[-1].strip()
    assert demo_url.startswith("http://127.0.0.1:8000/chat?link=")
    now = datetime.now(UTC)
    assert read_token(DEV_SECRET, demo_url.split("link=")[1], now) == "DEMO-0046"
    r = run(env, "chat-link", "demo-0003")
    assert r.returncode == 0, r.stderr
    url = r.stdout.splitlines()[-1]
    assert read_token(DEV_SECRET, url.split("link=")[1], now) == "DEMO-0003"
    r = run(env, "chat-link", "NO-SUCH-1")
    assert r.returncode != 0
    assert "NO-SUCH-1" in r.stderr
    r = run({**env, "AFTERSALES_WEB_CHAT": "false"}, "chat-link", "DEMO-0003")
    assert r.returncode == 2 and "web chat is off" in r.stderr
