"""Browser-test fixtures: a real uvicorn server on a free localhost port over a migrated SQLite
file, seeded through the core's own services, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import order_json
from tickets.auth import create_agent
from tickets.config import Policy
from tickets.db import make_engine, make_sessionmaker
from tickets.models import Agent, Attachment, Role, Ticket, utcnow
from tickets.orders import upsert_order
from tickets.schemas import ActionRequest, OrderIn, TicketCreate
from tickets.scripts import bundled_scripts_dir, load_library
from tickets.service import (
    SYSTEM,
    Actor,
    Context,
    add_customer_message,
    open_case,
    perform_action,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-test-password"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@dataclass
class Shop:
    base_url: str
    case: str  # the case the test works
    order_no: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _photo() -> bytes:
    """A small real PNG (a torn seam, in spirit) so the thumbnail has pixels to show."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (236, 228, 214))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 60, 280, 180), fill=(58, 92, 140))
    draw.line((60, 120, 260, 130), fill=(250, 250, 250), width=6)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _seed(url: str, media: Path) -> Shop:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    ctx = Context(
        policy=Policy(),
        now=now - timedelta(hours=3),
        tz=ZoneInfo("Asia/Shanghai"),
        scripts=load_library(bundled_scripts_dir()),
    )
    day = timedelta(days=1)
    customers = [
        ("李雷", "13800138000"),
        ("韩梅梅", "13900139000"),
        ("Emma Stone", "+447700900123"),
        ("王小明", "13700137000"),
        ("赵敏", "13600136000"),
        ("Lucas Martin", "+33612345678"),
        ("陈晓", "13500135000"),
    ]
    kinds = [
        ("return_refund", "size_fit", (("SOCKS", 2),)),
        ("exchange", "size_fit", (("JACKET-M", 1),)),
        ("refund_only", "missing_item", (("TEA", 1),)),
        ("complaint", "service", ()),
        ("return_refund", "no_reason", (("JACKET-M", 1),)),
        ("delivery", "late_delivery", ()),
        ("return_refund", "changed_mind", (("TEA", 2),)),
    ]
    with sessions() as s:
        for name, role, group, lang in (
            ("xiaomei", Role.agent, "service", "en"),
            ("finance.li", Role.agent, "finance", "zh-CN"),
            ("lena", Role.lead, "service", "zh-CN"),
        ):
            agent = create_agent(
                session=s,
                username=name,
                role=role,
                group=group,
                password=PASSWORD,
                display_name={"xiaomei": "小美 Xiaomei", "finance.li": "李会计", "lena": "陈琳"}[
                    name
                ],
                now=now,
            )
            agent.language = lang
        numbers = []
        for i, ((cname, phone), (kind, reason, items)) in enumerate(
            zip(customers, kinds, strict=True)
        ):
            order_no = f"TB2026{1100 + i}"
            data = order_json(
                order_no,
                placed_at=(now - 6 * day).isoformat(),
                paid_at=(now - 6 * day).isoformat(),
                shipped_at=(now - 5 * day).isoformat(),
                delivered_at=(now - 2 * day).isoformat(),
                customer={"name": cname, "phone": phone, "telegram_user_id": 7000 + i},
            )
            upsert_order(session=s, data=OrderIn.model_validate(data), now=ctx.now)
            step = replace(ctx, now=ctx.now + timedelta(minutes=7 * i))
            ticket = open_case(
                session=s,
                request=TicketCreate.model_validate(
                    {
                        "order_no": order_no,
                        "kind": kind,
                        "reason": reason,
                        "items": [{"sku": sku, "quantity": q} for sku, q in items],
                        "channel": "telegram" if i % 3 else "phone",
                        "description": "袜子太小了，想退货。" if i == 0 else "",
                        "priority": "high" if i == 4 else "normal",
                    }
                ),
                actor=SYSTEM,
                ctx=step,
            )
            numbers.append(ticket.number)
        s.flush()
        # Something for the dashboard to show: the last case returned and refunded, and two
        # finished cases rated. The case the browser works (the first) is left as it is.
        lena = s.scalar(select(Agent).where(Agent.username == "lena"))
        done = replace(ctx, now=ctx.now + timedelta(hours=2))
        for action in (
            "approve",
            "mark_received",
            "inspect",
            "propose_refund",
            "approve_refund",
            "issue_refund",
        ):
            perform_action(
                session=s,
                number=numbers[6],
                request=ActionRequest(action=action),
                actor=Actor("agent", lena),
                ctx=done,
            )
        perform_action(
            session=s,
            number=numbers[3],
            request=ActionRequest(action="resolve", reason="apologised, coupon sent"),
            actor=Actor("agent", lena),
            ctx=done,
        )
        for number, score in ((numbers[6], 5), (numbers[3], 4)):
            rated = s.scalar(select(Ticket).where(Ticket.number == number))
            assert rated is not None
            rated.satisfaction = score
        s.flush()
        first = s.scalar(select(Ticket).where(Ticket.number == numbers[0]))
        assert first is not None
        photo = _photo()
        key = f"{first.number}/seam.png"
        (media / first.number).mkdir(parents=True, exist_ok=True)
        (media / key).write_bytes(photo)
        attachment = Attachment(
            ticket=first,
            kind="photo",
            mime="image/png",
            size=len(photo),
            sha256=hashlib.sha256(photo).hexdigest(),
            storage_key=key,
            original_name="seam.png",
        )
        s.add(attachment)
        add_customer_message(
            session=s,
            ticket=first,
            text="这是照片，袜子是全新的，只是尺码小了。",
            ctx=replace(ctx, now=ctx.now + timedelta(hours=1)),
            attachments=[attachment],
        )
        s.commit()
    engine.dispose()
    return Shop(base_url="", case=numbers[0], order_no="TB20261100")


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
        deadline = time.monotonic() + 30
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
