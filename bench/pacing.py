"""What keeping Telegram's limits across processes costs per message (bot/pacing.py): one
`reserve()` on each backend, beside its floor measured in the same run (a bare round trip:
`SELECT 1` in a worker thread for PostgreSQL, `PING` for Redis), and how many reservations a
second two pacers (two processes) sustain together with 8 senders each, against the 30 a
second Telegram allows.

    .venv/bin/python -m bench.pacing [--quick] [--redis redis://127.0.0.1:6379/15]

The clock is frozen (nothing sleeps): this measures the bookkeeping, not the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from bench.common import fresh_pg_database, log, percentile, print_table, unique_suffix
from bot.pacing import DatabasePacer, Limits, LocalPacer, Pacer, RedisPacer
from tickets.db import make_engine

LIMITS = Limits()


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    for _ in range(5):
        await fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def throughput(pacers: list[Pacer], seconds: float) -> float:
    """Reservations a second, 8 senders per pacer, each to chats of its own."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def sender(p: Pacer, base: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < deadline:
            await p.reserve(base + n % 50)
            n += 1
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(
        *(sender(p, 1000 * (i * 8 + j)) for i, p in enumerate(pacers) for j in range(8))
    )
    return done / (time.perf_counter() - t0)


def row(name: str, samples: list[float], floor: list[float] | None, rate: float) -> list[Any]:
    p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
    floor50 = percentile(floor, 0.5) if floor else None
    return [
        name,
        f"{p50:.3f}",
        f"{p95:.3f}",
        f"{floor50:.3f}" if floor50 is not None else "-",
        f"{p50 / floor50:.1f}" if floor50 else "-",
        f"{rate:.0f}",
        f"{rate / LIMITS.rate_per_second:.0f}x",
    ]


async def main(args: argparse.Namespace) -> None:
    repeat = 200 if args.quick else 2000
    seconds = 2.0 if args.quick else 5.0
    clock = [1_800_000_000.0]
    rows = []

    local = LocalPacer(LIMITS, clock=lambda: clock[0])
    chats = iter(range(10**9))
    rows.append(
        row(
            "memory (SQLite)",
            await timed(lambda: local.reserve(next(chats) % 50), repeat),
            None,
            await throughput([LocalPacer(LIMITS, clock=lambda: clock[0])], seconds),
        )
    )

    with fresh_pg_database(f"pacing_{unique_suffix()}") as url:
        engines = [make_engine(url), make_engine(url)]
        try:
            # As `serve` builds them: a small autocommit pool of their own (bot/pacing.py).
            pacers: list[Pacer] = [
                DatabasePacer.beside(e, LIMITS, namespace="1:", clock=lambda: clock[0])
                for e in engines
            ]

            def select_one() -> None:
                with engines[0].connect() as conn:
                    conn.execute(text("SELECT 1"))

            log("PostgreSQL")
            floor = await timed(lambda: asyncio.to_thread(select_one), repeat)
            samples = await timed(lambda: pacers[0].reserve(next(chats) % 50), repeat)
            rows.append(row("PostgreSQL", samples, floor, await throughput(pacers, seconds)))
        finally:
            for p in pacers:
                await p.close()
            for e in engines:
                e.dispose()

    if args.redis:
        log("Redis")
        namespace = f"aftersales:bench:{uuid.uuid4().hex[:8]}:"
        redis_pacers: list[Pacer] = [
            RedisPacer.from_url(args.redis, LIMITS, namespace=namespace, clock=lambda: clock[0])
            for _ in range(2)
        ]
        client = redis_pacers[0].client  # type: ignore[attr-defined]
        try:
            floor = await timed(client.ping, repeat)
            samples = await timed(lambda: redis_pacers[0].reserve(next(chats) % 50), repeat)
            rows.append(row("Redis", samples, floor, await throughput(redis_pacers, seconds)))
        finally:
            keys = [k async for k in client.scan_iter(f"{namespace}*")]
            if keys:
                await client.delete(*keys)
            for p in redis_pacers:
                await p.close()

    print_table(
        [
            "backend",
            "reserve p50 ms",
            "p95 ms",
            "floor p50 ms",
            "x floor",
            "two processes /s",
            "x 30/s",
        ],
        rows,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    asyncio.run(main(parser.parse_args()))
