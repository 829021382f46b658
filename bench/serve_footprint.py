"""Start-up time and idle memory of `aftersales serve`, next to a bare process of the same
stack (the floor) measured in the same run.

    python -m bench.serve_footprint [--runs 3] [--idle 3] [--conversations 1000]

- serve: `aftersales serve` (scheduler on, as shipped) on a free port with a fresh SQLite
  database in a temporary directory, so its start includes migrating it;
- serve, migrated DB: the same again on the database the previous start left (a restart);
- floor: a tiny FastAPI app under uvicorn answering /healthz with `SELECT 1` on SQLite, after
  importing aiogram, fastapi, sqlalchemy, jinja2 and apscheduler;
- floor without aiogram: the same without `import aiogram` (informative: `serve` does not import
  aiogram while the bot is not wired into it, and `import aiogram` alone costs seconds and
  well over 100 MB, building its pydantic types).

Started = the first 200 from /healthz, timed from the spawn (polling every 10 ms). Idle memory =
the proportional set size (PSS, /proc/PID/smaps_rollup) of the process and every process it
started, after `--idle` seconds without requests: with the bot polling, `serve` forks the bot's
own process (api/bot_process.py), which shares most of its pages with the server, and PSS counts
a page two processes share half in each, where adding their RSS would count it twice. The
server process's own RSS is printed beside it. Each figure is the median of `--runs` starts.
Goals: serve idle at most 30 MB above the floor; start-up within 1 s of it.

With the bot's FSM storage (bot/fsm_storage.py) importable, `--conversations` half-filled
requests are written through its DatabaseStorage into the serve's database while it runs, and
its RSS is read again after the same idle wait.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import log, print_table

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GOAL_RSS_MB = 30.0
GOAL_START_S = 1.0

FLOOR_APP = '''
"""The floor: our stack imported, one route, nothing of ours."""
import sys

if sys.argv[2] == "aiogram":
    import aiogram  # noqa: F401
import apscheduler.schedulers.asyncio  # noqa: F401
import jinja2  # noqa: F401
import sqlalchemy
import uvicorn
from fastapi import FastAPI

engine = sqlalchemy.create_engine("sqlite:///" + sys.argv[3])
app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))
    return {"status": "ok"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


@dataclass
class Sample:
    start_s: float
    rss_mb: float  # PSS of the process and the processes it started (module doc)
    main_rss_mb: float = 0.0  # the first process's own RSS, for comparison
    rss_conversations_mb: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def process_tree(pid: int) -> list[int]:
    """`pid` and every process it started, and theirs (Linux's /proc)."""
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        for task in Path(f"/proc/{one}/task").iterdir():
            todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def rss_mb(pid: int) -> float:
    """The idle memory of `pid` and its processes: their PSS, summed (module doc)."""
    total_kb = 0
    for one in process_tree(pid):
        for line in Path(f"/proc/{one}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def wait_healthy(proc: subprocess.Popen[bytes], port: int, started: float) -> float:
    url = f"http://127.0.0.1:{port}/healthz"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.perf_counter() - started > 60:
            raise RuntimeError("not healthy after 60 s")
        time.sleep(0.01)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def spawn(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def serve_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    env.update(
        AFTERSALES_DATABASE_URL=f"sqlite:///{workdir / 'aftersales.db'}",
        AFTERSALES_MEDIA_DIR=str(workdir / "media"),
    )
    return env


def write_conversations(db_url: str, count: int) -> None:
    """`count` customers halfway through a request, written through the bot's storage."""
    from aiogram.fsm.storage.base import StorageKey

    from bot.fsm_storage import DatabaseStorage
    from tickets.db import make_engine, make_sessionmaker

    engine = make_engine(db_url)
    storage = DatabaseStorage(make_sessionmaker(engine))

    async def fill() -> None:
        for i in range(count):
            key = StorageKey(bot_id=42, chat_id=9_000_000 + i, user_id=9_000_000 + i)
            await storage.set_state(key, "Intake:reason")
            await storage.set_data(
                key,
                {
                    "order_no": f"T{100000 + i}",
                    "kind": "return_refund",
                    "items": [{"sku": "SOCKS", "quantity": 2}],
                    "photos": [],
                    "language": "zh-CN",
                },
            )

    asyncio.run(fill())
    engine.dispose()


def fsm_available() -> str | None:
    """None when bot/fsm_storage.py imports, else why not."""
    try:
        import bot.fsm_storage  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def measure(
    cmd: list[str], env: dict[str, str], cwd: Path, port: int, idle: float
) -> tuple[subprocess.Popen[bytes], Sample]:
    t0 = time.perf_counter()
    proc = spawn(cmd, env, cwd)
    try:
        started = wait_healthy(proc, port, t0)
        time.sleep(idle)
        return proc, Sample(
            start_s=started, rss_mb=rss_mb(proc.pid), main_rss_mb=main_rss_mb(proc.pid)
        )
    except Exception:
        stop(proc)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"{cmd}: {err[-2000:]}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before RSS")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="same as --runs 1 --idle 2")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.idle = 1, 2.0
    why_no_fsm = fsm_available()
    samples: dict[str, list[Sample]] = {
        "floor": [],
        "floor without aiogram": [],
        "serve": [],
        "serve, migrated DB": [],
        "serve, bot on": [],
        "serve, bot in the server": [],
    }
    with tempfile.TemporaryDirectory(prefix="aftersales_bench_") as tmp:
        floor_py = Path(tmp) / "floor.py"
        floor_py.write_text(FLOOR_APP)
        for run in range(1, args.runs + 1):
            # The floor, and the floor without aiogram (serve does not import it while the
            # bot is off).
            for name, flag in (("floor", "aiogram"), ("floor without aiogram", "-")):
                port = free_port()
                floor_db = str(Path(tmp) / "floor.db")
                proc, sample = measure(
                    [str(BIN / "python"), str(floor_py), str(port), flag, floor_db],
                    dict(os.environ),
                    Path(tmp),
                    port,
                    args.idle,
                )
                stop(proc)
                samples[name].append(sample)
                log(f"run {run}: {name} in {sample.start_s:.2f}s, {sample.rss_mb:.1f} MB")
            # serve on a fresh database (its start migrates it).
            workdir = Path(tmp) / f"serve{run}"
            workdir.mkdir()
            env = serve_env(workdir)
            cmd = [str(BIN / "aftersales"), "serve", "--host", "127.0.0.1", "--log-level"]
            port = free_port()
            proc, sample = measure(
                [*cmd, "warning", "--port", str(port)], env, workdir, port, args.idle
            )
            if why_no_fsm is None and args.conversations:
                write_conversations(env["AFTERSALES_DATABASE_URL"], args.conversations)
                wait_healthy(proc, port, time.perf_counter())
                time.sleep(args.idle)
                sample.rss_conversations_mb = rss_mb(proc.pid)
            stop(proc)
            samples["serve"].append(sample)
            log(
                f"run {run}: serve started in {sample.start_s:.2f}s, {sample.rss_mb:.1f} MB"
                + (
                    f"; {sample.rss_conversations_mb:.1f} MB with {args.conversations} "
                    "conversations stored"
                    if sample.rss_conversations_mb is not None
                    else ""
                )
            )
            # serve again on the database it just made (a restart: nothing to migrate).
            port = free_port()
            proc, sample = measure(
                [*cmd, "warning", "--port", str(port)], env, workdir, port, args.idle
            )
            stop(proc)
            samples["serve, migrated DB"].append(sample)
            log(f"run {run}: serve (migrated) in {sample.start_s:.2f}s, {sample.rss_mb:.1f} MB")
            # serve with the bot on (aiogram imported, polling a Bot API that refuses: it
            # retries), with the conversations above stored in its database.
            bot_env = {
                **env,
                "AFTERSALES_TELEGRAM_TOKEN": "123456:bench-token",
                "AFTERSALES_TELEGRAM_API_URL": "http://127.0.0.1:9",
            }
            port = free_port()
            proc, sample = measure(
                [*cmd, "warning", "--port", str(port)], bot_env, workdir, port, args.idle
            )
            stop(proc)
            samples["serve, bot on"].append(sample)
            log(f"run {run}: serve with the bot in {sample.start_s:.2f}s, {sample.rss_mb:.1f} MB")
            # The same with the bot in the server's process (no process of its own).
            port = free_port()
            proc, sample = measure(
                [*cmd, "warning", "--port", str(port)],
                {**bot_env, "AFTERSALES_BOT_PROCESS": "false"},
                workdir,
                port,
                args.idle,
            )
            stop(proc)
            samples["serve, bot in the server"].append(sample)
            log(
                f"run {run}: serve with the bot in the server in {sample.start_s:.2f}s, "
                f"{sample.rss_mb:.1f} MB"
            )

    med = {
        name: (
            statistics.median(s.start_s for s in ss),
            statistics.median(s.rss_mb for s in ss),
        )
        for name, ss in samples.items()
    }
    floor_start, floor_rss = med["floor"]
    print(f"\n## aftersales serve vs the floor: median of {args.runs} start(s), idle {args.idle}s")
    rows = []
    for name, (start, rss) in med.items():
        all_starts = " ".join(f"{s.start_s:.2f}" for s in samples[name])
        all_rss = " ".join(f"{s.rss_mb:.1f}" for s in samples[name])
        main_rss = statistics.median(s.main_rss_mb for s in samples[name])
        rows.append(
            [
                name,
                f"{start:.2f}",
                f"{start - floor_start:+.2f}",
                f"{rss:.1f}",
                f"{rss - floor_rss:+.1f}",
                all_starts,
                all_rss,
                f"{main_rss:.1f}",
            ]
        )
    print_table(
        [
            "process",
            "start-up s",
            "vs floor s",
            "idle PSS MB",
            "vs floor MB",
            "start-ups",
            "PSS samples",
            "first process RSS MB",
        ],
        rows,
    )
    for label in ("serve", "serve, bot on", "serve, bot in the server"):
        start, rss = med[label]
        print(
            f"\ngoal ({label}): idle PSS at most {GOAL_RSS_MB:.0f} MB above the floor: "
            f"{rss - floor_rss:+.1f} MB -> "
            + ("ok" if rss - floor_rss <= GOAL_RSS_MB else "MISSED")
        )
        print(
            f"goal ({label}): start-up within {GOAL_START_S:.0f} s of the floor: "
            f"{start - floor_start:+.2f} s -> "
            + ("ok" if start - floor_start <= GOAL_START_S else "MISSED")
        )
    serve_start, serve_rss = med["serve"]
    if why_no_fsm is not None:
        print(f"\nconversations: skipped, bot/fsm_storage.py is not importable ({why_no_fsm})")
    elif args.conversations:
        with_conv = statistics.median(s.rss_conversations_mb or 0.0 for s in samples["serve"])
        print(
            f"\nwith {args.conversations} conversations in progress (written through "
            f"bot.fsm_storage.DatabaseStorage into the serve's database): idle PSS "
            f"{with_conv:.1f} MB ({with_conv - serve_rss:+.1f} MB vs idle, "
            f"{with_conv - floor_rss:+.1f} MB vs the floor)"
        )
        print(
            "  (conversations live in the database, not in the serving process: the 'serve, "
            "bot on' row above ran on the same database with them stored)"
        )
    no_aiogram_start, no_aiogram_rss = med["floor without aiogram"]
    print(
        f"\nserve vs the floor without aiogram: {serve_rss - no_aiogram_rss:+.1f} MB, "
        f"{serve_start - no_aiogram_start:+.2f} s (without a token serve does not import "
        "aiogram at all)"
    )


if __name__ == "__main__":
    main()
