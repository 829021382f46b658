"""A new user's first run of the `aftersales` command, each through the real command in a
process of its own: a database URL it cannot use, a misspelt setting, a port already taken,
and the addresses it prints."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.serve import Serve

ROOT = Path(__file__).resolve().parents[1]


def run(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}",
        "AFTERSALES_MEDIA_DIR": str(tmp_path / "media"),
    }


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "commands"),
    [
        ("mysql://shop:s3cret-pw@db.example.com/shop", ("check", "serve", "migrate", "demo")),
        ("postgres//shop:s3cret-pw@localhost/shop", ("check",)),
        # psycopg 2's form: the lock file installs psycopg 3.
        ("postgresql://shop:s3cret-pw@localhost/shop", ("serve",)),
    ],
)
def test_a_database_url_it_cannot_use_is_one_line_from_every_command(
    env: dict[str, str], tmp_path: Path, url: str, commands: tuple[str, ...]
) -> None:
    env = {**env, "AFTERSALES_DATABASE_URL": url}
    for command in commands:
        r = run(env, tmp_path, command, *(["--port", "0"] if command == "serve" else []))
        assert r.returncode != 0, command
        assert r.stdout == "", command
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (command, r.stderr)
        line = lines[0]
        assert line.startswith("error: AFTERSALES_DATABASE_URL: "), line
        # The forms it takes, and never the password the refused URL held.
        assert "sqlite:///" in line and "postgresql+psycopg://" in line, line
        assert "s3cret-pw" not in line


@pytest.mark.parametrize(
    "url",
    [
        # The password as typed at `createuser --pwprompt`: after its `@`, `:` starts a port.
        "postgresql+psycopg://shop:s3cret@pw:w/1@127.0.0.1:5432/shop",
        # Its `@` left part of it in the host name.
        "postgresql+psycopg://shop:s3cret@pw@127.0.0.1:5432/shop",
    ],
)
def test_a_password_not_percent_encoded_is_named_with_its_encoding(
    env: dict[str, str], tmp_path: Path, url: str
) -> None:
    # Once "invalid literal for int() with base 10: 'w'", or a host `pw@127.0.0.1` not found.
    r = run({**env, "AFTERSALES_DATABASE_URL": url}, tmp_path, "migrate")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: AFTERSALES_DATABASE_URL: "), lines[0]
    assert "percent-encoded (@ as %40, : as %3A, / as %2F" in lines[0], lines[0]
    assert "s3cret" not in lines[0]


def test_a_database_that_does_not_answer_is_one_line_from_every_command(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Step 4 of the production guide before PostgreSQL is up (or its role created): once a
    # 40-line traceback from `migrate`, and "the schema is behind: run `aftersales migrate`"
    # from `serve` and `migrate --check`, which running it could not mend.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+psycopg://shop:s3cret-pw@127.0.0.1:{port}/shop"
    env = {**env, "AFTERSALES_DATABASE_URL": url}
    for command in (["migrate"], ["migrate", "--check"], ["serve", "--port", "0"], ["demo"]):
        r = run(env, tmp_path, *command)
        assert r.returncode in (1, 2), command
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, (command, r.stderr)
        assert lines[0].startswith(
            "error: the database (AFTERSALES_DATABASE_URL) cannot be used: connection failed"
        ), (command, lines[0])
        assert "behind" not in r.stdout + r.stderr and "s3cret-pw" not in lines[0]


def test_a_misspelt_setting_is_named_with_the_one_meant(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "AFTERSALES_TIMEZON=Europe/Paris\nAFTERSALES_SHOP_NAME=Tea House\n", encoding="utf-8"
    )
    env = {
        **env,
        "AFTERSALES_SECERT_KEY": "x" * 40,
        # What the test suite and serve's worker processes read: not misspelt settings.
        "AFTERSALES_TEST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "AFTERSALES_SERVE_LOG_LEVEL": "info",
    }
    r = run(env, tmp_path, "check")
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: AFTERSALES_SECERT_KEY in the environment is not a setting and is ignored: "
        "did you mean AFTERSALES_SECRET_KEY?",
        "warning: AFTERSALES_TIMEZON in .env is not a setting and is ignored: "
        "did you mean AFTERSALES_TIMEZONE?",
    ], r.stderr
    # Ignored indeed: the timezone is still the default, and the check goes on.
    assert "timezone Asia/Shanghai" in r.stdout


def test_a_port_in_use_is_said_plainly_before_any_work(
    env: dict[str, str], tmp_path: Path, taken_port: int
) -> None:
    r = run(env, tmp_path, "serve", "--port", str(taken_port))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"port {taken_port} on 127.0.0.1 is already in use" in lines[0]
    assert f"--port {taken_port + 1}" in lines[0]  # what to do
    assert not (tmp_path / "shop.db").exists()  # refused before the database was touched


def test_a_port_that_is_no_port_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    r = run(env, tmp_path, "serve", "--port", "70000")
    assert r.returncode == 2
    assert "'70000' is not a port" in r.stderr and "Traceback" not in r.stderr


def test_demo_prints_the_panel_at_the_port_serve_will_use(
    env: dict[str, str], tmp_path: Path
) -> None:
    r = run(env, tmp_path, "demo", "--port", "8011")
    assert r.returncode == 0, r.stderr
    assert "http://127.0.0.1:8011/panel" in r.stdout
    assert ":8000" not in r.stdout
    # The shop's own address, when set, is what agents open.
    given = {**env, "AFTERSALES_PUBLIC_URL": "https://desk.example.com"}
    r = run(given, tmp_path, "demo", "--port", "8011")
    assert r.returncode == 0, r.stderr
    assert "https://desk.example.com/panel" in r.stdout


def test_serve_prints_the_address_it_really_listens_on(tmp_path: Path) -> None:
    serve = Serve(
        database_url=f"sqlite:///{tmp_path / 'shop.db'}",
        data_dir=tmp_path / "run",
        api_url=None,
        token=None,
        serve_args=("--no-scheduler",),
        env={"AFTERSALES_TIMEZON": "UTC"},
    )
    serve.start()  # on --port 0: any free port
    try:
        printed = re.findall(r"aftersales serving on (\S+)", serve.log())
        assert printed == [serve.url]
        assert f"JSON API docs: {serve.url}/api/v1/docs" in serve.log()
        # Said once, by serve (not again by the child that checks the schema and scripts).
        assert serve.log().count("AFTERSALES_TIMEZON in the environment is not a setting") == 1
    finally:
        serve.stop()


def test_the_example_settings_file_names_only_settings() -> None:
    """`.env.example` copied to `.env`, as it invites, warns about nothing."""
    from tickets.settings import unknown_names

    assert unknown_names({}, ROOT / ".env.example") == []
    assert unknown_names({"AFTERSALES_MEDIA_DIRS": "x"}, None) == [
        "AFTERSALES_MEDIA_DIRS in the environment is not a setting and is ignored: "
        "did you mean AFTERSALES_MEDIA_DIR?"
    ]


def test_serve_points_at_the_demo_only_on_a_trial_desk() -> None:
    # On a shop's PostgreSQL, under systemd, the banner once said "(demo log-ins: `aftersales
    # demo` prints them)", inviting the published passwords into production; and "the bot
    # polls in one of them" with the bot off.
    from api.cli import serve_banner
    from tickets.settings import Settings

    trial = Settings(database_url="sqlite:///./data/aftersales.db", _env_file=None)
    lines = serve_banner(trial, base="http://127.0.0.1:8000", workers=1, scheduler=True)
    assert (
        "  agents' panel: http://127.0.0.1:8000/panel   (demo log-ins: `aftersales demo` "
        "prints them)" in lines
    )
    shop = Settings(
        database_url="postgresql+psycopg://aftersales:pw@127.0.0.1:5432/aftersales",
        _env_file=None,
    )
    lines = serve_banner(shop, base="http://127.0.0.1:8000", workers=2, scheduler=True)
    assert "  agents' panel: http://127.0.0.1:8000/panel" in lines
    assert not any("demo" in line for line in lines), lines
    assert "  processes:     2" in lines
    hooked = shop.model_copy(
        update={"telegram_token": "1:x", "webhook_url": "https://desk.example.com/telegram/webhook"}
    )
    lines = serve_banner(hooked, base="http://127.0.0.1:8000", workers=2, scheduler=False)
    assert "  processes:     2 (each takes the webhook)" in lines
    assert "  SLA sweep:     off (--no-scheduler)" in lines
