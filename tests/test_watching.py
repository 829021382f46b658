"""Watching it (README): /metrics and the JSON log lines, as a shop's Prometheus and log shipper
see them.

The walked case runs against the real `aftersales serve` (the demo shop, the bot in webhook mode
sending to a fake Bot API that answers every sendMessage with a flood wait, the SLA scheduler
on, JSON logs): a customer's update arrives twice, an agent opens a case through the API and
answers it, and /metrics, scraped over HTTP and read with prometheus_client's own parser, shows
each of those, counted once; the server's output, every line JSON, carries the request's id,
the update's id and the case's number. On PostgreSQL the same runs as two processes
(`serve --workers 2`), whose counts every scrape adds up, whichever process answers it.

Beside it, in-process: who may scrape, the request id, and the desk's counts of clocks warned,
breached and due (tickets/watch.py) as time passes.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from tests.conftest import PG_URL
from tests.factories import NOW
from tests.fakes.bot_api import FakeBotApi, Faults
from tests.fakes.serve import Serve

METRICS_TOKEN = "scrape-" + "m" * 24
HOOK_SECRET = "hook-secret-for-tests"
# On PostgreSQL the product runs as two processes: each scrape must add both up.
WORKERS = 2 if PG_URL else 1
WAIT = 30.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the scrape has no such series)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(base: str) -> Samples:
    r = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=20
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def scrape_until(base: str, check: Any, what: str) -> Samples:
    deadline = time.monotonic() + WAIT
    while True:
        samples = scrape(base)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT}s: {what}")
        time.sleep(0.3)


def _update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Mei"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Mei", "language_code": "en"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


def test_metrics_and_json_logs_of_a_walked_case(database_url: str, tmp_path: Path) -> None:
    fake = FakeBotApi().start()
    # Telegram answers every message with a flood wait: the answers stay in the outbox, and
    # each try is a delivery error of its kind.
    fake.set_faults(
        Faults(retry_after=1.0, retry_after_seconds=60, methods=frozenset({"sendMessage"}))
    )
    serve = Serve(
        database_url=database_url,
        data_dir=tmp_path / "shop",
        api_url=fake.url,
        env={
            "AFTERSALES_METRICS_TOKEN": METRICS_TOKEN,
            "AFTERSALES_LOG_FORMAT": "json",
            "AFTERSALES_WEBHOOK_URL": "https://shop.example.com/telegram/webhook",
            "AFTERSALES_WEBHOOK_SECRET": HOOK_SECRET,
        },
        serve_args=("--workers", str(WORKERS)) if WORKERS > 1 else (),
    )
    try:
        api_token = serve.setup(in_process=True)
        serve.start(timeout=120)
        base = serve.url

        # Nobody scrapes without the token.
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 31}
        assert httpx.get(f"{base}/metrics", headers=wrong, timeout=10).status_code == 401

        # Each process swept once at its start: the counts below are the desk after it.
        before = scrape_until(
            base,
            lambda s: value(s, "aftersales_sla_sweep_duration_seconds_count") >= WORKERS,
            "the first sweep of every process",
        )

        # A customer's /start, delivered twice (Telegram redelivers): handled once.
        hook = {"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}
        update = _update(7001, 900900001, "/start")
        for _ in range(2):
            r = httpx.post(f"{base}/telegram/webhook", json=update, headers=hook, timeout=30)
            assert r.status_code == 200

        # An agent opens a case by phone and answers it.
        auth = {"Authorization": f"Bearer {api_token}"}
        created = httpx.post(
            f"{base}/api/v1/tickets",
            json={
                "order_no": "DEMO-0005",
                "kind": "complaint",
                "reason": "service",
                "channel": "phone",
                "description": "rude answer on the phone",
            },
            headers={**auth, "X-Request-ID": "watch-create-1"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == "watch-create-1"
        case = created.json()
        number = case["number"]
        reply = httpx.post(
            f"{base}/api/v1/tickets/{number}/replies",
            json={"text": "We are sorry: a 5 yuan coupon is on its way."},
            headers=auth,
            timeout=30,
        )
        assert reply.status_code == 201, reply.text
        reply_id = reply.headers["x-request-id"]
        assert len(reply_id) == 32  # none sent: one made for it
        sla = httpx.get(f"{base}/api/v1/tickets/{number}", headers=auth, timeout=30).json()["sla"]

        after = scrape_until(
            base,
            lambda s: (
                value(s, "aftersales_delivery_errors_total", channel="telegram", error="flood") >= 1
            ),
            "a flood wait counted as a delivery error",
        )
        # Whichever process answers, the same counts (several scrapes reach both processes).
        again = [scrape(base) for _ in range(3 * WORKERS)]
    finally:
        serve.stop()
        fake.stop()

    for samples in [after, *again]:
        # HTTP requests by route template and status, each counted once.
        assert (
            value(
                samples,
                "aftersales_http_requests_total",
                method="POST",
                route="/api/v1/tickets",
                status="201",
            )
            == 1
        )
        assert (
            value(
                samples,
                "aftersales_http_requests_total",
                method="POST",
                route="/api/v1/tickets/{number}/replies",
                status="201",
            )
            == 1
        )
        assert (
            value(
                samples,
                "aftersales_http_requests_total",
                method="GET",
                route="/metrics",
                status="401",
            )
            == 2
        )
        assert (
            value(
                samples,
                "aftersales_http_requests_total",
                method="POST",
                route="/telegram/webhook",
                status="200",
            )
            == 2
        )
        # The update: handled once, the redelivery seen as one.
        updates = {"channel": "telegram", "type": "message"}
        assert value(samples, "aftersales_bot_updates_total", **updates, outcome="handled") == 1
        assert value(samples, "aftersales_bot_updates_total", **updates, outcome="duplicate") == 1
        assert (
            value(samples, "aftersales_bot_update_duration_seconds_count", channel="telegram") == 2
        )
    # No series per case: route templates, never paths.
    labels = {v for (_, ls) in after for _, v in ls}
    assert not any(number in v for v in labels), sorted(labels)
    assert value(after, "aftersales_http_request_duration_seconds_count", method="POST",
                 route="/api/v1/tickets") == 1  # fmt: skip

    # The new case, in its status and group.
    key = {"status": case["status"], "group": case["group"]}
    assert value(after, "aftersales_cases", **key) - value(before, "aftersales_cases", **key) == 1
    # Its clocks still counting, in theirs (first response met by the answer: gone).
    counting = [c for c in sla if c["state"] in ("running", "paused", "breached")]
    assert counting, sla
    for clock in {c["clock"] for c in counting}:
        n = sum(1 for c in counting if c["clock"] == clock)
        assert (
            total(after, "aftersales_sla_clocks", clock=clock)
            - total(before, "aftersales_sla_clocks", clock=clock)
            == n
        ), clock
    assert not any(c["clock"] == "first_response" and c["state"] == "running" for c in sla)
    # The answers Telegram keeps refusing wait in the outbox, and how long shows.
    assert value(after, "aftersales_outbox_pending", channel="telegram") >= 2
    assert value(after, "aftersales_outbox_oldest_age_seconds", channel="telegram") > 0
    assert value(after, "aftersales_sla_clocks_due") >= 0
    # The pool: every process's connections.
    assert value(after, "aftersales_db_pool_size") >= 5 * WORKERS
    # In use: never below none, never above what the pools may open (5 + 10 overflow each).
    assert 0 <= value(after, "aftersales_db_pool_checked_out") <= 15 * WORKERS

    # The server's output: every line one JSON object, with the ids of what it is about.
    lines = [line for line in serve.log().splitlines() if line and not line.startswith("=====")]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line of the log is not JSON: {line!r}")
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    create_lines = [r for r in records if r.get("request_id") == "watch-create-1"]
    assert any("POST /api/v1/tickets " in r["message"] for r in create_lines), create_lines
    reply_lines = [r for r in records if r.get("request_id") == reply_id]
    assert reply_lines and all(r.get("case") == number for r in reply_lines), reply_lines
    redelivered = [r for r in records if "already handled" in r["message"]]
    assert redelivered and all(r.get("update_id") == 7001 for r in redelivered), redelivered
    assert not [r for r in records if "Traceback" in json.dumps(r)]


def test_metrics_on_an_internal_address_need_no_token_and_count_every_process(
    database_url: str, tmp_path: Path
) -> None:
    """AFTERSALES_METRICS_ADDRESS: `serve` (two processes on PostgreSQL) answers /metrics on an
    internal address of its own, without a token, bound once: every request counted once,
    whichever process answered it, and the desk's counts beside them; the main port's /metrics
    stays the token's (none set here: 404)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        internal_port = probe.getsockname()[1]
    serve = Serve(
        database_url=database_url,
        data_dir=tmp_path / "shop",
        api_url=None,
        token=None,
        env={"AFTERSALES_METRICS_ADDRESS": f"127.0.0.1:{internal_port}"},
        serve_args=("--workers", str(WORKERS)) if WORKERS > 1 else (),
    )
    try:
        api_token = serve.setup(in_process=True)
        serve.start(timeout=120)
        internal = f"http://127.0.0.1:{internal_port}"
        assert httpx.get(f"{serve.url}/metrics", timeout=10).status_code == 404
        if WORKERS > 1:
            # Both workers up and counting before the requests (a new connection each: the
            # kernel spreads them over the processes).
            serve_log = serve.log_path
            deadline = time.monotonic() + WAIT
            while serve_log.read_text().count("Application startup complete") < WORKERS:
                assert time.monotonic() < deadline, serve_log.read_text()
                time.sleep(0.2)
        calls = 12
        for _ in range(calls):
            r = httpx.get(
                f"{serve.url}/api/v1/tickets",
                headers={"Authorization": f"Bearer {api_token}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        r = httpx.get(f"{internal}/metrics", timeout=20)
        assert r.status_code == 200, r.text
        samples = parse(r.text)
        assert (
            value(
                samples,
                "aftersales_http_requests_total",
                method="GET",
                route="/api/v1/tickets",
                status="200",
            )
            == calls
        )
        # The desk's counts, read from the database: the demo shop's open cases.
        assert total(samples, "aftersales_cases") > 0
        # No token, not even a wrong one, is asked for there.
        wrong = {"Authorization": "Bearer " + "x" * 31}
        assert httpx.get(f"{internal}/metrics", headers=wrong, timeout=20).status_code == 200
    finally:
        serve.stop()
    # Gone with `serve`.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{internal_port}/metrics", timeout=5)


def test_a_metrics_address_in_use_or_the_serve_port_is_refused_before_any_work() -> None:
    from api.processes import Refused, reserve_metrics_address
    from tickets.settings import Settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = r"METRICS_ADDRESS=127\.0\.0\.1:\d+: cannot listen there \(already in use\)"
        with pytest.raises(Refused, match=in_use):
            reserve_metrics_address("127.0.0.1", port, serve_port=8000)
    with pytest.raises(Refused, match="where `serve` itself listens"):
        reserve_metrics_address("127.0.0.1", 8000, serve_port=8000)
    with pytest.raises(ValidationError, match="host:port"):
        Settings(metrics_address="9464", _env_file=None)


# ---------------------------------------------------------------- in-process


def test_metrics_are_off_without_a_token(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        r = client.get("/metrics", headers={"Authorization": "Bearer whatever-it-is-123"})
    assert r.status_code == 404


def test_a_metrics_token_is_long_or_unset(tmp_path: Path) -> None:
    from tickets.settings import Settings

    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics_token="short", _env_file=None)
    assert Settings(metrics_token="", _env_file=None).metrics_token is None


def test_every_answer_has_a_request_id(api: Any) -> None:
    mine = api.client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.1_x"})
    assert mine.headers["x-request-id"] == "lb-7f3a.1_x"
    # Not a plain token (spaces, too long): replaced, never echoed.
    for bad in ("two words", "x" * 65):
        r = api.client.get("/healthz", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"] != bad
        assert len(r.headers["x-request-id"]) == 32
    # Refused requests too.
    assert "x-request-id" in api.client.post("/api/v1/tickets", json={}).headers


def test_desk_counts_clocks_warned_breached_and_due(
    api: Any, sessions: Any, app: Any, scripts: Any
) -> None:
    from tests.factories import add_order, context
    from tickets.sla.sweep import run_sweep
    from tickets.watch import desk_state

    add_order(sessions)
    created = api.post(
        "/api/v1/tickets",
        json={"order_no": "T1001", "kind": "complaint", "reason": "service", "channel": "phone"},
    )
    assert created.status_code == 201, created.text
    case = created.json()
    running = {c["clock"] for c in case["sla"] if c["state"] == "running"}
    assert running
    policy = app.state.policy

    def counts(at: Any) -> Any:
        with sessions() as s:
            return desk_state(session=s, policy=policy, now=at)

    now = counts(NOW)
    assert now.cases[(case["status"], case["group"])] == 1
    for clock in running:
        assert now.clocks[(clock, "running")] == 1
        assert now.clocks[(clock, "breached")] == 0
    # A minute before a clock is due the sweep has warned of it: warned, not yet breached.
    first = next(c for c in case["sla"] if c["state"] == "running")
    almost = datetime.fromisoformat(first["due_at"]) - timedelta(minutes=1)
    report = run_sweep(sessions=sessions, ctx=context(scripts, now=almost))
    assert report.warned >= 1 and report.failed == 0
    warned = counts(almost)
    assert warned.clocks[(first["clock"], "warned")] == 1
    assert warned.clocks[(first["clock"], "running")] == 0
    # Long after: every clock is past due, though no sweep has marked it yet, and the sweep
    # has that much to do.
    later = counts(NOW + timedelta(days=60))
    for clock in running:
        assert later.clocks[(clock, "breached")] == 1
        assert later.clocks[(clock, "running")] == 0
    assert later.clocks_due >= len(running)
    assert now.clocks_due < later.clocks_due
    # Closed, the case and its clocks are no longer counted.
    closed = api.post(
        f"/api/v1/tickets/{case['number']}/actions",
        json={"action": "cancel", "reason": "opened by mistake"},
    )
    assert closed.status_code == 200, closed.text
    gone = counts(NOW)
    assert gone.cases[(case["status"], case["group"])] == 0
    assert all(gone.clocks[(clock, state)] == 0 for clock in running for state in ("running",))


def test_requests_are_counted_by_route_template_never_by_path(api: Any) -> None:
    from tickets.telemetry import instruments

    def count(method: str, route: str, status: str) -> float:
        labels = {"method": method, "route": route, "status": status}
        got = instruments().registry.get_sample_value("aftersales_http_requests_total", labels)
        return got or 0.0

    asked = [
        # A case that does not exist: its route's template, whatever the number.
        ("GET", "/api/v1/tickets/AS-20990101-0001", "/api/v1/tickets/{number}", "404"),
        ("GET", "/api/v1/tickets/AS-20990101-0002", "/api/v1/tickets/{number}", "404"),
        # Refused before any route (no token): by area.
        ("POST", "/api/v1/tickets", "/api/v1/*", "401"),
        # No route at all.
        ("GET", "/wp-login.php", "other", "404"),
        ("GET", "/panel/no-such-page", "/panel/*", "404"),
    ]
    before = {(m, r, s): count(m, r, s) for m, _, r, s in asked}
    for method, path, _, _ in asked:
        api.client.request(method, path, headers=api._h() if method == "GET" else {})
    for key, n in before.items():
        expected = sum(1 for m, _, r, s in asked if (m, r, s) == key)
        assert count(*key) - n == expected, key
