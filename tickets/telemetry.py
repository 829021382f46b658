"""What the desk counts about itself while it runs: the Prometheus instruments (counters and
histograms of HTTP requests, bot updates, delivery errors, SLA sweeps; the database pool's use).

`instruments()` makes them on first use (prometheus_client is imported then, not before:
about 1 MB of a serving process) and hands back the same ones to every caller of the process.
What is read from the database at scrape time (cases, clocks, the outbox) is not here: see
tickets/watch.py, and api/metrics.py for the /metrics page that shows both.

Several processes (`serve --workers N`, api/cli.py): each worker counts in files of its own
under `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, chosen by that
variable when prometheus_client is first imported), and /metrics, in whichever worker answers,
adds them all up (`multiprocess_dir`). Gauges there sum the live processes only ("livesum").

Label values are bounded sets (route templates, update types, error kinds), never raw input:
every label value is a new time series in Prometheus.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# prometheus_client's own variable: set, every process counts in files there (module doc).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. Requests and updates: from a few milliseconds to the 30 s a stalled one may take.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A sweep costs what is due: milliseconds when nothing is, minutes after a long outage.
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Instruments:
    """The process's instruments (README, "Watching it", lists each)."""

    registry: CollectorRegistry
    http_requests: Counter  # method, route, status
    http_seconds: Histogram  # method, route
    bot_updates: Counter  # channel, type, outcome
    bot_update_seconds: Histogram  # channel
    delivery_errors: Counter  # channel, error
    sweep_seconds: Histogram
    pool_checked_out: Gauge
    pool_size: Gauge


_made: Instruments | None = None
_lock = threading.Lock()


def multiprocess_dir() -> str | None:
    """Where the processes of a `serve --workers N` count (None: this process alone)."""
    return os.environ.get(MULTIPROC_ENV) or None


def instruments() -> Instruments:
    """The process's instruments, made on first use (module doc)."""
    global _made
    if _made is not None:
        return _made
    with _lock:
        if _made is None:
            _made = _make()
        return _made


def _make() -> Instruments:
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        disable_created_metrics,
    )

    # No `_created` series beside each counter: a scraper sees a restart as the counter
    # falling back, and the extra series only doubles what it stores.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    # A registry of our own: prometheus_client's default one carries the process and
    # platform collectors, which mean nothing summed over several processes.
    registry = CollectorRegistry(auto_describe=True)
    reg: dict[str, Any] = {"registry": registry}
    return Instruments(
        registry=registry,
        http_requests=Counter(
            "aftersales_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            **reg,
        ),
        http_seconds=Histogram(
            "aftersales_http_request_duration_seconds",
            "Time from a request's arrival to the start of its answer.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            **reg,
        ),
        bot_updates=Counter(
            "aftersales_bot_updates",
            "Bot updates handled (Telegram, web chat), by type and outcome.",
            ["channel", "type", "outcome"],
            **reg,
        ),
        bot_update_seconds=Histogram(
            "aftersales_bot_update_duration_seconds",
            "Time from an update reaching the dispatcher to the end of its unit of work.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            **reg,
        ),
        delivery_errors=Counter(
            "aftersales_delivery_errors",
            "Outbox sends that did not go through, by channel and kind of error.",
            ["channel", "error"],
            **reg,
        ),
        sweep_seconds=Histogram(
            "aftersales_sla_sweep_duration_seconds",
            "How long each SLA sweep took.",
            buckets=SWEEP_BUCKETS,
            **reg,
        ),
        pool_checked_out=Gauge(
            "aftersales_db_pool_checked_out",
            "Database connections in use (checked out of the pools).",
            multiprocess_mode="livesum",
            **reg,
        ),
        pool_size=Gauge(
            "aftersales_db_pool_size",
            "Connections the pools keep (each may open up to its overflow more).",
            multiprocess_mode="livesum",
            **reg,
        ),
    )


def watch_pool(engine: Engine) -> None:
    """Count `engine`'s connections in use as they are checked out and in (the gauge then
    holds in multiprocess mode too, where no scrape can read another process's pool)."""
    if event.contains(engine, "checkout", _checked_out):
        return
    made = instruments()
    size = getattr(engine.pool, "size", None)
    if callable(size):
        made.pool_size.inc(size())
    event.listen(engine, "checkout", _checked_out)
    event.listen(engine, "checkin", _checked_in)


# On a pooled connection while it is counted as in use: a connection checked out before the
# pool was watched is never taken off the count when it comes back.
_COUNTED = "aftersales_counted_in_use"


def _checked_out(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    record.info[_COUNTED] = True
    instruments().pool_checked_out.inc()


def _checked_in(_dbapi_conn: Any, record: Any) -> None:
    if record is not None and record.info.pop(_COUNTED, False):
        instruments().pool_checked_out.dec()
