"""The polling bot in a process of its own (api/bot_process.py), as `aftersales serve` runs it:
the real process against the fake Bot API over HTTP.

What a user would notice, asserted:
- a customer's /start is answered, by a second process beside the server's, which runs at a
  lower priority than the server (people's requests first);
- a clean stop (SIGTERM) stops both, exit code 0;
- a server killed outright (SIGKILL) leaves no bot behind polling Telegram, and serve starts
  again on the same database;
- a bot process that dies on its own stops serve with exit code 1 (its supervisor restarts it),
  instead of a desk that looks up while no customer is answered.
SQLite (one process is what serve allows there); the PostgreSQL pass runs the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.bot_api import FakeBotApi
from tests.fakes.serve import Serve

CHAT = 880_001
METRICS_TOKEN = "m" * 32


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux's /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def bot_child(serve: Serve) -> int:
    """The serve process's one child: the bot's process (the preflight child has ended)."""
    assert serve.proc is not None
    pid = serve.proc.pid
    assert wait_until(lambda: [c for c in children(pid) if alive(c)] != [], 20)
    found = [c for c in children(pid) if alive(c)]
    assert len(found) == 1, f"expected the bot's process alone, found {found}"
    return found[0]


def answered(fake: FakeBotApi, text: str = "/start") -> bool:
    fake.message(CHAT, text)
    messages = fake.run(fake.wait_messages(CHAT, 1, timeout=20), 25)
    return bool(messages)


@pytest.fixture
def serving(database_url: str, tmp_path: Path) -> Iterator[tuple[Serve, FakeBotApi]]:
    fake = FakeBotApi().start()
    serve = Serve(
        database_url=database_url,
        data_dir=tmp_path / "shop",
        api_url=fake.url,
        env={"AFTERSALES_METRICS_TOKEN": METRICS_TOKEN},
    )
    try:
        serve.setup(in_process=True)
        yield serve, fake
    finally:
        serve.stop()
        fake.stop()


def test_the_bot_answers_from_its_own_process_and_stops_with_the_server(
    serving: tuple[Serve, FakeBotApi],
) -> None:
    serve, fake = serving
    serve.start()
    assert "in a process of its own" in serve.log()
    child = bot_child(serve)
    assert answered(fake), "the customer's /start was not answered"
    assert f"the bot runs in process {child}" in serve.log()
    # When both want a core, the server's requests get it first.
    assert serve.proc is not None
    assert os.getpriority(os.PRIO_PROCESS, child) > os.getpriority(os.PRIO_PROCESS, serve.proc.pid)
    # The server's /metrics counts what the bot's process did.
    metrics = httpx.get(
        f"{serve.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    handled = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.text.splitlines()
        if line.startswith("aftersales_bot_updates_total")
    ]
    assert sum(handled) >= 1, metrics.text[:2000]

    assert serve.proc is not None
    serve.proc.send_signal(signal.SIGTERM)  # the server alone, as systemd's stop does
    assert serve.proc.wait(60) == 0, serve.log()[-3000:]
    assert not alive(child), "the bot's process outlived a clean stop"
    assert "Traceback" not in serve.log(), serve.log()[-3000:]


def test_a_killed_server_leaves_no_bot_behind_and_starts_again(
    serving: tuple[Serve, FakeBotApi],
) -> None:
    serve, fake = serving
    serve.start()
    child = bot_child(serve)
    assert serve.proc is not None
    os.kill(serve.proc.pid, signal.SIGKILL)  # the server alone: a crash, the OOM killer
    serve.proc.wait(10)
    assert wait_until(lambda: not alive(child), 10), "the bot's process outlived its server"

    serve.start()  # the database is free: not "another serve already serves it"
    assert answered(fake), "no answer after the restart"


def test_a_bot_process_that_dies_stops_serve_with_an_error(
    serving: tuple[Serve, FakeBotApi],
) -> None:
    serve, _ = serving
    serve.start()
    child = bot_child(serve)
    os.kill(child, signal.SIGKILL)
    assert serve.proc is not None
    try:
        code = serve.proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("serve went on without its bot:\n" + serve.log()[-3000:])
    assert code == 1
    assert "the bot's process ended" in serve.log()


def test_the_bot_stays_in_the_server_when_the_shop_says_so(
    database_url: str, tmp_path: Path
) -> None:
    fake = FakeBotApi().start()
    serve = Serve(
        database_url=database_url,
        data_dir=tmp_path / "shop",
        api_url=fake.url,
        env={"AFTERSALES_BOT_PROCESS": "false"},
    )
    try:
        serve.setup(in_process=True)
        serve.start()
        assert answered(fake)
        assert serve.proc is not None
        assert [c for c in children(serve.proc.pid) if alive(c)] == []
    finally:
        serve.stop()
        fake.stop()
