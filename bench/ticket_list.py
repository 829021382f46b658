"""The queue's speed as the table grows: GET /api/v1/tickets through the real app in-process
(FastAPI TestClient, a bearer token) on PostgreSQL with N cases, N = 10 000 and 1 000 000.

    python -m bench.ticket_list [--sizes 10000,1000000] [--quick] [--repeat 200] [--keep]

Data (bench.common.load_cases): N cases made with set-based SQL, most of them closed or
refunded, a bounded 4 000 open across statuses and groups (the same at every size), customers
N/10, no orders. Timed, each `--repeat` times after a warm-up:

- queue: status=submitted&group=service, its first page (limit 50);
- deep: the same queue 20 pages in (next_cursor followed 20 times), that page's request;
- unassigned: the panel's unassigned queue (assignee=none, the working statuses): 1 in 100
  open cases, so shorter than a page, as on a triaged desk;
- all: every case, no filter, first page.

Printed: p50 and p95 (ms) per size, and p95(largest)/p95(smallest) per query (goal, issue:
at most 1.5). At the largest size, EXPLAIN of the SQL the app ran; and for a query over the
goal, EXPLAIN (ANALYZE, BUFFERS) to show why.

    python -m bench.ticket_list --server-cpu [--db sqlite|postgres] [--repeat 1000]

The request's own cost instead (issue 18: its idle cost is most of its wait under the bot's
flood): the real `aftersales serve` process on the demo shop (bench.loop_lag's data, no bot),
the default page (`GET /api/v1/tickets`) asked `--repeat` times in turn over HTTP, and the
server process's CPU time (user + system, /proc) per request, by batches of 50: the median and
the lowest batch (CPU time, not wall time: a shared machine makes wall time noisy). Also the
SQL statements one request runs (the same app in-process, counted).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    QueryCounter,
    Timing,
    create_token_for,
    explain,
    fresh_pg_database,
    load_cases,
    log,
    make_client,
    percentile,
    print_table,
    ratio,
    short_sql,
    size_args,
    sizes_of,
    time_interleaved,
)
from tickets.workflow import WORKING as WORKING_STATUSES

GOAL = 1.5
DEPTH = 20
# The panel's unassigned queue: the working statuses, as api/panel/queue.py lists them.
WORKING = ",".join(sorted(s.value for s in WORKING_STATUSES))
QUERIES: dict[str, str] = {
    "queue": "status=submitted&group=service&limit=50",
    "deep": "status=submitted&group=service&limit=50",  # + cursor of page DEPTH + 1
    "unassigned": f"assignee=none&status={WORKING}&limit=50",
    "all": "limit=50",
}


def deep_cursor(client: Any, headers: dict[str, str], query: str) -> tuple[str | None, int]:
    """The cursor of page DEPTH + 1 (or of the deepest page there is), and its page number."""
    cursor = None
    page = 1
    for _ in range(DEPTH):
        url = "/api/v1/tickets?" + query + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).json()
        if not body.get("next_cursor"):
            break
        cursor = body["next_cursor"]
        page += 1
    return cursor, page


def main_statements(counter: QueryCounter) -> list[tuple[str, Any]]:
    """The list's own SQL among what a request ran (the page and its capped count)."""
    out = []
    for sql, params in zip(counter.statements, counter.params, strict=True):
        flat = " ".join(sql.split())
        if flat.startswith("SELECT tickets.id") or "count(*)" in flat:
            out.append((sql, params))
    return out


def prepare_size(n: int, keep: bool, stack: ExitStack) -> dict[str, Any]:
    """Load N cases in a fresh database (kept up until `stack` closes) and find each query's
    URL; the timing happens later, taking turns with the other sizes."""
    results: dict[str, Any] = {"timings": {}, "plans": {}, "pages": {}}
    url = stack.enter_context(fresh_pg_database(f"ticket_list_{n}", keep=keep))
    log(f"N={n:,}: loading cases")
    loaded = load_cases(make_engine_for(url), n)
    log(
        f"N={n:,}: {loaded.cases:,} cases ({loaded.open_cases:,} open), "
        f"{loaded.customers:,} customers in {loaded.seconds:.1f}s"
    )
    results["loaded"] = loaded
    token = create_token_for(url)
    headers = {"Authorization": f"Bearer {token}"}
    client, engine = make_client(url)
    stack.callback(engine.dispose)
    stack.enter_context(client)
    urls: dict[str, str] = {}
    for name, query in QUERIES.items():
        if name == "deep":
            cursor, page = deep_cursor(client, headers, query)
            results["pages"][name] = page
            urls[name] = f"/api/v1/tickets?{query}" + (f"&cursor={cursor}" if cursor else "")
        else:
            urls[name] = f"/api/v1/tickets?{query}"
    for name, url_ in urls.items():
        first = client.get(url_, headers=headers)
        assert first.status_code == 200, first.text
        body = first.json()
        results.setdefault("counts", {})[name] = (len(body["data"]), body["count"])
    results.update(
        client=client, headers=headers, urls=urls, engine=engine, counter=QueryCounter(engine)
    )
    return results


def measure(by_size: dict[int, dict[str, Any]], repeat: int, explain_at: int) -> None:
    """Time each query at every size, the sizes taking turns request by request."""
    for name in QUERIES:
        calls = {}
        for n, r in by_size.items():

            def call(r: dict[str, Any] = r, name: str = name) -> None:
                r["client"].get(r["urls"][name], headers=r["headers"])

            calls[n] = call
        log(f"timing {name} x{repeat} at {', '.join(f'{n:,}' for n in by_size)} (interleaved)")
        for n, timing in time_interleaved(calls, repeat=repeat).items():
            by_size[n]["timings"][name] = timing
        for n, r in by_size.items():
            with r["counter"].counting():
                calls[n]()
            r["plans"][name] = main_statements(r["counter"])
            r.setdefault("queries", {})[name] = len(r["counter"].statements)
    big = by_size[explain_at]
    for name, statements in big["plans"].items():
        big["plans"][name] = [
            (sql, params, explain(big["engine"], sql, params)) for sql, params in statements
        ]
    big["analyze"] = lambda sql, params: explain(big["engine"], sql, params, analyze=True)


def make_engine_for(url: str) -> Any:
    from tickets.db import make_engine

    return make_engine(url)


BATCH = 50


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(db: str, repeat: int, keep: bool) -> None:
    """--server-cpu (module doc): CPU time and statements per request of the default page."""
    from bench.chaos import database
    from tests.fakes.serve import Serve

    with database(db, keep, "ticket_list_cpu") as url:
        data = Path(tempfile.mkdtemp(prefix="aftersales-ticketcpu-"))
        serve = Serve(database_url=url, data_dir=data, api_url=None, token=None)
        try:
            log(f"setting up ({db}): migrate, demo")
            token = serve.setup(in_process=True)
            headers = {"Authorization": f"Bearer {token}"}
            client, engine = make_client(url)
            with client:
                counter = QueryCounter(engine)
                client.get("/api/v1/tickets", headers=headers)
                with counter.counting():
                    rows = len(client.get("/api/v1/tickets", headers=headers).json()["data"])
            engine.dispose()
            serve.start()
            assert serve.proc is not None
            batches: list[float] = []
            with httpx.Client(base_url=serve.url, headers=headers, timeout=30) as http:
                for _ in range(BATCH):  # warm: prepared statements, caches
                    http.get("/api/v1/tickets").raise_for_status()
                log(f"{repeat} requests in turn")
                for _ in range(max(1, repeat // BATCH)):
                    before = _cpu_seconds(serve.proc.pid)
                    for _ in range(BATCH):
                        http.get("/api/v1/tickets").raise_for_status()
                    batches.append((_cpu_seconds(serve.proc.pid) - before) / BATCH * 1000)
        finally:
            serve.stop()
            shutil.rmtree(data, ignore_errors=True)
    print(f"\n## GET /api/v1/tickets, the demo shop ({rows} rows), {db}: the server's own cost")
    print_table(
        ["CPU ms/request (median batch)", "lowest batch", "SQL/request"],
        [[percentile(batches, 0.5), min(batches), len(counter.statements)]],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size_args(parser)
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per query")
    parser.add_argument(
        "--server-cpu", action="store_true", help="the server's CPU per request (module doc)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    args = parser.parse_args()
    if args.server_cpu:
        server_cpu(args.db, args.repeat, args.keep)
        return
    sizes = sorted(sizes_of(args))
    by_size: dict[int, dict[str, Any]] = {}

    def over_goal(n: int, results: dict[str, Any]) -> None:
        """At the largest size, while its database is up: EXPLAIN ANALYZE what misses the goal."""
        if n != sizes[-1] or len(sizes) < 2:
            return
        small: dict[str, Timing] = by_size[sizes[0]]["timings"]
        for name, timing in results["timings"].items():
            r = timing.p95 / small[name].p95
            if r <= GOAL:
                continue
            print(f"\n### {name}: p95 ratio {r:.2f} > {GOAL}: EXPLAIN (ANALYZE, BUFFERS)")
            for sql, params, *_ in results["plans"][name]:
                print("--", short_sql(sql, 200))
                print(results["analyze"](sql, params))

    with ExitStack() as stack:
        for n in sizes:
            by_size[n] = prepare_size(n, args.keep, stack)
        measure(by_size, args.repeat, explain_at=sizes[-1])
        over_goal(sizes[-1], by_size[sizes[-1]])

    print("\n## GET /api/v1/tickets (in-process TestClient, PostgreSQL), milliseconds")
    for name, query in QUERIES.items():
        extra = f" (page {by_size[sizes[-1]]['pages'][name]})" if name == "deep" else ""
        print(f"  {name}: {query}{extra}")
    rows = []
    for name in QUERIES:
        row: list[Any] = [name]
        for n in sizes:
            t = by_size[n]["timings"][name]
            row += [t.p50, t.p95]
        if len(sizes) > 1:
            big = by_size[sizes[-1]]["timings"][name].p95
            small = by_size[sizes[0]]["timings"][name].p95
            r = big / small
            row += [ratio(big, small), "ok" if r <= GOAL else "MISSED"]
        row.append(by_size[sizes[-1]]["queries"][name])
        rows.append(row)
    headers = ["query"]
    for n in sizes:
        headers += [f"p50@{n:,}", f"p95@{n:,}"]
    if len(sizes) > 1:
        headers += [f"p95 ratio (goal <= {GOAL})", "verdict"]
    headers.append("SQL/request")
    print_table(headers, rows)
    print("\nrows returned / count per query at each size:")
    for n in sizes:
        counts = by_size[n]["counts"]
        loaded = by_size[n]["loaded"]
        print(
            f"  N={n:,} ({loaded.open_cases:,} open, loaded in {loaded.seconds:.0f}s): "
            + ", ".join(f"{k} {v[0]} rows/count {v[1]:,}" for k, v in counts.items())
        )
    print(f"\n## EXPLAIN at N={sizes[-1]:,} (the SQL the app ran)")
    for name, plans in by_size[sizes[-1]]["plans"].items():
        for sql, _params, plan in plans:
            print(f"\n### {name}: {short_sql(sql, 160)}")
            print(plan)


if __name__ == "__main__":
    main()
