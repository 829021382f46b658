"""The SLA sweep's cost as stored clocks grow: `run_sweep` as of a fixed `now` over N open
clocks of which a fixed 200 are due, N = 10 000 and 1 000 000, on PostgreSQL.

    python -m bench.sla_sweep [--sizes 10000,1000000] [--quick] [--due 200] [--repeat 5] [--keep]

Data: N/2 cases (bench.common.load_cases, no clocks of its own) with two running clocks each
(first_response and review), `next_check_at` spread from 1 minute to 30 days after `now`;
then the first_response clocks of the `--due` newest open cases are made due (warned, due 5
minutes ago), so a sweep breaches exactly those (their next check, the escalation, is an hour
later). Each sweep is timed whole (`--repeat` times after one warm-up); between sweeps the due
clocks are put back and their events and outbox rows deleted. Printed: the sweep time per size
(median, min, max), per due clock, and the ratio largest/smallest (cost should follow the
clocks due, not the clocks stored); the SQL per sweep; EXPLAIN of the due-clocks query.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from bench.common import (
    NOW,
    QueryCounter,
    explain,
    fresh_pg_database,
    load_cases,
    log,
    print_table,
    ratio,
    short_sql,
    size_args,
    sizes_of,
    vacuum_analyze,
)
from tickets.context import Context
from tickets.db import make_engine, make_sessionmaker
from tickets.messages.scripts import bundled_scripts_dir, load_library
from tickets.policy.rules import Policy
from tickets.sla.sweep import run_sweep

OPEN = "status NOT IN ('closed','refunded','resolved','cancelled')"


def load_clocks(engine: Engine, n: int, due: int) -> list[int]:
    """Two clocks per case (N in all), all in the future but `due` of them; their ids."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        for name, offset in (("first_response", 0), ("review", 1)):
            conn.execute(
                text(
                    f"""
                    INSERT INTO sla_clocks (ticket_id, clock, round, calendar, target_seconds,
                        started_at, due_at, state, pauses, reminders_sent, next_check_at)
                    SELECT id, '{name}', 1, '24/7', 86400, :now - interval '1 hour',
                           :now + ((id * 7 + {offset}) % 43200 + 20) * interval '1 minute',
                           'running', '[]'::json, 0,
                           :now + ((id * 7 + {offset}) % 43200 + 1) * interval '1 minute'
                    FROM tickets
                    """
                ),
                {"now": NOW},
            )
        ids = list(
            conn.scalars(
                text(
                    f"""
                    UPDATE sla_clocks SET started_at = :now - interval '24 hours 5 minutes',
                           due_at = :now - interval '5 minutes',
                           warned_at = :now - interval '20 minutes',
                           next_check_at = :now - interval '5 minutes'
                    WHERE clock = 'first_response' AND ticket_id IN (
                        SELECT id FROM tickets WHERE {OPEN} ORDER BY id DESC LIMIT :due)
                    RETURNING id
                    """
                ),
                {"now": NOW, "due": due},
            )
        )
    vacuum_analyze(engine)
    return ids


def reset(engine: Engine, ids: list[int]) -> None:
    """Put the due clocks back as they were before a sweep; drop what the sweep wrote."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                UPDATE sla_clocks SET state = 'running', breached_at = NULL,
                       escalated_at = NULL, next_check_at = :now - interval '5 minutes'
                WHERE id = ANY(:ids)
                """
            ),
            {"now": NOW, "ids": ids},
        )
        conn.execute(text("DELETE FROM events WHERE type LIKE 'sla.%'"))
        conn.execute(text("DELETE FROM outbox"))


def run_size(n: int, due: int, repeat: int, keep: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with fresh_pg_database(f"sla_sweep_{n}", keep=keep) as url:
        engine = make_engine(url)
        log(f"N={n:,} clocks: loading {n // 2:,} cases")
        loaded = load_cases(engine, n // 2, clocks=False)
        t0 = time.perf_counter()
        ids = load_clocks(engine, n, due)
        with engine.connect() as conn:
            stored = conn.scalar(text("SELECT count(*) FROM sla_clocks"))
            waiting = conn.scalar(
                text("SELECT count(*) FROM sla_clocks WHERE next_check_at <= :now"), {"now": NOW}
            )
        log(
            f"N={n:,}: {stored:,} clocks ({waiting} due) on {loaded.cases:,} cases, loaded in "
            f"{loaded.seconds + time.perf_counter() - t0:.1f}s"
        )
        out.update(stored=stored, due=waiting)
        sessions = make_sessionmaker(engine)
        ctx = Context(
            policy=Policy(),
            now=NOW,
            tz=ZoneInfo("Asia/Shanghai"),
            scripts=load_library(bundled_scripts_dir()),
        )
        counter = QueryCounter(engine)
        samples = []
        processed = []
        for i in range(repeat + 1):
            reset(engine, ids)
            with counter.counting():
                t0 = time.perf_counter()
                report = run_sweep(sessions=sessions, ctx=ctx)
                elapsed = time.perf_counter() - t0
            processed.append((len(report.clocks), report.breached, report.failed))
            out["slowest"] = counter.slowest()
            out["sql_ms"] = sum(counter.seconds) * 1000
            if i == 0:
                out["statements"] = list(counter.statements)
                out["params"] = list(counter.params)
                log(f"N={n:,}: warm-up sweep {elapsed:.2f}s: {report}")
                continue
            samples.append(elapsed)
            log(f"N={n:,}: sweep {i}/{repeat} {elapsed:.2f}s: {report}")
        out.update(samples=samples, processed=processed)
        # The due-clocks query: the first that reads the clocks (the outbox's net, settling
        # rows left on a channel nothing delivers, runs before it).
        first = next(i for i, q in enumerate(out["statements"]) if "FROM sla_clocks" in q)
        due_sql = out["statements"][first]
        due_params = out["params"][first]
        out["due_sql"] = due_sql
        reset(engine, ids)
        out["explain"] = explain(engine, due_sql, due_params)
        out["explain_analyze"] = explain(engine, due_sql, due_params, analyze=True)
        engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    parser.add_argument("--due", type=int, default=200, help="clocks due at `now`")
    parser.add_argument("--repeat", type=int, default=5, help="timed sweeps per size")
    args = parser.parse_args()
    sizes = sorted(sizes_of(args))
    results = {n: run_size(n, args.due, args.repeat, args.keep) for n in sizes}

    print(f"\n## run_sweep as of {NOW.isoformat()} (PostgreSQL), seconds per sweep")
    rows = []
    for n in sizes:
        r = results[n]
        med = statistics.median(r["samples"])
        handled = {p[0] for p in r["processed"]}
        breached = {p[1] for p in r["processed"]}
        failed = sum(p[2] for p in r["processed"])
        rows.append(
            [
                r["stored"],
                r["due"],
                "/".join(str(h) for h in sorted(handled)),
                "/".join(str(b) for b in sorted(breached)),
                failed,
                med,
                min(r["samples"]),
                max(r["samples"]),
                f"{med / max(1, r['due']) * 1000:.1f}",
                len(r["statements"]),
            ]
        )
    print_table(
        [
            "clocks stored",
            "due",
            "handled",
            "breached",
            "failed",
            "median s",
            "min s",
            "max s",
            "ms/due clock",
            "SQL/sweep",
        ],
        rows,
    )
    if len(sizes) > 1:
        big, small = results[sizes[-1]], results[sizes[0]]
        print(
            f"\nratio {sizes[-1]:,}/{sizes[0]:,} clocks: median "
            f"{ratio(statistics.median(big['samples']), statistics.median(small['samples']))}, "
            f"max {ratio(max(big['samples']), max(small['samples']))} "
            "(flat = cost follows the clocks due, not the clocks stored)"
        )
    for n in sizes:
        r = results[n]
        print(
            f"\n## last sweep at {n:,} clocks: {r['sql_ms']:.0f} ms in SQL statements "
            "(commits not included); the slowest, summed by statement:"
        )
        for total, count, sql in r["slowest"]:
            print(f"  {total:8.1f} ms  x{count:<4} {short_sql(sql, 120)}")
    big = results[sizes[-1]]
    print(f"\n## the due-clocks query at {sizes[-1]:,} clocks\n{short_sql(big['due_sql'], 300)}")
    print("\nEXPLAIN:\n" + big["explain"])
    print("\nEXPLAIN (ANALYZE, BUFFERS):\n" + big["explain_analyze"])


if __name__ == "__main__":
    main()
