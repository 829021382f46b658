"""The composition root: `create_app(settings)` builds the engine, the rules and the routes.

Nothing is built at import time; `aftersales serve` (api/cli.py) and the tests call this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api import errors
from api.deps import context_for, current_agent, require_scope
from api.guard import BodyGuard, GuardRules, RouteLimit, cookie, header
from api.inputs import RefuseNul
from api.metrics import PATH as METRICS_PATH
from api.metrics import install_metrics
from api.observe import Observe
from api.panel import install_panel
from api.priority import MarkForeground
from api.routes import agents as agents_routes
from api.routes import orders, tickets
from api.routes import scripts as scripts_routes
from api.routes import sla as sla_routes
from api.routes import team as team_routes
from api.routes import webhooks as webhooks_routes
from api.telegram_webhook import SECRET_HEADER, WEBHOOK_PATH, secret_matches, webhook_router
from api.watch import Watcher
from bot.render import PARTS as TELEGRAM_PARTS
from tickets import __version__
from tickets.auth import live_token
from tickets.db import guard_event_loop, make_engine, make_sessionmaker, read_sessionmaker
from tickets.messages.outbox import delivered_channels
from tickets.messages.scripts import bundled_scripts_dir, load_library
from tickets.models import utcnow
from tickets.policy.rules import load_policy
from tickets.settings import Settings
from tickets.sla.sweep import run_sweep
from tickets.telemetry import instruments, watch_pool

# Swagger UI, served from the package (api/static/vendor, with its licence), never from a CDN:
# a shop's offline or firewalled server shows its API docs all the same.
SWAGGER_UI = "/static/vendor/swagger-ui-5.36.0.css", "/static/vendor/swagger-ui-bundle-5.36.0.js"

API_PREFIX = "/api/v1"
# Routes whose bodies are files, as (path prefix, path suffix): they get
# AFTERSALES_MAX_UPLOAD_BYTES instead of AFTERSALES_MAX_BODY_BYTES. The web chat's uploads
# (api/chat/), an agent's reply with files from the panel and the API, and the phone-call form's
# new case with its files.
UPLOAD_ROUTES: tuple[tuple[str, str], ...] = (
    ("/chat/upload", ""),
    ("/panel/cases/", "/reply"),
    ("/panel/cases/new", ""),
    (f"{API_PREFIX}/tickets/", "/replies/files"),
)
# Routes whose forms the NUL filter leaves to the route (api/inputs.py): the web chat's upload
# checks its own text fields. The others' text fields are checked there, part by part.
UNSCANNED_FILE_ROUTES: tuple[str, ...] = ("/chat/upload",)
log = logging.getLogger(__name__)


def _sweep_job(app: FastAPI) -> Callable[[], Awaitable[None]]:
    async def sweep() -> None:
        ctx = context_for(app.state, app.state.clock())
        # The sweep is synchronous database work: off the event loop, one at a time (the
        # scheduler's max_instances=1: a sweep still running when the next is due is skipped).
        started = time.perf_counter()
        try:
            report = await asyncio.to_thread(run_sweep, sessions=app.state.sessions, ctx=ctx)
        finally:
            instruments().sweep_seconds.observe(time.perf_counter() - started)
        if report.clocks or report.failed or report.undeliverable:
            log.info("SLA sweep: %s", report)

    return sweep


def _hooks_worker(app: FastAPI) -> Any:
    """The webhook sender of this process (api/hooks_delivery.py)."""
    from api.hooks_delivery import HooksWorker
    from tickets.webhooks import HookRules

    return HooksWorker(
        sessions=app.state.sessions,
        read_sessions=app.state.read_sessions,
        rules=HookRules.of(app.state.settings),
        context=lambda now: context_for(app.state, now),
        clock=app.state.clock,
    )


def _authorize(app: FastAPI) -> Callable[[Any], tuple[int, str, dict[str, str]] | None]:
    """The check BodyGuard runs before a body is read (in a worker thread): a live token for
    the JSON API, a live session for the panel, Telegram's secret for the webhook. Read-only,
    in a reader's transaction: on SQLite a writer's would queue behind whoever holds the write
    lock, so an anonymous POST could tie up a worker thread for the busy timeout. The routes'
    own dependencies record a token's use and refresh sessions, apart (api/deps.py)."""
    from api.panel.auth import COOKIE, session_for

    webhook = app.state.bot is not None and bool(app.state.settings.webhook_url)
    secret, secret_header = app.state.settings.webhook_secret, SECRET_HEADER.lower().encode()

    def check(scope: Any) -> tuple[int, str, dict[str, str]] | None:
        path: str = scope["path"]
        state = app.state
        if path.startswith(API_PREFIX + "/"):
            scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return (
                    401,
                    "send 'Authorization: Bearer <token>' (make one with: aftersales "
                    "create-token USER)",
                    {"WWW-Authenticate": "Bearer"},
                )
            with state.read_sessions() as session:
                known = live_token(session=session, token=token.strip())
                session.rollback()
            if known is None:
                return 401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"}
            return None
        if path.startswith("/panel/") and path != "/panel/login":
            with state.read_sessions() as session:
                # An expired session is only marked for deletion here, never flushed: the
                # rollback drops the mark, and the panel's own guard deletes it apart.
                live = session_for(session, cookie(scope, COOKIE), utcnow())
                session.rollback()
            if live is None:
                return 401, "log in first", {"HX-Redirect": "/panel/login"}
            return None
        if (
            webhook
            and path == WEBHOOK_PATH
            and not secret_matches(header(scope, secret_header) or "", secret)
        ):
            return 403, "forbidden", {}
        return None

    return check


def create_app(
    settings: Settings,
    *,
    scheduler: bool = False,
    scripts_checked: bool = False,
    bot_elsewhere: bool = False,
    **overrides: Any,
) -> FastAPI:
    """The whole HTTP side of the product for these settings; with `scheduler`, the SLA
    sweep runs every `sla.sweep_seconds` in the same process (APScheduler). The reply scripts
    are checked here unless `scripts_checked` says a process of their own just did
    (`aftersales serve`'s preflight child, api/preflight.py). With `bot_elsewhere`, the bot
    runs in a process of its own (api/bot_process.py): none here, though Telegram is still a
    delivered channel."""
    owns_engine = overrides.get("engine") is None
    engine = overrides.pop("engine", None) or make_engine(settings.database_url)
    if owns_engine:
        # No database call on the event loop, by construction (tickets/db.py): a route or a
        # worker that forgets fails loudly instead of freezing the server.
        guard_event_loop(engine)
    # The pool's use, for /metrics (tickets/telemetry.py).
    watch_pool(engine)
    policy = load_policy(settings.policy_file)
    # A shop override that breaks a check stops the start here (or in serve's preflight
    # child), with the file and the reason.
    # Checked there, the scripts (and the limits, in money) are read here when first needed.
    scripts = overrides.pop("scripts", None) or load_library(
        bundled_scripts_dir(),
        settings.scripts_dir,
        limits=policy.script_limits,
        verify=not scripts_checked,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sched = None
        if scheduler:
            sched = AsyncIOScheduler(timezone=UTC)
            sched.add_job(
                _sweep_job(app),
                "interval",
                seconds=policy.sla.sweep_seconds,
                id="sla-sweep",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(30, policy.sla.sweep_seconds),
                next_run_time=datetime.now(UTC),
            )
            sched.start()
            # The webhooks to the shop's systems go where the background work runs.
            hooks_stop = asyncio.Event()
            hooks_task = asyncio.create_task(_hooks_worker(app).run(hooks_stop))
        runtime = app.state.bot
        if runtime is not None:
            # On a loop of its own: the bot's work never queues before a request's.
            await runtime.start(own_loop=True)
        try:
            yield
        finally:
            if sched is not None:
                hooks_stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(hooks_task, timeout=settings.hooks_timeout_seconds + 5)
            # The live pages' streams (the web chat's, the notifications') stop being woken.
            await app.state.watcher.stop()
            if runtime is not None:
                await runtime.stop()
            if sched is not None:
                sched.shutdown(wait=False)
            if owns_engine:
                engine.dispose()

    app = FastAPI(
        title="aftersales",
        version=__version__,
        summary="After-sales desk: orders, cases, refunds, SLA clocks.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        # Served below, with Swagger UI's files from the package (no ReDoc).
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    given_sessions = overrides.pop("sessions", None)
    app.state.sessions = given_sessions or make_sessionmaker(engine)
    # Reads (GET routes, pages, /healthz): on SQLite they never take nor wait for the write
    # lock. Tests that pass their own sessions get them for reads too.
    app.state.read_sessions = given_sessions or read_sessionmaker(engine)
    app.state.policy = policy
    app.state.scripts = scripts
    # The one watcher of the live pages' event streams (api/watch.py).
    app.state.watcher = Watcher(app.state.read_sessions, settings.watch_seconds)
    # The clock every request reads `now` from (tests fix it; nothing else reads the time).
    app.state.clock = overrides.pop("clock", None) or utcnow
    # The channels something delivers (tickets/messages/outbox.py): from the settings (the bot's
    # token), or given (a test standing in for a running bot).
    channels = overrides.pop("channels", None)
    app.state.channels = delivered_channels(settings) if channels is None else channels
    # How each channel cuts a reply into messages (tickets/messages/parts.py): Telegram's
    # caption limit is the bot's rule; the web chat takes the core's default.
    app.state.parts = TELEGRAM_PARTS
    # The Telegram bot when a token is set (bot/runtime.py): polling, or fed by the webhook
    # route (api/telegram_webhook.py).
    app.state.bot = None
    if settings.telegram_token and not bot_elsewhere:
        from bot.runtime import BotRuntime

        app.state.bot = BotRuntime(
            settings=settings,
            sessions=app.state.sessions,
            scripts=scripts,
            policy=policy,
            clock=app.state.clock,
        )
        if settings.webhook_url:
            app.include_router(
                webhook_router(app.state.bot.feed_webhook_update, secret=settings.webhook_secret)
            )
    errors.install(app)
    # The actions' per-action request schemas, added to the generated document once.
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            tickets.document_actions(generated())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    app.add_middleware(RefuseNul, file_routes=UNSCANNED_FILE_ROUTES)

    # Every JSON route needs an agent's bearer token: declared once, on the router.
    v1 = APIRouter(prefix=API_PREFIX, dependencies=[Depends(current_agent)])
    v1.include_router(orders.router)
    # Working cases (and what it needs: files, scripts, clocks) takes the "cases" scope; an
    # integration's orders-only token pushes and reads orders and nothing else.
    cases = [require_scope("cases")]
    v1.include_router(tickets.router, dependencies=cases)
    v1.include_router(tickets.files, dependencies=cases)
    v1.include_router(tickets.approvals, dependencies=cases)
    v1.include_router(scripts_routes.router, dependencies=cases)
    v1.include_router(sla_routes.router, dependencies=cases)
    # The shop's webhooks: admins, or a token with the "webhooks" scope (api/routes/webhooks.py).
    v1.include_router(webhooks_routes.router)
    v1.include_router(agents_routes.router, dependencies=cases)
    # Macros, the caller's saved views and notifications (the panel's team tools).
    v1.include_router(team_routes.router, dependencies=cases)
    app.include_router(v1)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        try:
            with app.state.read_sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "error", "database": f"unreachable: {type(exc).__name__}"},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """The JSON API's interactive documentation (Swagger UI over /api/v1/openapi.json)."""
        css, js = SWAGGER_UI
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title="aftersales API",
            swagger_css_url=css,
            swagger_js_url=js,
            swagger_favicon_url="/static/vendor/swagger-ui-favicon-32x32.png",
            # No badge fetched from Swagger's online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """The product's front door is the agents' panel."""
        return RedirectResponse("/panel", status_code=307)

    install_panel(app)
    install_metrics(app)
    if settings.web_chat:
        # The web chat (no Telegram token needed); off, its routes do not exist: 404.
        from api.chat import install_chat
        from bot.web_chat import build_web_conversation

        install_chat(
            app,
            build_web_conversation(
                app.state.sessions, settings, scripts, policy, clock=app.state.clock
            ),
        )
    # Outermost (but for Starlette's error handler): who sends a body is checked, and no more
    # than its route's limit is read, before FastAPI parses anything (api/guard.py).
    app.add_middleware(
        BodyGuard,
        rules=GuardRules(
            default=settings.max_body_bytes,
            routes=(
                # The log-in form is a few short fields.
                RouteLimit("/panel/login", 16 * 1024),
                RouteLimit(f"{API_PREFIX}/orders", settings.max_batch_bytes, exact=True),
                # Routes that take files (the web chat's uploads, agents' replies and new cases).
                *(
                    RouteLimit(prefix, settings.max_upload_bytes, suffix=suffix)
                    for prefix, suffix in UPLOAD_ROUTES
                ),
            ),
            authorize=_authorize(app),
        ),
    )
    # Outside it all: people's requests in flight are counted, and the bot's units of work give
    # way to them (tickets/foreground.py); the webhook's posts are the bot's own work.
    # A scrape is no person waiting either.
    app.add_middleware(MarkForeground, exclude=frozenset({WEBHOOK_PATH, METRICS_PATH}))
    # Outermost of all: every answer gets its request id and is counted, refusals included
    # (api/observe.py).
    app.add_middleware(Observe)
    return app
