"""`GET /metrics`: the desk in Prometheus' text format, for a scraper holding the metrics token.

Off unless `AFTERSALES_METRICS_TOKEN` is set (then 404, as for any unknown path); with it, a
request without `Authorization: Bearer <that token>` gets 401 (checked on the event loop: a
comparison, no database). The page is built in a worker thread (a sync route): the counts read
from the database (tickets/watch.py, in one read transaction) beside the instruments the process
keeps (tickets/telemetry.py), all of the processes' under `serve --workers N`.

**An internal listener** (`AFTERSALES_METRICS_ADDRESS`, `start_listener`): the same page on an
address of its own, with no token, for a scraper on an internal network; the main port's
/metrics stays as above. `aftersales serve` starts it once, in its own process: with
`--workers N` that is uvicorn's supervisor, which serves no request and adds up the workers'
files (so one port, every process counted, whichever workers come and go); alone, the one
process that serves. It reads the database with an engine of its own (one connection at a
time: a scrape is one read transaction), in the listener's threads, never on an event loop.
"""

from __future__ import annotations

import contextlib
import glob
import hmac
import os
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status

from tickets.db import make_engine, read_sessionmaker
from tickets.models import utcnow
from tickets.policy.rules import load_policy
from tickets.settings import Settings
from tickets.telemetry import instruments, multiprocess_dir
from tickets.watch import desk_state

PATH = "/metrics"
# A live gauge's file in multiprocess mode: gauge_livesum_<pid>.db
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


async def scraper(request: Request) -> None:
    """404 while metrics are off, 401 without the metrics token (module doc)."""
    token: str | None = request.app.state.settings.metrics_token
    if not token:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send 'Authorization: Bearer <AFTERSALES_METRICS_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


class _Scrape:
    """The collector of one scrape: the database's counts, then the instruments."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        state = self.state
        with state.read_sessions() as session:
            desk = desk_state(session=session, policy=state.policy, now=state.clock())
            session.rollback()
        cases = GaugeMetricFamily(
            "aftersales_cases", "Open cases by status and group.", labels=["status", "group"]
        )
        for (case_status, group), n in sorted(desk.cases.items()):
            cases.add_metric([case_status, group], n)
        clocks = GaugeMetricFamily(
            "aftersales_sla_clocks",
            "SLA clocks still counting on open cases: running, warned, breached, paused.",
            labels=["clock", "state"],
        )
        for (clock, clock_state), n in sorted(desk.clocks.items()):
            clocks.add_metric([clock, clock_state], n)
        due = GaugeMetricFamily(
            "aftersales_sla_clocks_due",
            "SLA clocks whose next check is due: the sweep's backlog.",
            value=desk.clocks_due,
        )
        depth = GaugeMetricFamily(
            "aftersales_outbox_pending", "Outbox rows not yet delivered.", labels=["channel"]
        )
        age = GaugeMetricFamily(
            "aftersales_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox row (0 when none).",
            labels=["channel"],
        )
        for channel, (pending, oldest) in sorted(desk.outbox.items()):
            depth.add_metric([channel], pending)
            age.add_metric([channel], round(oldest, 3))
        yield from (cases, clocks, due, depth, age)
        yield from _instruments()


def _instruments() -> Iterator[Any]:
    """This process's instruments, or every process's in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        yield from instruments().registry.collect()
        return
    from prometheus_client import multiprocess

    # A process gone (a worker uvicorn restarted) leaves its live gauges' file behind:
    # dropped, or its last values would count forever. Its counters stay: they happened.
    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        found = _LIVE_FILE.search(name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(int(found.group(1)), path)
    yield from multiprocess.MultiProcessCollector(None, path=path).collect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Listener:
    """The internal metrics listener while it runs (module doc); `stop` ends it."""

    def __init__(self, server: Any, engine: Any) -> None:
        self._server = server
        self._engine = engine

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._engine.dispose()


def start_listener(settings: Settings) -> Listener | None:
    """Serve the metrics page on `AFTERSALES_METRICS_ADDRESS`, without a token, from threads of
    this process (None when the setting is unset). OSError when the address cannot be bound."""
    where = settings.metrics_listen
    if where is None:
        return None
    from prometheus_client import CollectorRegistry, start_http_server

    engine = make_engine(settings.database_url, **_one_connection(settings.database_url))
    state = SimpleNamespace(
        read_sessions=read_sessionmaker(engine),
        policy=load_policy(settings.policy_file),
        clock=utcnow,
    )
    registry = CollectorRegistry()
    registry.register(_Scrape(state))
    host, port = where
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except BaseException:
        engine.dispose()
        raise
    return Listener(server, engine)


def _one_connection(url: str) -> dict[str, Any]:
    """A pool of one (and one spare): scrapes come every few seconds at most."""
    if url.startswith("sqlite"):
        return {}
    return {"pool_size": 1, "max_overflow": 1}


def install_metrics(app: FastAPI) -> None:
    """Mount `GET /metrics` (module doc)."""

    @app.get(PATH, include_in_schema=False, dependencies=[Depends(scraper)])
    def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

        body = generate_latest(_Scrape(request.app.state))
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
