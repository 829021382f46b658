"""The real `aftersales serve` process, as a user runs it: started with `python -m api.cli`
in a directory of its own (no `.env` but the one we mean), its output in a log file, killed in
the end whatever happens. Also the one-shot CLI commands (migrate, demo, create-token), an HTTP
watchdog that calls the API and the panel while the bot works and records how long each
request waited, and database helpers for the counts afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.bot_api import TOKEN

ROOT = Path(__file__).resolve().parents[2]
# The panel's demo log-in (tickets/demo.py, printed by `aftersales demo`).
ADMIN = ("admin", "demo-password-1")
# Where uvicorn says which port it took (we ask for port 0: a free one).
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
# What must never appear in the server's log.
BAD_LOG_LINES = ("database is locked", "Traceback")


class ServeFailed(RuntimeError):
    """The process did not start, or a CLI command failed: the message has its output."""


class Serve:
    """One product installation (database, data directory) and its serve process(es)."""

    def __init__(
        self,
        *,
        database_url: str,
        data_dir: Path,
        api_url: str | None,
        token: str | None = TOKEN,
        env: dict[str, str] | None = None,
        serve_args: tuple[str, ...] = (),
        command: tuple[str, ...] | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "serve.log"
        self.serve_args = serve_args
        # This checkout's code, or the `aftersales` of an installation (tests/test_wheel.py),
        # which then gets no path to the checkout.
        self.command = command or (sys.executable, "-m", "api.cli")
        inherited = ("AFTERSALES_",) if command is None else ("AFTERSALES_", "PYTHONPATH")
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(inherited)},
            **({"PYTHONPATH": str(ROOT)} if command is None else {}),
            "PYTHONUNBUFFERED": "1",
            "AFTERSALES_DATABASE_URL": database_url,
            "AFTERSALES_MEDIA_DIR": str(data_dir / "media"),
            "AFTERSALES_SECRET_KEY": "e2e-" + "s" * 40,
            **({"AFTERSALES_TELEGRAM_TOKEN": token} if token else {}),
            **({"AFTERSALES_TELEGRAM_API_URL": api_url} if api_url else {}),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        assert self.port is not None, "not started"
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120) -> str:
        """`aftersales <args>` (this checkout's code, or the installed command); its stdout, or
        ServeFailed."""
        done = subprocess.run(
            [*self.command, *args],
            cwd=self.data_dir,
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ServeFailed(f"aftersales {' '.join(args)}: {done.stdout}\n{done.stderr}")
        return done.stdout

    def setup(self, *, in_process: bool = False) -> str:
        """migrate, demo, and an API token for the demo admin (returned). `in_process` does
        the same through the core in this process: the commands' own start-up (seconds each
        on a busy machine) saved where only their result matters."""
        if not in_process:
            self.cli("migrate")
            self.cli("demo")
            out = self.cli("create-token", ADMIN[0], "--name", "e2e")
            return out.strip().splitlines()[-1].strip()
        from api.demo_pictures import demo_photo
        from tickets.auth import create_token
        from tickets.db import make_engine, make_sessionmaker, unit_of_work, upgrade
        from tickets.demo import load_demo
        from tickets.models import utcnow
        from tickets.settings import Settings

        settings = Settings(
            database_url=self.database_url,
            media_dir=self.data_dir / "media",
            _env_file=None,
        )
        upgrade(self.database_url)
        engine = make_engine(self.database_url)
        try:
            sessions = make_sessionmaker(engine)
            with unit_of_work(sessions) as session:
                load_demo(session=session, settings=settings, now=utcnow(), draw_photo=demo_photo)
            with unit_of_work(sessions) as session:
                return create_token(session=session, username=ADMIN[0], now=utcnow(), name="e2e")
        finally:
            engine.dispose()

    def start(self, timeout: float = 60) -> None:
        """Start serve on a free port and wait until /healthz answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            # Where this run's lines begin: an earlier run's port line must never be taken.
            start_of_run = log.tell()
            self.proc = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    *self.serve_args,
                ],
                cwd=self.data_dir,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        self.port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServeFailed(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            if self.port is None:
                run_log = self.log_path.read_bytes()[start_of_run:]
                found = _LISTENING.findall(run_log.decode("utf-8", errors="replace"))
                if found:
                    self.port = int(found[-1])
            if self.port is not None:
                try:
                    r = httpx.get(f"{self.url}/healthz", timeout=2)
                    self.last_health = f"{r.status_code} {r.text[:200]}"
                    if r.status_code == 200:
                        return
                except httpx.HTTPError as exc:
                    self.last_health = repr(exc)
            time.sleep(0.1)
        self.stop()
        last = getattr(self, "last_health", None)
        raise ServeFailed(
            f"serve did not answer /healthz within {timeout}s (last answer: {last}):\n{self.log()}"
        )

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The whole process group: workers a serve process started go with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def bad_log_lines(self) -> list[str]:
        """Lines of the log that must not be there, with a little context."""
        lines = self.log().splitlines()
        bad = []
        for i, line in enumerate(lines):
            if any(b in line for b in BAD_LOG_LINES):
                bad.append("\n".join(lines[max(0, i - 2) : i + 8]))
        return bad


# ---------------------------------------------------------------- the watchdog


@dataclass
class Probe:
    path: str
    started: float
    seconds: float
    status: int | None  # None: no answer (timeout, refused)
    # False for the log-in's POST: checking a password is slow on purpose (argon2), in a
    # worker thread; it counts for answering, not for its wait.
    timed: bool = True


@dataclass
class Watchdog:
    """Calls /healthz, the JSON API's case list and a panel page in turn, one after the other,
    for as long as it runs; every request's wait is recorded."""

    base: str
    token: str
    timeout: float = 30.0
    paths: tuple[str, ...] = ("/healthz", "/api/v1/tickets", "/panel")
    pause: float = 0.05  # between two requests
    probes: list[Probe] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        self._client = httpx.Client(base_url=self.base, timeout=self.timeout)
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()
        return self

    def _get(self, path: str, *, timed: bool = True, **kw: Any) -> httpx.Response | None:
        """One request, recorded (None: no answer in time, or the connection failed)."""
        t0 = time.monotonic()
        r: httpx.Response | None
        try:
            r = self._client.request(kw.pop("method", "GET"), path, **kw)
        except httpx.HTTPError:
            r = None
        self.probes.append(
            Probe(path, t0, time.monotonic() - t0, r.status_code if r is not None else None, timed)
        )
        return r

    def _login(self) -> bool:
        """Log in to the panel as the demo admin (two recorded requests)."""
        page = self._get("/panel/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text) if page else None
        if token is None:
            return False
        r = self._get(
            "/panel/login",
            timed=False,
            method="POST",
            data={
                "username": ADMIN[0],
                "password": ADMIN[1],
                "login_token": token.group(1),
                "next": "/panel",
            },
        )
        return r is not None and r.status_code == 303

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        # The panel needs a session; the API and /healthz do not.
        logged_in = "/panel" not in self.paths
        while not self._stop.is_set():
            if not logged_in:
                logged_in = self._login()
            for path in self.paths:
                if path != "/panel" or logged_in:
                    self._get(path, headers=headers)
                self._stop.wait(self.pause)

    def stop(self) -> list[Probe]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
        self._client.close()
        return list(self.probes)


def slowest(probes: list[Probe]) -> Probe | None:
    """The timed request that waited longest."""
    return max((p for p in probes if p.timed), key=lambda p: p.seconds, default=None)


def by_path(probes: list[Probe]) -> dict[str, str]:
    """Per path: requests, median and slowest wait (for a failure's message)."""
    out = {}
    for path in sorted({p.path for p in probes}):
        waits = sorted(p.seconds for p in probes if p.path == path)
        out[path] = (
            f"{len(waits)} requests, median {waits[len(waits) // 2]:.3f}s, max {waits[-1]:.3f}s"
        )
    return out


def as_dict(probe: Probe | None) -> dict[str, Any]:
    if probe is None:
        return {}
    return {"path": probe.path, "seconds": round(probe.seconds, 3), "status": probe.status}
