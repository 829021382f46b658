"""`aftersales check --production` as an operator runs it (a real process, a real database: a
SQLite file, or a fresh PostgreSQL database in the PostgreSQL pass): a safe installation
passes; each unsafe thing is refused in one line of its own and the command exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from sqlalchemy import update

from tests.conftest import PG_URL, _fresh_pg_database
from tests.fakes.serve import ROOT
from tickets.db import make_engine, upgrade
from tickets.models import Agent

SAFE = {
    "AFTERSALES_SECRET_KEY": "prod-" + "k" * 48,
    "AFTERSALES_PUBLIC_URL": "https://shop.example.com",
}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A migrated database of its own: a SQLite file, or a fresh PostgreSQL database."""
    if PG_URL:
        with _fresh_pg_database(PG_URL) as url:
            yield url
        return
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    upgrade(url)
    yield url


def check(database_url: str, tmp_path: Path, *args: str, **env: str) -> tuple[int, list[str]]:
    """`aftersales check --production ARGS` with the safe settings overridden by `env`; the
    exit code and the production lines of its output."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "check", "--production", *args],
        cwd=tmp_path,
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "AFTERSALES_DATABASE_URL": database_url,
            "AFTERSALES_MEDIA_DIR": str(tmp_path / "media"),
            **SAFE,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if "production:" in line]
    return done.returncode, lines


def refused(lines: list[str], words: str) -> bool:
    """Exactly one refusal line names `words`."""
    return sum(1 for line in lines if line.startswith("FAIL") and words in line) == 1


def test_a_safe_installation_passes(database_url: str, tmp_path: Path) -> None:
    code, lines = check(database_url, tmp_path)
    assert code == 0, lines
    assert lines == ["ok    production: nothing unsafe found"]


def test_the_development_secret_key_is_refused(database_url: str, tmp_path: Path) -> None:
    code, lines = check(database_url, tmp_path, AFTERSALES_SECRET_KEY="dev-only-change-me")
    assert code == 1
    assert len(lines) == 1 and refused(lines, "AFTERSALES_SECRET_KEY is the development default")


def test_the_examples_placeholder_or_a_short_secret_key_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    # deploy/aftersales.env.example as copied, CHANGE-ME left in: once it passed as "nothing
    # unsafe found", and a 9-character key signed every agent's session.
    code, lines = check(database_url, tmp_path, AFTERSALES_SECRET_KEY="CHANGE-ME")
    assert code == 1
    assert len(lines) == 1 and refused(lines, "is still the example's CHANGE-ME"), lines
    code, lines = check(database_url, tmp_path, AFTERSALES_SECRET_KEY="our-shop-2026")
    assert code == 1
    assert len(lines) == 1 and refused(lines, "AFTERSALES_SECRET_KEY has 13 characters"), lines


def test_the_examples_placeholder_webhook_secret_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    code, lines = check(
        database_url,
        tmp_path,
        AFTERSALES_WEBHOOK_URL="https://shop.example.com/telegram/webhook",
        AFTERSALES_WEBHOOK_SECRET="CHANGE-ME",
    )
    assert code == 1
    assert len(lines) == 1 and refused(lines, "WEBHOOK_SECRET is still the example's"), lines


def test_metrics_on_every_interface_are_refused(database_url: str, tmp_path: Path) -> None:
    # The metrics listener asks for no token: on 0.0.0.0 the desk's counts are public.
    for address in ("0.0.0.0:9464", "[::]:9464"):
        code, lines = check(database_url, tmp_path, AFTERSALES_METRICS_ADDRESS=address)
        assert code == 1
        assert len(lines) == 1 and refused(lines, "listens on every interface"), lines
    code, lines = check(database_url, tmp_path, AFTERSALES_METRICS_ADDRESS="127.0.0.1:9464")
    assert code == 0, lines


def test_several_processes_on_sqlite_are_refused(database_url: str, tmp_path: Path) -> None:
    code, lines = check(database_url, tmp_path, "--workers", "2")
    if PG_URL:
        # PostgreSQL is shared by any number of processes.
        assert code == 0, lines
        return
    assert code == 1
    assert len(lines) == 1 and refused(lines, "SQLite cannot be shared by 2 processes")
    # One process on SQLite is allowed.
    assert check(database_url, tmp_path, "--workers", "1")[0] == 0


def test_http_without_tls_is_refused_unless_a_proxy_terminates_it(
    database_url: str, tmp_path: Path
) -> None:
    code, lines = check(database_url, tmp_path, AFTERSALES_PUBLIC_URL="http://shop.example.com")
    assert code == 1
    assert len(lines) == 1 and refused(lines, "is not HTTPS")
    code, lines = check(
        database_url,
        tmp_path,
        AFTERSALES_PUBLIC_URL="http://10.0.0.5:8000",
        AFTERSALES_BEHIND_TLS_PROXY="true",
    )
    assert code == 0, lines


def test_a_webhook_without_a_secret_is_refused(database_url: str, tmp_path: Path) -> None:
    webhook = {"AFTERSALES_WEBHOOK_URL": "https://shop.example.com/telegram/webhook"}
    code, lines = check(database_url, tmp_path, **webhook)
    assert code == 1
    assert len(lines) == 1 and refused(lines, "without AFTERSALES_WEBHOOK_SECRET")
    code, lines = check(database_url, tmp_path, **webhook, AFTERSALES_WEBHOOK_SECRET="s" * 32)
    assert code == 0, lines


def test_the_demo_shops_agents_are_refused_until_they_are_disabled(
    database_url: str, tmp_path: Path
) -> None:
    from api.demo_pictures import demo_photo
    from tickets.auth import hash_password
    from tickets.db import make_sessionmaker, unit_of_work
    from tickets.demo import load_demo
    from tickets.models import utcnow
    from tickets.settings import Settings

    engine = make_engine(database_url)
    try:
        settings = Settings(database_url=database_url, media_dir=tmp_path / "m", _env_file=None)
        with unit_of_work(make_sessionmaker(engine)) as session:
            load_demo(session=session, settings=settings, now=utcnow(), draw_photo=demo_photo)
        code, lines = check(database_url, tmp_path)
        assert code == 1
        assert len(lines) == 1 and refused(lines, "demo agents still log in")
        assert "admin" in lines[0] and "finlead" in lines[0]
        # The admin given a password of its own, every other demo agent deactivated: passes.
        with unit_of_work(make_sessionmaker(engine)) as session:
            session.execute(
                update(Agent)
                .where(Agent.username == "admin")
                .values(password_hash=hash_password("the shop's own long passphrase"))
            )
            session.execute(update(Agent).where(Agent.username != "admin").values(active=False))
        code, lines = check(database_url, tmp_path)
        assert code == 0, lines
    finally:
        engine.dispose()


def test_every_refusal_at_once_one_line_each(database_url: str, tmp_path: Path) -> None:
    code, lines = check(
        database_url,
        tmp_path,
        "--workers",
        "3",
        AFTERSALES_SECRET_KEY="dev-only-change-me",
        AFTERSALES_PUBLIC_URL="http://shop.example.com",
        AFTERSALES_WEBHOOK_URL="https://shop.example.com/telegram/webhook",
    )
    assert code == 1
    assert len(lines) == (3 if PG_URL else 4), lines
    assert all(line.startswith("FAIL  production: ") for line in lines)


def test_the_guides_settings_file_reads_the_same_in_the_shell_as_in_systemd(
    tmp_path: Path,
) -> None:
    # Step 4 of the guide sources the file in sh; systemd reads it as an EnvironmentFile (as
    # python-dotenv does). `AFTERSALES_SHOP_NAME=Example Shop` unquoted once ran `Shop` as a
    # command there ("Shop: command not found") and left the shop nameless.
    example = ROOT / "deploy" / "aftersales.env.example"
    done = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; set +a; env -0', "sh", str(example)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    shell = dict(
        item.split("=", 1) for item in done.stdout.split("\0") if item.startswith("AFTERSALES_")
    )
    assert shell == dotenv_values(example)
    assert shell["AFTERSALES_SHOP_NAME"] == "Example Shop"
