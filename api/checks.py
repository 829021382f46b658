"""`aftersales check`: settings, database and Telegram, each with a clear verdict."""

from __future__ import annotations

from typing import TextIO

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tickets.db import make_engine, schema_is_current
from tickets.exceptions import InvalidInput
from tickets.policy.rules import load_policy
from tickets.settings import DEV_SECRET, Settings


def run_checks(settings: Settings, *, out: TextIO) -> bool:
    """Print one line per check (ok / warn / FAIL); True when nothing failed."""
    ok = True

    def say(verdict: str, what: str) -> None:
        out.write(f"{verdict:5} {what}\n")

    say("ok", f"settings read (timezone {settings.timezone})")
    if settings.secret_key == DEV_SECRET:
        say("warn", "AFTERSALES_SECRET_KEY is the development default: set a long random one")
    try:
        load_policy(settings.policy_file)
        say("ok", f"policy {settings.policy_file or '(defaults)'}")
    except InvalidInput as exc:
        ok = False
        say("FAIL", exc.message)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        say("ok", f"database reachable ({engine.url.get_backend_name()})")
        if schema_is_current(engine):
            say("ok", "database schema up to date")
        else:
            ok = False
            say("FAIL", "database schema is behind: run `aftersales migrate`")
    except SQLAlchemyError as exc:
        ok = False
        say("FAIL", f"database unreachable: {exc.__class__.__name__}: {exc}".splitlines()[0])
    finally:
        engine.dispose()
    if not settings.telegram_token:
        say("ok", "Telegram bot off (no AFTERSALES_TELEGRAM_TOKEN)")
    else:
        base = (settings.telegram_api_url or "https://api.telegram.org").rstrip("/")
        try:
            resp = httpx.get(f"{base}/bot{settings.telegram_token}/getMe", timeout=10)
            if resp.status_code == 200 and resp.json().get("ok"):
                name = resp.json()["result"].get("username")
                say("ok", f"Telegram reachable, bot @{name}")
            else:
                ok = False
                say("FAIL", f"Telegram refused the token (HTTP {resp.status_code})")
        except httpx.HTTPError as exc:
            ok = False
            say("FAIL", f"Telegram unreachable at {base}: {exc.__class__.__name__}")
    return ok
