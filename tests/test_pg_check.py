"""`make test`'s PostgreSQL check (tests/pg_reachable.py, the Makefile's pg-check) says the
real reason a PostgreSQL pass cannot run, honours PG_TEST_URL, and on CI stops the run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def check(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "pg_reachable.py"), url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def closed_port() -> int:
    """A port nothing listens on (bound a moment, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def make_pg_check(url: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    """`make pg-check PG_TEST_URL=url` with this interpreter's environment as the venv."""
    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        # -o: the venv is set up already; make must not install anything into it.
        [
            *("make", "-s", "pg-check", f"VENV={venv}"),
            *("-o", str(venv / ".installed"), f"PG_TEST_URL={url}"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_nothing_listening_is_said_so() -> None:
    port = closed_port()
    r = check(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"nothing answers at 127.0.0.1:{port} (PostgreSQL not running there?): start it, "
        "or point PG_TEST_URL at one"
    )


def test_a_url_that_is_not_postgresql_is_refused() -> None:
    r = check("sqlite:///x.db")
    assert r.returncode == 2
    assert "PG_TEST_URL is not a PostgreSQL URL" in r.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_stops_on_ci_and_skips_elsewhere_naming_the_reason() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"
    r = make_pg_check(url, ci=True)
    assert r.returncode != 0
    assert "nothing answers at 127.0.0.1" in r.stdout
    assert "on CI the suite must run on PostgreSQL: stopped" in r.stdout
    r = make_pg_check(url, ci=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing answers at 127.0.0.1" in r.stdout
    assert "the PostgreSQL pass will be skipped" in r.stdout


def test_a_missing_database_and_a_refused_log_in_are_told_apart(pg_url: str) -> None:
    server = make_url(pg_url)
    missing = server.set(database="no_such_database_i17").render_as_string(hide_password=False)
    r = check(missing)
    assert r.returncode == 1
    assert "has no database 'no_such_database_i17': create it" in r.stderr
    stranger = server.set(username="no_such_role_i17").render_as_string(hide_password=False)
    r = check(stranger)
    assert r.returncode == 1
    assert "refused the log-in of no_such_role_i17" in r.stderr
    assert check(pg_url).returncode == 0


@pytest.fixture
def pg_url() -> str:
    """The PostgreSQL the suite runs on (the PostgreSQL pass); skipped on the SQLite pass."""
    url = os.environ.get("AFTERSALES_TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only (AFTERSALES_TEST_DATABASE_URL)")
    return url
