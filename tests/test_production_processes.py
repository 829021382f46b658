"""The process set README's "Running in production" documents, started as written: PostgreSQL,
`aftersales serve` with the options deploy/systemd/aftersales.service gives it (`--workers 2`:
two processes on one port) and the settings of deploy/aftersales.env.example (the bot in
webhook mode with its secret), Telegram (a fake over HTTP) posting each
update to /telegram/webhook as it would through the proxy. A case is walked end to end:
customers open theirs through the bot (with a photo), an agent answers each through the JSON
API, and every customer receives the answer in their chat, once.

PostgreSQL only (several processes are refused on SQLite): skipped in the SQLite pass, run in
the PostgreSQL pass, which CI cannot skip.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values

from tests.conftest import ON_CI, PG_URL, _fresh_pg_database
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.customers import converse, make_customers, seed_orders
from tests.fakes.serve import ROOT, Serve

pytestmark = pytest.mark.skipif(
    not PG_URL,
    reason="the production process set needs PostgreSQL: runs in the PostgreSQL pass"
    + (" (make test-postgres, mandatory on CI)" if ON_CI else ""),
)

DEPLOY = ROOT / "deploy"
SECRET = "guide-webhook-secret_0123456789"


def unit_serve_args() -> tuple[str, ...]:
    """`serve`'s options as deploy/systemd/aftersales.service runs it, but its address (the
    test takes a free port on loopback)."""
    unit = (DEPLOY / "systemd" / "aftersales.service").read_text(encoding="utf-8")
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    words = shlex.split(line.removeprefix("ExecStart="))
    assert words[0].endswith("/aftersales") and words[1] == "serve", line
    args, rest = [], iter(words[2:])
    for word in rest:
        if word in ("--host", "--port"):
            next(rest)
        else:
            args.append(word)
    return tuple(args)


def guide_settings() -> dict[str, str]:
    """deploy/aftersales.env.example's settings (comments and CHANGE-ME values left out)."""
    read = dotenv_values(DEPLOY / "aftersales.env.example")  # quotes taken off, as systemd does
    return {k: v for k, v in read.items() if v is not None and "CHANGE-ME" not in v}


GUIDE = guide_settings()
PUBLIC_URL = GUIDE["AFTERSALES_PUBLIC_URL"]
WEBHOOK_URL = GUIDE["AFTERSALES_WEBHOOK_URL"]
CUSTOMERS = 4
ANSWER_TIMEOUT = 30.0


@pytest.fixture
def database_url() -> Iterator[str]:
    assert PG_URL
    with _fresh_pg_database(PG_URL) as url:
        yield url


def test_the_documented_process_set_walks_a_case(database_url: str, tmp_path: Path) -> None:
    customers = make_customers(CUSTOMERS, first_chat=910_001, prefix="PROD")
    fake = FakeBotApi().start()
    desk = Serve(
        database_url=database_url,
        data_dir=tmp_path / "desk",
        api_url=fake.url,
        serve_args=unit_serve_args(),
        env={
            # The guide's settings (the media folder, the database and the token are the
            # test's own), with a real secret in place of CHANGE-ME.
            **{
                k: v
                for k, v in GUIDE.items()
                if k not in ("AFTERSALES_MEDIA_DIR", "AFTERSALES_DATABASE_URL")
            },
            "AFTERSALES_WEBHOOK_SECRET": SECRET,
        },
    )
    assert unit_serve_args() == ("--workers", "2")
    try:
        token = desk.setup(in_process=True)
        seed_orders(database_url, customers)
        desk.start(timeout=120)
        # The bot told Telegram where to post, with the secret; nobody polls.
        deadline = time.monotonic() + 60
        while not any(c.method == "setWebhook" for c in fake.snapshot()):
            assert time.monotonic() < deadline, "the bot never set its webhook"
            time.sleep(0.2)
        registered = [c.params for c in fake.snapshot() if c.method == "setWebhook"]
        assert {(p.get("url"), p.get("secret_token")) for p in registered} == {
            (WEBHOOK_URL, SECRET)
        }
        # The proxy: Telegram's posts to the public URL reach the processes' port.
        fake.deliver_by_webhook(f"{desk.url}/telegram/webhook", SECRET)

        fake.run(converse(fake, customers, step_timeout=20), 90)
        assert all(c.done for c in customers), [
            (c.problem, c.transcript[-6:]) for c in customers if not c.done
        ]

        # An agent answers each case through the API.
        answers = {}
        with httpx.Client(base_url=desk.url, timeout=30) as api:
            headers = {"Authorization": f"Bearer {token}"}
            for c in customers:
                assert c.case_no is not None
                case = api.get(f"/api/v1/tickets/{c.case_no}", headers=headers)
                assert case.status_code == 200, case.text
                assert case.json()["order_no"] == c.order_no
                answers[c.chat_id] = f"We are refunding {c.order_no} today."
                r = api.post(
                    f"/api/v1/tickets/{c.case_no}/replies",
                    json={"text": answers[c.chat_id]},
                    headers=headers,
                )
                assert r.status_code == 201, r.text
                assert r.json()["delivery"]["state"] == "queued", r.json()

        # Every customer receives it in their chat, once.
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            got = {
                chat: sum(answer in m.text for m in fake.messages(chat))
                for chat, answer in answers.items()
            }
            if all(got.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == dict.fromkeys(answers, 1), got
        assert fake.webhook_posts > 0
        assert not any(c.method == "getUpdates" for c in fake.snapshot())
        log = desk.log()
        assert "processes:     2" in log
        assert "POST /telegram/webhook" in log
        assert desk.bad_log_lines() == []
    finally:
        desk.stop()
        fake.stop()
