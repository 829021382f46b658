"""Concurrent web chat customers on the real `aftersales serve`: what an open live connection
costs the server, and how long an agent's answer takes to reach an open page.

    python -m bench.web_chat [--connections 500] [--answers 200] [--quick]

- `aftersales serve` (one process, SQLite in a temporary directory, no Telegram token) on a
  free port; the limit on new chats per address is lifted (every customer here comes from
  127.0.0.1).
- N customers each open /chat (their session) and keep its event stream (/chat/events) open,
  as N browser tabs would. Memory: the server's RSS (VmRSS) with the N streams open, minus its
  RSS with one open, divided by N-1 (after a settle of two seconds each time).
- Answers: `--answers` outbox rows on the `web` channel are written from this process to
  chats chosen at random, one every 20 ms, as an agent's reply from the panel or the API is
  (another thread, or another process, writes the row; the server's watcher finds it and wakes
  that chat's stream). Latency: from the row's commit to its event read by the customer's
  stream, p50 / p99 / max.

Nothing is asserted: the figures are printed. The client runs on the same machine (its own
process), so a loaded machine shows in both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from bench.common import log, percentile, print_table
from bench.serve_footprint import free_port, rss_mb, spawn, stop, wait_healthy
from tickets.db import make_engine, make_sessionmaker
from tickets.models import OutboxMessage, utcnow

ROOT = Path(__file__).resolve().parent.parent
SETTLE_S = 2.0


async def open_chat(base: str) -> tuple[int, str]:
    """A new customer: their session cookie and chat id. A client of its own (a browser of its
    own): a shared one would send the previous customer's cookie and resume their chat."""
    async with httpx.AsyncClient(base_url=base) as browser:
        r = await browser.get("/chat")
        r.raise_for_status()
        cookie = r.cookies["aftersales_chat"]
    return int(cookie.split(".")[0]), cookie


async def stream(
    client: httpx.AsyncClient,
    cookie: str,
    opened: asyncio.Event,
    arrived: dict[str, float],
    twice: list[str],
) -> None:
    """One page's open event stream: every answer read is stamped by its text (one read
    again is counted in `twice`)."""
    headers = {"Cookie": f"aftersales_chat={cookie}"}
    async with client.stream("GET", "/chat/events", headers=headers) as r:
        opened.set()
        async for line in r.aiter_lines():
            if line.startswith("data:") and "probe-" in line:
                event = json.loads(line[5:])
                if event["html"] in arrived:
                    twice.append(event["html"])
                arrived.setdefault(event["html"], time.perf_counter())


def write_answer(sessions: object, chat_id: int, text: str) -> float:
    """An agent's answer to a web chat, as the outbox holds it; the time it was committed."""
    now = utcnow()
    with sessions() as session:  # type: ignore[operator]
        session.execute(
            insert(OutboxMessage).values(
                channel="web",
                recipient=str(chat_id),
                kind="reply",
                payload={"text": text, "language": "en"},
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        session.commit()
    return time.perf_counter()


async def run(base: str, pid: int, db_url: str, connections: int, answers: int) -> list[list[str]]:
    limits = httpx.Limits(max_connections=connections + 20, max_keepalive_connections=20)
    timeout = httpx.Timeout(30.0, read=None)
    arrived: dict[str, float] = {}
    twice: list[str] = []
    tasks: list[asyncio.Task[None]] = []
    # The streams' client never gets a cookie (/chat/events sets none): each stream sends its
    # own customer's.
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        chats: list[int] = []

        async def customer() -> None:
            chat_id, cookie = await open_chat(base)
            opened = asyncio.Event()
            tasks.append(asyncio.create_task(stream(client, cookie, opened, arrived, twice)))
            await opened.wait()
            chats.append(chat_id)

        await customer()
        await asyncio.sleep(SETTLE_S)
        one = rss_mb(pid)
        log(f"1 stream open: RSS {one:.1f} MB; opening {connections - 1} more")
        for start in range(1, connections, 50):
            await asyncio.gather(*(customer() for _ in range(min(50, connections - start))))
        await asyncio.sleep(SETTLE_S)
        many = rss_mb(pid)
        log(f"{len(chats)} streams open ({len(set(chats))} chats): RSS {many:.1f} MB")

        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        sent: dict[str, float] = {}
        rng = random.Random(15)
        for i in range(answers):
            text = f"probe-{i}"
            sent[text] = await asyncio.to_thread(write_answer, sessions, rng.choice(chats), text)
            await asyncio.sleep(0.02)
        deadline = time.perf_counter() + 15
        while len(arrived) < answers and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        engine.dispose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    waits = [(arrived[k] - sent[k]) * 1000 for k in sent if k in arrived]
    lost = answers - len(waits)
    per_conn_kb = (many - one) * 1024 / max(1, connections - 1)
    return [
        ["open streams", str(connections)],
        ["server RSS, 1 stream open", f"{one:.1f} MB"],
        [f"server RSS, {connections} streams open", f"{many:.1f} MB"],
        ["memory per open stream", f"{per_conn_kb:.1f} KB"],
        ["answers arrived", f"{len(waits)} of {answers}" + (f" ({lost} lost)" if lost else "")],
        ["answers arrived twice", str(len(twice))],
        ["answer -> page, p50", f"{statistics.median(waits):.0f} ms" if waits else "-"],
        ["answer -> page, p99", f"{percentile(waits, 0.99):.0f} ms" if waits else "-"],
        ["answer -> page, max", f"{max(waits):.0f} ms" if waits else "-"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 connections, 50 answers")
    args = parser.parse_args()
    if args.quick:
        args.connections, args.answers = 50, 50
    with tempfile.TemporaryDirectory(prefix="aftersales-webchat-") as tmp:
        work = Path(tmp)
        db_url = f"sqlite:///{work / 'aftersales.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
        env.update(
            AFTERSALES_DATABASE_URL=db_url,
            AFTERSALES_MEDIA_DIR=str(work / "media"),
            AFTERSALES_WEB_CHAT_SESSIONS_PER_HOUR="10000",
            PYTHONPATH=str(ROOT),
        )
        port = free_port()
        cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-scheduler"]
        started = time.perf_counter()
        proc = spawn(cmd, env, work)
        try:
            wait_healthy(proc, port, started)
            rows = asyncio.run(
                run(f"http://127.0.0.1:{port}", proc.pid, db_url, args.connections, args.answers)
            )
        finally:
            stop(proc)
    print_table(["web chat", "figure"], rows)


if __name__ == "__main__":
    main()
