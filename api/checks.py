"""`aftersales check`: settings, database and Telegram, each with a clear verdict; and
`check --production`: what is unsafe on a real shop's server, each refused in one line."""

from __future__ import annotations

from typing import TextIO

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tickets.db import make_engine, make_sessionmaker, schema_is_current
from tickets.exceptions import InvalidInput
from tickets.policy.rules import load_policy
from tickets.settings import DEV_SECRET, Settings

# deploy/aftersales.env.example's stand-in for every value an operator must choose.
PLACEHOLDER = "CHANGE-ME"
# The wildcard addresses: a listener bound to one answers on every interface.
EVERY_INTERFACE = frozenset(("0.0.0.0", "::"))  # noqa: S104 (named to refuse them)
# A key that signs sessions and cookies: 32 random characters are far beyond guessing;
# anything shorter was typed by hand. MAKE_ONE: the command that makes one.
MIN_SECRET_KEY_LENGTH = 32
MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


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


def production_refusals(settings: Settings, *, workers: int = 1) -> list[str]:
    """What makes this installation unsafe for a real shop, one sentence each (README,
    "Running in production"); empty when nothing is. `workers`: the processes it will run
    as (`serve --workers N`, or N peers on one database)."""
    refusals = []
    if settings.secret_key == DEV_SECRET:
        refusals.append(
            "AFTERSALES_SECRET_KEY is the development default, published in the source: set a "
            f"long random one ({MAKE_ONE})"
        )
    elif PLACEHOLDER in settings.secret_key.upper():
        refusals.append(
            f"AFTERSALES_SECRET_KEY is still the example's {PLACEHOLDER}: set a long random one "
            f"({MAKE_ONE})"
        )
    elif len(settings.secret_key) < MIN_SECRET_KEY_LENGTH:
        refusals.append(
            f"AFTERSALES_SECRET_KEY has {len(settings.secret_key)} characters: a guessable key "
            f"forges agents' sessions; use at least {MIN_SECRET_KEY_LENGTH} random ones "
            f"({MAKE_ONE})"
        )
    if settings.is_sqlite and workers > 1:
        refusals.append(
            f"SQLite cannot be shared by {workers} processes: use PostgreSQL "
            "(AFTERSALES_DATABASE_URL=postgresql+psycopg://...) or serve one process"
        )
    if not settings.public_url.startswith("https://") and not settings.behind_tls_proxy:
        refusals.append(
            f"AFTERSALES_PUBLIC_URL {settings.public_url} is not HTTPS: serve the desk over TLS "
            "(a reverse proxy, deploy/) and give its https:// address, or set "
            "AFTERSALES_BEHIND_TLS_PROXY=true if a proxy in front already terminates TLS"
        )
    if settings.webhook_url and not settings.webhook_secret:
        refusals.append(
            "AFTERSALES_WEBHOOK_URL is set without AFTERSALES_WEBHOOK_SECRET: anyone could post "
            "updates as Telegram; set a long random secret"
        )
    elif settings.webhook_url and PLACEHOLDER in (settings.webhook_secret or "").upper():
        refusals.append(
            f"AFTERSALES_WEBHOOK_SECRET is still the example's {PLACEHOLDER}: anyone who reads "
            f"the example could post updates as Telegram; set a long random one ({MAKE_ONE})"
        )
    listen = settings.metrics_listen
    if listen is not None and listen[0] in EVERY_INTERFACE:
        refusals.append(
            f"AFTERSALES_METRICS_ADDRESS {settings.metrics_address} listens on every interface, "
            "with no token asked: anyone who reaches the host reads the desk's counts; bind "
            "it to loopback (127.0.0.1:9464) or an internal address"
        )
    demo = _demo_agents_with_demo_passwords(settings.database_url)
    if demo:
        refusals.append(
            f"demo agents still log in with their published passwords ({', '.join(demo)}): "
            "deactivate them or change their passwords (the demo shop is for a trial database)"
        )
    return refusals


def _demo_agents_with_demo_passwords(database_url: str) -> list[str]:
    """The demo shop's agents (tickets/demo.py) that are active and still accept the demo's
    published password, by username; empty when the database cannot be read (the ordinary
    checks say why)."""
    from sqlalchemy import select

    from tickets.auth import password_matches
    from tickets.demo import AGENTS
    from tickets.models import Agent

    published = {a.username: a.password for a in AGENTS}
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(Agent.username, Agent.password_hash)
                .where(Agent.username.in_(published), Agent.active.is_(True))
                .order_by(Agent.username)
            ).all()
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()
    return [name for name, hashed in rows if password_matches(hashed, published[name])]
