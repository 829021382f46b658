"""Browser-test fixtures: a real uvicorn server on a free localhost port over a migrated SQLite
file holding the demo shop (loaded by `load_demo`, as `aftersales demo` does, its photos in the
server's media folder), and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.demo_pictures import demo_photo
from tickets.db import make_engine, make_sessionmaker
from tickets.demo import AGENTS, ORDER_PREFIX, load_demo
from tickets.models import Agent, Attachment, Message, Order, Ticket, utcnow
from tickets.settings import Settings
from tickets.workflow import WORKING

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def password(username: str) -> str:
    """A demo agent's password, as `aftersales demo` publishes it."""
    return next(a.password for a in AGENTS if a.username == username)


@dataclass
class Shop:
    base_url: str
    case: str  # the demo case the test works
    order_no: str
    customer: str  # the customer's name
    photos: list[str]  # the SHA-256 of each photo the customer sent on it, in order
    cases: int  # how many cases the shop holds
    mine: int  # how many working cases are Xiaomei's at the start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _seed(url: str, media: Path) -> Shop:
    """The demo shop, as of now; and the case the browser works: the first (by number) fresh
    return in the queue whose customer sent photos with a message."""
    settings = Settings(database_url=url, media_dir=media, _env_file=None)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        load_demo(session=s, settings=settings, now=utcnow(), draw_photo=demo_photo)
        s.commit()
        candidates = s.scalars(
            select(Ticket)
            .join(Order, Ticket.order_id == Order.id)
            .where(
                Order.order_no.like(f"{ORDER_PREFIX}%"),
                Ticket.status == "submitted",
                Ticket.kind == "return_refund",
                Ticket.id.in_(
                    select(Message.ticket_id)
                    .join(Attachment, Attachment.message_id == Message.id)
                    .where(Message.author == "customer", Attachment.kind == "photo")
                ),
            )
            .order_by(Ticket.number)
        ).all()
        assert candidates, "the demo has no fresh return with photos to work"
        case = candidates[0]
        assert case.order is not None
        photos = [
            a.sha256
            for m in case.messages
            if m.author == "customer"
            for a in sorted(m.attachments, key=lambda a: a.id)
            if a.kind == "photo"
        ]
        xiaomei = s.scalar(select(Agent).where(Agent.username == "xiaomei"))
        assert xiaomei is not None
        mine = s.scalar(
            select(func.count(Ticket.id)).where(
                Ticket.assignee_id == xiaomei.id,
                Ticket.status.in_([w.value for w in WORKING]),
            )
        )
        shop = Shop(
            base_url="",
            case=case.number,
            order_no=case.order.order_no,
            customer=case.customer.name,
            photos=photos,
            cases=s.scalar(select(func.count(Ticket.id))) or 0,
            mine=mine or 0,
        )
    engine.dispose()
    return shop


@pytest.fixture
def shop(fresh_db_url: str, tmp_path: Path) -> Iterator[Shop]:
    """The panel served by uvicorn in its own process, on a seeded database."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium", pytrace=False)
    media = tmp_path / "media"
    media.mkdir()
    seeded = _seed(fresh_db_url, media)
    port = _free_port()
    env = {
        **os.environ,
        "AFTERSALES_DATABASE_URL": fresh_db_url,
        "AFTERSALES_MEDIA_DIR": str(media),
        "PYTHONWARNINGS": "default",
    }
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.browser.serve:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Importing the app takes seconds; on a machine shared by several test runs, over 30.
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "the server did not start:\n" + (tmp_path / "server.log").read_text(),
                    pytrace=False,
                )
            time.sleep(0.2)
        seeded.base_url = base
        yield seeded
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
