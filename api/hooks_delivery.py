"""The webhook sender: delivers the outbox's `webhook` rows to the shop's URLs, signed per the
Standard Webhooks specification (the `standardwebhooks` package), and records each attempt.

The rows, their order per case, the retries, the delivery log, switching off a failing URL and
the refund executor's answer are the core's (tickets/webhooks.py); this module is the network:

- **Claim, send, record**, as the Telegram worker does (bot/delivery.py): claiming and
  recording are short transactions in threads (`asyncio.to_thread`), the send is on the event
  loop with `httpx.AsyncClient`; nothing on the loop waits on the database.
- **Bounded**: the whole exchange (connecting, sending, the answer) within
  AFTERSALES_HOOKS_TIMEOUT_SECONDS; at most AFTERSALES_HOOKS_MAX_RESPONSE_BYTES of the answer
  read; at most `MAX_REDIRECTS` redirects, only 307/308 (which keep the POST) and only to the
  same scheme, host and port: a redirect elsewhere is refused, never followed.
- **No SSRF**: the host is resolved (on the loop's resolver, in its thread pool) and every
  address it resolves to must be public (tickets/webhooks.py `address_allowed`) unless
  AFTERSALES_HOOKS_ALLOW_PRIVATE is set; the request then goes to the address that was
  checked (the URL's host kept for the `Host` header and TLS's name check), so a second
  resolution cannot swap in a private one.
- **Headers**: `webhook-id` (the row's, the same on every retry and replay), `webhook-timestamp`
  (the attempt's), `webhook-signature` (`v1,<base64 HMAC-SHA256>`), and for the refund executor
  `Idempotency-Key: refund-<id>`.

**Who holds a claim**: the rows carry the sender's id (`claimed_by`), and the sender beats as
the Telegram worker does, with the same mechanism (tickets/messages/claims.py): a killed
process's rows are taken back by any live sender once it has not been seen for 20 s, not after
their lease (`LEASE_SECONDS`); a sender whose own beats fail starts no send. A row claimed and
sent but not recorded (the process killed between the answer and the commit) is sent again
then, with the same `webhook-id`: at least once, and receivers de-duplicate by the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from tickets.context import Context
from tickets.db import unit_of_work
from tickets.messages.claims import Heartbeat, seen
from tickets.models import utcnow
from tickets.webhooks import (
    REFUND_EXECUTE,
    HookClaim,
    HookResult,
    HookRules,
    address_allowed,
    any_due,
    claim,
    idempotency_key,
    record,
    release,
)

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
# Longer than the longest send (the timeout, at most 60 s): a lease never ends while its
# request is still on the wire.
LEASE_SECONDS = 120.0
BATCH = 50
USER_AGENT = "aftersales-webhooks/1"


class Refused(Exception):
    """A send refused before or instead of being made (an unsafe address, a redirect)."""


@dataclass
class HooksReport:
    """What one pass did, by outcome."""

    claimed: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)


class HooksWorker:
    """Sends the webhook rows (module doc). One per process; several are safe (SKIP LOCKED)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        rules: HookRules,
        context: Callable[[datetime], Context],
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
        idle_seconds: float = 1.0,
        read_sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.sessions = sessions
        # Where an idle pass looks first: a reader's transaction, which on SQLite never takes
        # the write lock (tickets/db.py), so a desk with nothing to send pays no writer a second.
        self.read_sessions = read_sessions or sessions
        self.rules = rules
        self.context = context
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.worker_id = uuid.uuid4().hex
        self.heartbeat = Heartbeat(
            sessions=sessions, worker_id=self.worker_id, clock=clock, name="webhooks-heartbeat"
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._unsent: dict[int, HookClaim] = {}

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                follow_redirects=False,
                timeout=httpx.Timeout(self.rules.timeout_seconds),
                # Environment proxies would carry the request past the address checks.
                trust_env=False,
                # No connection kept: requests go to a checked address, and a pooled connection
                # is found by address, so one made (and its certificate checked) for one host
                # would carry another host's delivery that shares the address.
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; an idle pass waits `idle_seconds`."""
        log.info("webhook sender started")
        # The first beat before the first claim: rows a killed process left go out now.
        await asyncio.to_thread(self.heartbeat.beat_safely)
        self.heartbeat.start()
        try:
            while not stop.is_set():
                try:
                    report = await self.run_once()
                except SQLAlchemyError:
                    log.exception("webhook pass failed; retrying shortly")
                    report = HooksReport()
                except Exception:
                    # A bug must not stop delivery for good (claimed rows return after
                    # their lease).
                    log.exception("webhook pass failed unexpectedly; retrying shortly")
                    report = HooksReport()
                if report.claimed == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.idle_seconds)
        finally:
            await asyncio.to_thread(self.heartbeat.stop)
            rows = list(self._unsent.values())
            self._unsent.clear()
            if rows:
                await asyncio.to_thread(self._release, rows)
            await self.aclose()
            log.info("webhook sender stopped")

    async def drain(self) -> HooksReport:
        """Pass after pass until nothing is due now (tests, the command line)."""
        total = HooksReport()
        while True:
            report = await self.run_once()
            if report.claimed == 0:
                return total
            total.claimed += report.claimed
            total.outcomes.update(report.outcomes)

    async def run_once(self) -> HooksReport:
        """One pass: claim the due rows (one per case and subscription), send them at once,
        record each outcome."""
        rows = await asyncio.to_thread(self._claim)
        self._unsent.update((row.id, row) for row in rows)
        report = HooksReport(claimed=len(rows))
        results = await asyncio.gather(*(self._deliver(row) for row in rows))
        for row, outcome in zip(rows, results, strict=True):
            report.outcomes[row.id] = outcome
        return report

    async def _deliver(self, row: HookClaim) -> str:
        if not self.heartbeat.alive():
            # Not seen for too long: the row may be another sender's by now (module doc). It
            # stays claimed: taken back by a live sender, or given back when this one stops.
            log.warning("webhook row %s not sent: this sender's heartbeat is failing", row.id)
            return "not sent"
        result = await self.send(row)
        self._unsent.pop(row.id, None)
        return await asyncio.to_thread(self._record, row, result)

    def _claim(self) -> list[HookClaim]:
        now = self.clock()
        with self.read_sessions() as reader:
            due = any_due(reader, now=now)
            reader.rollback()
        if not due:
            return []
        with unit_of_work(self.sessions) as session:
            rows = claim(
                session,
                now=now,
                worker_id=self.worker_id,
                lease_seconds=LEASE_SECONDS,
                limit=BATCH,
            )
            if rows:
                # Seen as it claims: a sender driven by `run_once` alone (no heartbeat) is not
                # taken for a dead one the moment its rows are stamped.
                seen(session, self.worker_id, now)
            return rows

    def _record(self, row: HookClaim, result: HookResult) -> str:
        ctx = self.context(self.clock())
        with unit_of_work(self.sessions) as session:
            return record(session, hook=row, result=result, rules=self.rules, ctx=ctx)

    def _release(self, rows: list[HookClaim]) -> None:
        with unit_of_work(self.sessions) as session:
            release(session, [r.id for r in rows], self.worker_id, self.clock())

    # ------------------------------------------------------------ one request

    def signed(self, row: HookClaim, at: datetime) -> tuple[bytes, dict[str, str]]:
        """The body as sent and its headers, signed with the subscription's secret."""
        body = json.dumps(row.body, ensure_ascii=False, separators=(",", ":")).encode()
        signature = Webhook(row.secret).sign(msg_id=row.webhook_id, timestamp=at, data=body)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            # The answer is read raw, and bounded: a compressed one could expand past the
            # bound in one chunk.
            "accept-encoding": "identity",
            "webhook-id": row.webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
        }
        if row.kind == REFUND_EXECUTE and row.refund_id is not None:
            headers["idempotency-key"] = idempotency_key(row.refund_id)
        return body, headers

    async def send(self, row: HookClaim) -> HookResult:
        """POST the row to its URL within the bounds (module doc); never raises."""
        body, headers = self.signed(row, self.clock())
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(self.rules.timeout_seconds):
                status, data = await self._post(row.url, body, headers)
        except Refused as exc:
            return HookResult(None, f"refused: {exc}", duration_ms=took())
        except TimeoutError:
            return HookResult(
                None, f"no answer within {self.rules.timeout_seconds:g} s", duration_ms=took()
            )
        except httpx.HTTPError as exc:
            return HookResult(None, f"{type(exc).__name__}: {exc}"[:500], duration_ms=took())
        excerpt = data.decode("utf-8", "replace")
        answer = None
        if 200 <= status < 300 and row.kind == REFUND_EXECUTE:
            with contextlib.suppress(ValueError):
                answer = json.loads(data)
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return HookResult(status, error, excerpt, answer, took())

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            status, data, location = await self._post_once(url, body, headers)
            if location is None:
                return status, data
            target = str(httpx.URL(url).join(location))
            if status not in (307, 308):
                raise Refused(f"HTTP {status} redirect to {target}: a webhook POST is not redone")
            if _origin(target) != origin:
                raise Refused(f"redirect to another host: {target}")
            url = target
        raise Refused(f"more than {MAX_REDIRECTS} redirects")

    async def _post_once(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str | None]:
        parts = httpx.URL(url)
        host = parts.host
        address = await self._checked_address(host, parts.port or _default_port(parts.scheme))
        pinned = parts.copy_with(host=address)
        client = await self._http()
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "host": parts.netloc.decode("ascii")},
            extensions={"sni_hostname": host},
        )
        response = await client.send(request, stream=True)
        try:
            data = bytearray()
            async for chunk in response.aiter_raw():
                data += chunk
                if len(data) >= self.rules.max_response_bytes:
                    del data[self.rules.max_response_bytes :]
                    break
        finally:
            await response.aclose()
        location = response.headers.get("location") if response.is_redirect else None
        return response.status_code, bytes(data), location

    async def _checked_address(self, host: str, port: int) -> str:
        """The address to call: every address the host resolves to must be allowed."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise Refused(f"{host} does not resolve: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise Refused(f"{host} does not resolve")
        for address in addresses:
            if not address_allowed(address, allow_private=self.rules.allow_private):
                raise Refused(
                    f"{host} resolves to {address}, not a public address "
                    "(AFTERSALES_HOOKS_ALLOW_PRIVATE allows it in development)"
                )
        return addresses[0]


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return (parts.scheme, parts.hostname or "", parts.port or _default_port(parts.scheme))
