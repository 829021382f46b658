"""Shared pieces of the benchmarks: a fresh PostgreSQL database, a fast set-based case loader,
the app in-process, percentiles, a timing loop, query counting and table printing.

Nothing here asserts a time: benchmarks print their figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from tickets.db import make_engine, make_sessionmaker, unit_of_work, upgrade

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DB_PREFIX = "aftersales_bench_"
# The fixed "now" every benchmark's data and app clock is built around.
NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
DEFAULT_SIZES = (10_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)

# Open statuses with their weights in the open backlog (submitted is the biggest queue).
OPEN_MIX = (
    ("submitted", 45),
    ("needs_info", 10),
    ("awaiting_return", 12),
    ("in_transit", 10),
    ("inspecting", 6),
    ("refund_pending", 8),
    ("exchange_shipping", 4),
    ("escalated", 3),
    ("refused", 2),
)
# Closed statuses of the bulk, with weights.
CLOSED_MIX = (("closed", 55), ("refunded", 35), ("resolved", 6), ("cancelled", 4))
GROUP_MIX = (("service", 65), ("logistics", 15), ("quality", 12), ("finance", 8))
KINDS = ("refund_only", "return_refund", "exchange", "complaint", "delivery")
REASONS = ("size_fit", "quality_defect", "changed_mind", "damaged_in_transit", "no_reason")
CHANNELS = ("telegram", "telegram", "telegram", "web", "phone", "platform")
# The open backlog is bounded: the same few thousand at every size (the queue an agent works).
OPEN_CASES = 4_000
AGENTS = 20


def log(msg: str) -> None:
    """Progress, on stderr, with a wall-clock stamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def size_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated case/clock counts (default 10000,1000000)",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1000,10000: a try in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")


def sizes_of(args: argparse.Namespace) -> list[int]:
    if args.quick:
        return list(QUICK_SIZES)
    return [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]


# ---------------------------------------------------------------- databases


@contextmanager
def fresh_pg_database(name: str, *, keep: bool = False) -> Iterator[str]:
    """A new, migrated PostgreSQL database `aftersales_bench_<name>`; yields its URL and drops
    it afterwards (unless `keep`)."""
    dbname = DB_PREFIX + name
    admin = make_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{dbname}"'))
    url = f"{PG_SERVER}/{dbname}"
    try:
        upgrade(url)
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()


def reset_pg_database(url: str) -> str:
    """An existing PostgreSQL database emptied (its public schema dropped and made again) and
    migrated; returns its URL. For a machine that gives the bench a database of its own
    rather than the right to make them (and where two runs must not share one by name)."""
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            # Sessions a killed run left behind would hold locks on the tables.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    upgrade(url)
    return url


def _weighted_case(mix: Sequence[tuple[str, int]], key: str) -> str:
    """A SQL CASE picking a value of `mix` by weight from `key` (an integer expression)."""
    total = sum(w for _, w in mix)
    parts, upto = [], 0
    for value, weight in mix:
        upto += weight
        parts.append(f"WHEN ({key}) % {total} < {upto} THEN '{value}'")
    return "CASE " + " ".join(parts) + f" ELSE '{mix[-1][0]}' END"


def _pick(values: Sequence[str], key: str) -> str:
    array = ",".join(f"'{v}'" for v in values)
    return f"(ARRAY[{array}])[1 + ({key}) % {len(values)}]"


@dataclass
class Loaded:
    """What a load put in the database."""

    cases: int
    open_cases: int
    customers: int
    agents: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def load_cases(engine: Engine, n: int, *, now: datetime = NOW, clocks: bool = True) -> Loaded:
    """N cases in set-based SQL: customers N/10, agents, and tickets created over two years
    before `now` (id order = creation order). At most OPEN_CASES of them are open, spread
    among the newest cases (one in `stride` of the newest) across statuses (OPEN_MIX) and
    groups (GROUP_MIX), 1 in 100 of them unassigned; the rest are closed (CLOSED_MIX). Open
    cases get a running first_response clock (due in the future); cases have no orders
    (order_id is nullable). VACUUM ANALYZE and CHECKPOINT afterwards: a steady table."""
    started = time.perf_counter()
    customers = max(1, n // 10)
    open_cases = min(OPEN_CASES, n * 2 // 5)
    window = min(n, 4 * open_cases)  # the newest cases, among which the open ones sit
    stride = max(1, window // max(1, open_cases))
    span_seconds = 730 * 24 * 3600
    step = span_seconds / n
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(
            text(
                """
                INSERT INTO customers (id, name, phone, email, telegram_user_id, language,
                                       created_at)
                SELECT g, 'Customer ' || g, '+86138' || lpad(g::text, 8, '0'), NULL,
                       7000000000 + g, CASE WHEN g % 5 = 0 THEN 'en' ELSE 'zh-CN' END,
                       :now - interval '3 years' + g * interval '1 second'
                FROM generate_series(1, :customers) AS g
                """
            ),
            {"customers": customers, "now": now},
        )
        conn.execute(
            text(
                """
                INSERT INTO agents (id, username, display_name, password_hash, role, "group",
                                    language, active, away, failed_logins, created_at)
                SELECT g, 'agent' || g, 'Agent ' || g, NULL,
                       CASE WHEN g = 1 THEN 'lead' ELSE 'agent' END,
                       (ARRAY['service','logistics','quality','finance'])[1 + g % 4],
                       'zh-CN', true, false, 0, :now - interval '3 years'
                FROM generate_series(1, :agents) AS g
                """
            ),
            {"agents": AGENTS, "now": now},
        )
        # Open: every `stride`-th case counting back from the newest, open_cases of them.
        is_open = f"(({n} - g) % {stride} = 0 AND ({n} - g) / {stride} < {open_cases})"
        status = (
            f"CASE WHEN {is_open} THEN {_weighted_case(OPEN_MIX, 'g / ' + str(stride) + ' * 7')}"
            f" ELSE {_weighted_case(CLOSED_MIX, 'g * 13')} END"
        )
        # A triaged desk: 1 in 100 open cases waits unassigned (the unassigned queue is
        # shorter than a page); a third of the closed ones were closed by no agent.
        assignee = (
            f"CASE WHEN {is_open} THEN CASE WHEN (({n} - g) / {stride}) % 100 = 0 THEN NULL "
            f"ELSE 1 + g % {AGENTS} END WHEN g % 3 = 0 THEN NULL ELSE 1 + g % {AGENTS} END"
        )
        conn.execute(
            text(
                f"""
                INSERT INTO tickets (id, number, kind, status, priority, "group", assignee_id,
                    order_id, customer_id, reason, description, channel, language, risk_level,
                    risk_signals, created_at, updated_at, closed_at, version)
                SELECT g, 'AS-' || to_char(c, 'YYYYMMDD') || '-' || lpad(g::text, 7, '0'),
                       {_pick(KINDS, "g * 7")}, s,
                       CASE WHEN g % 23 = 0 THEN 'high' WHEN g % 97 = 0 THEN 'urgent'
                            ELSE 'normal' END,
                       {_weighted_case(GROUP_MIX, "g * 11")},
                       {assignee},
                       NULL, 1 + g % {customers}, {_pick(REASONS, "g * 3")}, '',
                       {_pick(CHANNELS, "g * 5")}, 'zh-CN', 'low', '[]'::json,
                       c, c + interval '2 hours',
                       CASE WHEN s IN ('closed','refunded','resolved','cancelled')
                            THEN c + interval '3 days' END,
                       1
                FROM (
                    SELECT g, :now - (({n} - g) * {step}) * interval '1 second' AS c,
                           {status} AS s
                    FROM generate_series(1, {n}) AS g
                ) AS src
                """
            ),
            {"now": now},
        )
        if clocks:
            conn.execute(
                text(
                    """
                    INSERT INTO sla_clocks (ticket_id, clock, round, calendar, target_seconds,
                        started_at, due_at, state, pauses, reminders_sent, next_check_at)
                    SELECT id, 'first_response', 1, '24/7', 86400, created_at,
                           greatest(created_at, :now) + interval '20 hours', 'running',
                           '[]'::json, 0, greatest(created_at, :now) + interval '18 hours'
                    FROM tickets
                    WHERE status NOT IN ('closed','refunded','resolved','cancelled')
                    """
                ),
                {"now": now},
            )
        for table in ("customers", "agents", "tickets", "sla_clocks"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
            )
    vacuum_analyze(engine)
    with engine.connect() as conn:
        opened = conn.scalar(
            text(
                "SELECT count(*) FROM tickets "
                "WHERE status NOT IN ('closed','refunded','resolved','cancelled')"
            )
        )
    return Loaded(
        cases=n,
        open_cases=int(opened or 0),
        customers=customers,
        agents=AGENTS,
        seconds=time.perf_counter() - started,
    )


def vacuum_analyze(engine: Engine) -> None:
    """VACUUM ANALYZE, then CHECKPOINT, so a bulk load's writes are not flushed while timing."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE)"))
        conn.execute(text("CHECKPOINT"))


def explain(engine: Engine, sql: str, params: Any = None, *, analyze: bool = False) -> str:
    """The plan of one driver-level statement, as the app ran it (EXPLAIN, or EXPLAIN
    (ANALYZE, BUFFERS) with `analyze`)."""
    opts = "(ANALYZE, BUFFERS) " if analyze else ""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN {opts}{sql}", params or {})
        return "\n".join(r[0] for r in rows)


def render_sql(statement: Any, engine: Engine) -> str:
    """A SQLAlchemy statement as PostgreSQL text with its parameters inlined (for EXPLAIN)."""
    return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def db_name(url: str) -> str:
    return make_url(url).database or ""


# ---------------------------------------------------------------- the app in-process


def bench_settings(url: str) -> Any:
    from tickets.settings import Settings

    return Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]


def make_client(url: str, *, now: datetime = NOW) -> tuple[Any, Engine]:
    """A TestClient on the real app (create_app) for the database at `url`, its clock fixed
    at `now`; and the engine it uses (for counting queries)."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    engine = make_engine(url)
    app = create_app(bench_settings(url), engine=engine, clock=lambda: now)
    return TestClient(app), engine


def create_token_for(url: str, username: str = "agent1") -> str:
    """A bearer token for an existing agent, with every scope (the benches push orders and
    work cases)."""
    from tickets.auth import SCOPES, create_token

    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as s:
            return create_token(
                session=s, username=username, now=NOW, name="bench", scopes=list(SCOPES)
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------- measuring


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (0.5: median, 0.95: p95) of the values."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-round(share * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Timing:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 0.95)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms)


def time_calls(fn: Callable[[], Any], *, repeat: int, warmup: int = 3) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeat` times timed (milliseconds each)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return Timing(samples)


def time_interleaved(
    fns: dict[Any, Callable[[], Any]], *, repeat: int, warmup: int = 3
) -> dict[Any, Timing]:
    """Time several calls taking turns (a, b, a, b, ...), so the machine's noise falls on each
    alike and their ratio means something on a shared, busy machine."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[Any, list[float]] = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[key].append((time.perf_counter() - t0) * 1000)
    return {key: Timing(values) for key, values in samples.items()}


class QueryCounter:
    """Counts (and keeps) the SQL statements an engine runs while `active`."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        self.params: list[Any] = []
        self.seconds: list[float] = []
        self._started = 0.0
        self.active = False
        event.listen(engine, "before_cursor_execute", self._on_execute)
        event.listen(engine, "after_cursor_execute", self._on_done)

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any
    ) -> None:
        if self.active:
            self.statements.append(statement)
            self.params.append(parameters)
            self._started = time.perf_counter()

    def _on_done(self, *args: Any) -> None:
        if self.active and len(self.seconds) < len(self.statements):
            self.seconds.append(time.perf_counter() - self._started)

    def slowest(self, top: int = 6) -> list[tuple[float, int, str]]:
        """(total ms, count, statement) of the statements that took longest, summed by text."""
        totals: dict[str, list[float]] = {}
        for sql, secs in zip(self.statements, self.seconds, strict=False):
            totals.setdefault(" ".join(sql.split()), []).append(secs * 1000)
        ranked = sorted(((sum(v), len(v), k) for k, v in totals.items()), reverse=True)
        return ranked[:top]

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements = []
        self.params = []
        self.seconds = []
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


def short_sql(statement: str, width: int = 110) -> str:
    one = " ".join(statement.split())
    return one if len(one) <= width else one[: width - 3] + "..."


def ratio(big: float, small: float) -> str:
    return f"{big / small:.2f}" if small > 0 else "n/a"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for idx, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if idx and _numeric(c) else c.ljust(w)
                for c, w in zip(row, widths, strict=True)
            ).rstrip()
        )
        if idx == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    return str(value)


def _numeric(cell: str) -> bool:
    return cell.replace(" ", "").replace(".", "").replace("-", "").isdigit()


def unique_suffix() -> str:
    return uuid.uuid4().hex[:6]


def days_ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)
