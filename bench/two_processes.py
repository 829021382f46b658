"""Two processes: requests a second through one `aftersales serve` process beside
`serve --workers 2` on PostgreSQL, the two taking turns in the same run, and the CPU each side
used (the cores the ratio was bought with).

    python -m bench.two_processes [--database-url URL] [--redis URL] [--seconds 20] [--rounds 2]

The real product as README's *Running several processes* sets it up: PostgreSQL, Redis for the
conversations and the shared pace, and the bot in webhook mode (with several processes the
webhook is where the work spreads: every process takes it; polling runs in one of them). The
demo shop is loaded; the answers go out through the fake Bot API of tests/fakes/bot_api.py over
HTTP (at Telegram's 30 a second, the same in both). Each phase, `--concurrency` clients send for
`--seconds`:

- `webhook`: customers' updates, POST /telegram/webhook, each answered once it is handled (the
  full intake: stored, deduplicated, the customer and the conversation read and written, the
  answer queued). Each client owns its chats and sends a chat's next update only when the last
  was answered (Telegram's order within a chat); a chat starts with /start, then texts. New
  chats in every phase.
- `api`: GET /api/v1/tickets with a token (a page of the demo's cases).
- `healthz`: GET /healthz: the floor of this machine: what the HTTP stack, this client and the
  processes get through with no work behind, so what two processes can gain here at all.

The issue's goal: two processes at least 1.6 times one. On a 2-core machine the client, the
fake Bot API and PostgreSQL share the cores with the server: the CPU seconds of each (server
processes, PostgreSQL backends of this database, this client) are printed per request, with
the load average, so a missed goal says where the time went. Nothing here asserts a time.

`--database-url` empties and reuses an existing PostgreSQL database (a machine that gives the
bench a database of its own); without it a fresh `aftersales_bench_two_processes` is made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count as counter
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from api.telegram_webhook import SECRET_HEADER, WEBHOOK_PATH
from bench.common import fresh_pg_database, log, percentile, print_table, reset_pg_database
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.serve import Serve
from tickets.db import make_engine

GOAL = 1.6
SECRET = "bench-" + "w" * 30
WORKLOADS = ("webhook", "api", "healthz")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def database(url: str | None, keep: bool) -> Iterator[str]:
    if url:
        yield reset_pg_database(url)
        return
    with fresh_pg_database("two_processes", keep=keep) as fresh:
        yield fresh


# ---------------------------------------------------------------- CPU accounting


def cpu_seconds(pid: int) -> float:
    """user + system CPU of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (serve and the workers it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def backend_pids(url: str) -> list[int]:
    """PostgreSQL's server processes serving this database (the product's pools)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                conn.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )
    finally:
        engine.dispose()


class CpuMeter:
    """CPU used during a phase by the server's processes, by PostgreSQL's backends of this
    database (those alive at either end), and by this process (the client and the fake)."""

    def __init__(self, serve: Serve, url: str) -> None:
        self.serve, self.url = serve, url

    def __enter__(self) -> CpuMeter:
        assert self.serve.proc is not None
        self.pgid = self.serve.proc.pid
        self.pids = group_pids(self.pgid)
        self.backends = backend_pids(self.url)
        self.start = {
            "server": sum(cpu_seconds(p) for p in self.pids),
            "postgres": {p: cpu_seconds(p) for p in self.backends},
            "client": time.process_time(),
        }
        self.load_start = os.getloadavg()[0]
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        self.server = sum(cpu_seconds(p) for p in group_pids(self.pgid)) - self.start["server"]
        before: dict[int, float] = self.start["postgres"]  # type: ignore[assignment]
        pids = set(before) | set(backend_pids(self.url))
        # A backend gone by the end took its count with it: counted as nothing more.
        self.postgres = sum(max(0.0, cpu_seconds(p) - before.get(p, 0.0)) for p in pids)
        self.client = time.process_time() - self.start["client"]  # type: ignore[operator]
        self.load = (self.load_start, os.getloadavg()[0])
        self.per_process = len(self.pids)


# ---------------------------------------------------------------- the clients


@dataclass
class Phase:
    workload: str
    processes: int
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    waits_ms: list[float] = field(default_factory=list)
    cpu: CpuMeter | None = None

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


class Chats:
    """Customers' updates as Telegram sends them to a webhook: chat ids new to every phase."""

    def __init__(self) -> None:
        self.next_chat = counter(900_000_001)
        self.update_ids = counter(1)
        self.message_ids = counter(1)

    def new_chat(self) -> int:
        return next(self.next_chat)

    def update(self, chat: int, text_: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(self.message_ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private", "first_name": f"Customer{chat}"},
            "from": {
                "id": chat,
                "is_bot": False,
                "first_name": f"Customer{chat}",
                "language_code": "en",
            },
            "text": text_,
        }
        if text_.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text_)}]
        return {"update_id": next(self.update_ids), "message": msg}


async def drive(
    base: str,
    phase: Phase,
    *,
    concurrency: int,
    seconds: float,
    token: str,
    chats: Chats,
    chats_per_client: int,
    meter: Callable[[], CpuMeter],
) -> None:
    """`concurrency` clients, each sending its next request when the last was answered, for
    `seconds`; the CPU meter runs over the same span."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(client: int, stop: float) -> None:
            own = [chats.new_chat() for _ in range(chats_per_client)]
            sent = dict.fromkeys(own, 0)
            n = 0
            while time.monotonic() < stop:
                t0 = time.monotonic()
                if phase.workload == "webhook":
                    chat = own[n % len(own)]
                    body = chats.update(
                        chat, "/start" if sent[chat] == 0 else f"where is my parcel? {n}"
                    )
                    sent[chat] += 1
                    request = http.post(
                        base + WEBHOOK_PATH, json=body, headers={SECRET_HEADER: SECRET}
                    )
                elif phase.workload == "api":
                    request = http.get(
                        base + "/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}
                    )
                else:
                    request = http.get(base + "/healthz")
                n += 1
                try:
                    async with request as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    phase.done += 1
                    phase.waits_ms.append((time.monotonic() - t0) * 1000)
                else:
                    phase.failed += 1

        # Warm-up, untimed: every worker's first requests load what they load lazily.
        warm = time.monotonic() + min(3.0, seconds / 4)
        await asyncio.gather(*(one(c, warm) for c in range(concurrency)))
        phase.done, phase.failed, phase.waits_ms = 0, 0, []
        with meter() as cpu:
            t0 = time.monotonic()
            stop = t0 + seconds
            await asyncio.gather(*(one(c, stop) for c in range(concurrency)))
            phase.seconds = time.monotonic() - t0
        phase.cpu = cpu


# ---------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> None:
    with database(args.database_url, args.keep) as url, FakeBotApi() as fake:
        data = Path(tempfile.mkdtemp(prefix="aftersales-two-processes-"))
        env = {
            "AFTERSALES_WEBHOOK_URL": "https://shop.example.com" + WEBHOOK_PATH,
            "AFTERSALES_WEBHOOK_SECRET": SECRET,
            "AFTERSALES_REDIS_URL": args.redis,
        }
        chats = Chats()
        phases: list[Phase] = []
        try:
            setup = Serve(database_url=url, data_dir=data, api_url=fake.url, env=env)
            log("setting up (PostgreSQL): migrate, demo, a token")
            token = setup.setup()
            for r in range(args.rounds):
                # Taking turns, the order swapped each round: the machine's noise falls on both.
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for processes in order:
                    serve = Serve(
                        database_url=url,
                        data_dir=data,
                        api_url=fake.url,
                        env=env,
                        serve_args=("--workers", str(processes)) if processes > 1 else (),
                    )
                    serve.start(timeout=120)
                    try:
                        for workload in args.workloads:
                            phase = Phase(workload, processes)
                            log(f"round {r + 1}: {processes} process(es), {workload}")
                            asyncio.run(
                                drive(
                                    serve.url,
                                    phase,
                                    concurrency=args.concurrency,
                                    seconds=args.seconds,
                                    token=token,
                                    chats=chats,
                                    chats_per_client=args.chats_per_client,
                                    meter=lambda s=serve: CpuMeter(s, url),  # type: ignore[misc]
                                )
                            )
                            phases.append(phase)
                            log(
                                f"  {phase.rate:.0f}/s, {phase.failed} failed, load "
                                f"{phase.cpu.load[1] if phase.cpu else 0:.1f}"
                            )
                    finally:
                        serve.stop(timeout=40)
                    bad = serve.bad_log_lines()
                    if bad:
                        log(f"server log: {len(bad)} bad lines, e.g.\n{bad[0]}")
        finally:
            if args.keep:
                log(f"kept: {data} (serve.log), database {url}")
            else:
                shutil.rmtree(data, ignore_errors=True)
    report(args, phases)


def _sum(phases: list[Phase], attr: str) -> float:
    return sum(getattr(p.cpu, attr) for p in phases if p.cpu)


def report(args: argparse.Namespace, phases: list[Phase]) -> None:
    print(
        f"PostgreSQL, webhook + Redis; {args.concurrency} clients, {args.seconds:.0f}s a phase, "
        f"{args.rounds} round(s) taking turns; this machine: {os.cpu_count()} cores"
    )
    rows = []
    cpu_rows = []
    for workload in args.workloads:
        by = {n: [p for p in phases if p.workload == workload and p.processes == n] for n in (1, 2)}
        rate = {n: sum(p.done for p in ps) / sum(p.seconds for p in ps) for n, ps in by.items()}
        p99 = {
            n: percentile([w for p in ps for w in p.waits_ms], 0.99) if ps else float("nan")
            for n, ps in by.items()
        }
        each = {n: ", ".join(f"{p.rate:.0f}" for p in ps) for n, ps in by.items()}
        ratio = rate[2] / rate[1] if rate[1] else float("nan")
        rows.append(
            [
                workload,
                f"{rate[1]:.0f} ({each[1]})",
                f"{rate[2]:.0f} ({each[2]})",
                f"{ratio:.2f}",
                "met" if ratio >= GOAL else "NOT met",
                f"{p99[1]:.0f} / {p99[2]:.0f}",
                sum(p.failed for ps in by.values() for p in ps),
            ]
        )
        for n, ps in by.items():
            wall = sum(p.seconds for p in ps)
            done = sum(p.done for p in ps)
            server, pg, client = _sum(ps, "server"), _sum(ps, "postgres"), _sum(ps, "client")
            loads = [f"{p.cpu.load[1]:.1f}" for p in ps if p.cpu]
            cpu_rows.append(
                [
                    f"{workload}, {n} process{'es' if n > 1 else ''}",
                    f"{server / wall:.2f}",
                    f"{pg / wall:.2f}",
                    f"{client / wall:.2f}",
                    f"{(server + pg + client) / wall:.2f}",
                    f"{server / done * 1000:.2f}",
                    f"{pg / done * 1000:.2f}",
                    f"{client / done * 1000:.2f}",
                    ", ".join(loads),
                ]
            )
    print_table(
        [
            "workload",
            "1 process /s (each round)",
            "2 processes /s (each round)",
            "ratio",
            f">= {GOAL}",
            "p99 ms 1 / 2",
            "failed",
        ],
        rows,
    )
    print()
    print_table(
        [
            "phase",
            "cores: server",
            "postgres",
            "client",
            "all",
            "ms CPU/request: server",
            "postgres",
            "client",
            "load (1 min) at end",
        ],
        cpu_rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an existing PostgreSQL database to empty and use")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--seconds", type=float, default=20.0, help="each phase's length")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once")
    parser.add_argument("--chats-per-client", type=int, default=5)
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated: webhook,api,healthz"
    )
    parser.add_argument("--quick", action="store_true", help="one round of 5 s: a try")
    parser.add_argument("--keep", action="store_true", help="keep the database and the log")
    args = parser.parse_args()
    args.workloads = [w for w in args.workloads.split(",") if w]
    if args.quick:
        args.seconds, args.rounds = 5.0, 1
    run(args)


if __name__ == "__main__":
    main()
