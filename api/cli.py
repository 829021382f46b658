"""The `aftersales` command: serve, migrate, demo, import-orders, create-agent, create-token,
sla-sweep, scripts check, check, backup, restore. Each subcommand is one unit of work with a
clear verdict.
Over 500 lines as one file: the installed command's one entry point, its parser and a short
handler per subcommand, each importing its work when run.
"""

from __future__ import annotations

import argparse
import gc
import getpass
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from tickets import __version__
from tickets.auth import SCOPES
from tickets.db import (
    guard_event_loop,
    make_engine,
    make_sessionmaker,
    schema_is_current,
    unit_of_work,
    upgrade,
)
from tickets.exceptions import DomainError, InvalidInput
from tickets.models import Role, utcnow
from tickets.settings import PREFIX, Settings, get_settings, unknown_names


def settings_or_exit(*, warn: bool = True) -> Settings:
    """The settings from the environment, or the exit with each refused one named on a line of
    its own (no traceback). `warn`: also say, on stderr, which AFTERSALES_ names are no setting
    (a misspelt one is otherwise ignored without a word)."""
    if warn:
        for warning in unknown_names(os.environ):
            print(f"warning: {warning}", file=sys.stderr)
    try:
        return get_settings()
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            name = PREFIX + "_".join(str(p) for p in e["loc"]).upper()
            # pydantic puts "Value error, " before what a validator says: noise to a user.
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"error: {name}: {msg}")
        raise SystemExit("\n".join(lines)) from None


def _fail(exc: DomainError) -> int:
    print(f"error: {exc.message}", file=sys.stderr)
    for err in getattr(exc, "errors", []) or []:
        print(f"  {err['loc']}: {err['msg']}", file=sys.stderr)
    return 2


def cmd_migrate(args: argparse.Namespace) -> int:
    return migrate(settings_or_exit(), check=args.check)


def migrate(settings: Settings, *, check: bool) -> int:
    """Bring the schema up to date (`check`: only say whether it is, exit 3 when behind)."""
    if check:
        engine = make_engine(settings.database_url)
        try:
            current = schema_is_current(engine)
        finally:
            engine.dispose()
        if not current:
            print("the database schema is behind: run `aftersales migrate`", file=sys.stderr)
            return 3
        print(f"database schema is up to date: {_safe_url(settings.database_url)}")
        return 0
    upgrade(settings.database_url)
    print(f"database is up to date: {_safe_url(settings.database_url)}")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve_banner(
    settings: Settings, *, base: str, workers: int, scheduler: bool, bot_apart: bool = False
) -> list[str]:
    """What `serve` prints before it serves: where each part is, and what is off and why
    (`bot_apart`: the bot polls in a process of its own, api/bot_process.py)."""
    if not settings.telegram_token:
        bot_state = "off (set AFTERSALES_TELEGRAM_TOKEN to turn it on)"
    elif settings.webhook_url:
        bot_state = f"on, webhook {settings.webhook_url}"
    else:
        bot_state = "on, polling" + (" (in a process of its own)" if bot_apart else "")
    # The demo is for a trial desk (`make run`: SQLite); on a shop's PostgreSQL the hint would
    # invite loading published passwords into it.
    demo_hint = "   (demo log-ins: `aftersales demo` prints them)" if settings.is_sqlite else ""
    banner = [
        f"aftersales serving on {base}",
        f"  agents' panel: {base}/panel{demo_hint}",
        f"  JSON API docs: {base}/api/v1/docs",
        "  web chat:      "
        + (
            f"{base}/chat   (customers; an order's link: aftersales chat-link)"
            if settings.web_chat
            else "off (AFTERSALES_WEB_CHAT=false)"
        ),
        f"  health:        {base}/healthz",
        "  metrics:       "
        + (f"{base}/metrics" if settings.metrics_token else "off (AFTERSALES_METRICS_TOKEN)")
        + (
            f"; internal, no token: http://{settings.metrics_address}/metrics"
            if settings.metrics_address
            else ""
        ),
        "  SLA sweep:     " + ("on" if scheduler else "off (--no-scheduler)"),
        "  Telegram bot:  " + bot_state,
    ]
    if workers > 1:
        role = ""
        if settings.telegram_token:
            role = (
                " (each takes the webhook)"
                if settings.webhook_url
                else " (the bot polls in one of them at a time)"
            )
        banner.append(f"  processes:     {workers}{role}")
    return banner


def cmd_serve(args: argparse.Namespace) -> int:
    from api import processes

    settings = settings_or_exit()
    serve_lock = None
    reserved = metrics_reserved = None
    try:
        processes.check_workers(settings.database_url, args.workers)
        # Held until the process ends: a second `serve` on one SQLite file is refused.
        serve_lock = processes.hold_sqlite_lock(settings.database_url)
        # Checked before any work, and held until the process ends (uvicorn binds it too).
        reserved = processes.reserve_port(args.host, args.port)
        if settings.metrics_listen is not None:
            # The internal metrics listener's address, likewise (api/metrics.py binds it).
            metrics_reserved = processes.reserve_metrics_address(
                *settings.metrics_listen, serve_port=reserved.getsockname()[1]
            )
    except processes.Refused as exc:
        for held in (serve_lock, reserved):
            if held is not None:
                held.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if settings.webhook_url and not settings.webhook_secret:
            print(
                "AFTERSALES_WEBHOOK_URL needs AFTERSALES_WEBHOOK_SECRET (the token Telegram sends "
                "with every update)",
                file=sys.stderr,
            )
            return 2
        from api.bot_process import wanted

        # Before anything counts: where the processes count for /metrics (api/processes.py);
        # the bot's own process (api/bot_process.py) is one of them.
        with processes.shared_metrics(args.workers + wanted(settings, args.workers)):
            # The real port, when --port 0 asked for any free one.
            return _serve(args, settings, port=reserved.getsockname()[1], reserved=reserved)
    finally:
        reserved.close()
        if metrics_reserved is not None:
            metrics_reserved.close()
        if serve_lock is not None:
            serve_lock.close()


def _serve(args: argparse.Namespace, settings: Settings, *, port: int, reserved: Any = None) -> int:
    """`serve` once its settings are checked and its port and database are its own: the
    preflight child, the app, the bot's own process when it has one, uvicorn. `reserved`
    holds the port (closed in the bot's process)."""
    from api import processes
    from api.bot_process import wanted

    base = browser_url(args.host, port)
    public_url_given = "public_url" in settings.model_fields_set
    if not public_url_given:
        # Links sent to agents point where this serve listens, unless the shop says otherwise.
        settings = settings.model_copy(update={"public_url": base})
    # The schema and the reply scripts are checked in a child process (api/preflight.py), so
    # Alembic and what the checks allocate never stay in the server. It runs while this
    # process imports and builds the app (seconds: the two use two cores at once); nothing
    # touches the database before it has ended well.
    preflight = subprocess.Popen([sys.executable, "-m", "api.preflight"])
    bot_process = None
    try:
        with processes.startup_heap():
            app = None if args.workers > 1 else _single_process_app(settings, args)
            if app is not None and wanted(settings, args.workers):
                # Built here, before the heap is frozen: shared with the bot's process.
                bot_process = _bot_process(app)
    except BaseException:
        preflight.terminate()
        preflight.wait()
        raise
    if preflight.wait():
        return 2
    banner = serve_banner(
        settings,
        base=base,
        workers=args.workers,
        scheduler=not args.no_scheduler,
        bot_apart=bot_process is not None,
    )
    processes.exit_cleanly_on_sigterm()
    processes.configure_logging(args.log_level, settings.log_format)
    if settings.log_format == "json":
        # Every line of the output is JSON then, the banner's too.
        for line in banner:
            logging.getLogger("aftersales.serve").info(line.strip())
    else:
        print("\n".join(banner))
        sys.stdout.flush()
    log_config = processes.uvicorn_log_config(settings.log_format)
    # In this process, once: with --workers N the supervisor, which adds up every worker's
    # counts (api/metrics.py). Reserved by `cmd_serve`: binding it beside the reservation.
    from api.metrics import start_listener

    if bot_process is not None:
        return _run_with_bot_process(args, settings, app, port, log_config, bot_process, reserved)
    try:
        listener = start_listener(settings)
    except OSError as exc:
        print(f"error: AFTERSALES_METRICS_ADDRESS: cannot listen there: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_uvicorn(args, app, port, log_config, public_url_given)
    finally:
        if listener is not None:
            listener.stop()


def _run_uvicorn(
    args: argparse.Namespace,
    app: Any,
    port: int,
    log_config: Any,
    public_url_given: bool,
) -> int:
    import uvicorn

    from api import processes

    base = browser_url(args.host, port)
    if app is None:
        # Each worker process builds its own app (and engine) from the environment, and
        # counts for /metrics in files all of them read (api/processes.py).
        os.environ[processes.NO_SCHEDULER_ENV] = "1" if args.no_scheduler else ""
        os.environ[processes.LOG_LEVEL_ENV] = args.log_level
        if not public_url_given:
            os.environ[f"{PREFIX}PUBLIC_URL"] = base
        uvicorn.run(
            "api.cli:app_from_environment",
            factory=True,
            workers=args.workers,
            timeout_worker_healthcheck=processes.WORKER_HEALTHCHECK_SECONDS,
            **_uvicorn_options(args, port, log_config),
        )
        return 0
    uvicorn.run(app, **_uvicorn_options(args, port, log_config))
    return 0


def _uvicorn_options(args: argparse.Namespace, port: int, log_config: Any) -> dict[str, Any]:
    """What every way of running uvicorn here shares: the address, the logs, the stop's drain."""
    from api import processes

    return {
        "host": args.host,
        "port": port,
        "log_level": args.log_level,
        "log_config": log_config,
        "timeout_graceful_shutdown": processes.HTTP_DRAIN_SECONDS,
    }


def _run_with_bot_process(
    args: argparse.Namespace,
    settings: Settings,
    app: Any,
    port: int,
    log_config: Any,
    bot_process: Any,
    reserved: Any,
) -> int:
    """uvicorn in this process, the bot in a process of its own forked from it
    (api/bot_process.py)."""
    import uvicorn

    from api.metrics import start_listener

    # uvicorn's set-up (its logging, the protocol and loop modules it imports) before the fork:
    # made after it, the server's writes would copy pages the bot's process shares.
    config = uvicorn.Config(app, **_uvicorn_options(args, port, log_config))
    config.load()
    gc.collect()
    gc.freeze()
    # Forked before this process starts any thread (the metrics listener's, uvicorn's): a fork
    # copies only the calling thread. The child never comes back here.
    bot_process.start(close=[reserved] if reserved is not None else [])
    failed = threading.Event()

    def bot_ended(code: int) -> None:
        # The bot's process crashed: stop the server cleanly too, and say so in the exit code.
        failed.set()
        os.kill(os.getpid(), signal.SIGTERM)

    bot_process.watch(bot_ended)
    server = uvicorn.Server(config)
    listener = None
    try:
        try:
            listener = start_listener(settings)
        except OSError as exc:
            print(f"error: AFTERSALES_METRICS_ADDRESS: cannot listen there: {exc}", file=sys.stderr)
            return 2
        server.run()
    except SystemExit:
        pass  # uvicorn's stop on SIGTERM (processes.exit_cleanly_on_sigterm)
    finally:
        if listener is not None:
            listener.stop()
        bot_process.stop()
    if failed.is_set():
        return 1
    # As uvicorn.run says a start that failed (its lifespan refused, say).
    return 0 if server.started else 3


def browser_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches a server listening on host:port (a wildcard
    address listens on every interface, and is no address to open)."""
    if host in ("0.0.0.0", ""):  # noqa: S104 (a name for "every interface", not a bind)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _single_process_app(settings: Settings, args: argparse.Namespace) -> Any:
    """The app of a one-process serve, its scripts checked by the preflight child."""
    from api.app import create_app
    from api.bot_process import wanted

    engine = make_engine(settings.database_url)
    guard_event_loop(engine)  # no database call on the event loop (tickets/db.py)
    scheduler = not args.no_scheduler
    return create_app(
        settings,
        engine=engine,
        scheduler=scheduler,
        scripts_checked=True,
        bot_elsewhere=wanted(settings, args.workers),
    )


def _bot_process(app: Any) -> Any:
    """The bot's own process (api/bot_process.py), not started, with the app's rules."""
    from api.bot_process import BotProcess
    from bot.runtime import BotRuntime

    state = app.state
    runtime = BotRuntime(
        settings=state.settings,
        sessions=state.sessions,
        scripts=state.scripts,
        policy=state.policy,
        clock=state.clock,
    )
    return BotProcess(runtime, state.engine)


def app_from_environment() -> Any:
    """The app of one `serve --workers N` process (uvicorn calls this in each)."""
    from api.processes import LOG_LEVEL_ENV, NO_SCHEDULER_ENV, configure_logging, startup_heap

    # A spawned process: nothing of the parent's set-up but the environment.
    settings = settings_or_exit(warn=False)  # serve said it once, before the workers started
    configure_logging(os.environ.get(LOG_LEVEL_ENV) or "info", settings.log_format)
    with startup_heap():
        from api.app import create_app

        # `serve` ran the preflight child (api/preflight.py) before starting the workers.
        return create_app(
            settings,
            scheduler=not os.environ.get(NO_SCHEDULER_ENV),
            scripts_checked=True,
        )


def port_number(text: str) -> int:
    """A TCP port for --port: 0 (any free one) to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1-65535 (0: any free one)")
    return port


def cmd_create_agent(args: argparse.Namespace) -> int:
    from tickets.auth import create_agent

    settings = settings_or_exit()
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password (empty: API token only): ") or None
    sessions = make_sessionmaker(make_engine(settings.database_url))
    try:
        with unit_of_work(sessions) as session:
            agent = create_agent(
                session=session,
                username=args.username,
                role=Role(args.role),
                password=password,
                group=args.group,
                telegram_user_id=args.telegram_user_id,
                now=utcnow(),
            )
            print(
                f"agent {agent.username} created ({agent.role}"
                + (f", group {agent.group}" if agent.group else "")
                + ")"
            )
            if password is None:
                # No terminal to ask on (a script, a pipe) and no --password-stdin, or an
                # empty one: said, so nobody finds out at the log-in page.
                print(
                    "  no password: it cannot log in to the panel, only use API tokens "
                    "(create-token); an admin sets one on the panel (Admin)"
                )
    except DomainError as exc:
        return _fail(exc)
    return 0


def cmd_create_token(args: argparse.Namespace) -> int:
    from tickets.auth import create_token

    settings = settings_or_exit()
    sessions = make_sessionmaker(make_engine(settings.database_url))
    try:
        with unit_of_work(sessions) as session:
            token = create_token(
                session=session,
                username=args.username,
                now=utcnow(),
                name=args.name or "",
                scopes=args.scope,
            )
    except DomainError as exc:
        return _fail(exc)
    print(f"token for {args.username} (shown once; send it as 'Authorization: Bearer ...'):")
    print(token)
    return 0


def cmd_import_orders(args: argparse.Namespace) -> int:
    from tickets.orders.importer import import_orders

    settings = settings_or_exit()
    sessions = make_sessionmaker(make_engine(settings.database_url))
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no file {path}", file=sys.stderr)
        return 2
    try:
        with sessions() as session:
            report = import_orders(
                session=session,
                path=path,
                now=utcnow(),
                dry_run=args.dry_run,
                max_rows=settings.import_max_rows,
                limits=settings.limits,
            )
            if args.dry_run:
                session.rollback()
            else:
                session.commit()
    except DomainError as exc:
        print("nothing was imported.", file=sys.stderr)
        return _fail(exc)
    print(f"{path.name}: {report.summary()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from api.demo_pictures import demo_photo
    from tickets.demo import load_demo

    settings = settings_or_exit()
    if "public_url" not in settings.model_fields_set:
        # The log-ins are printed with the panel's address: the one `serve` will listen on.
        settings = settings.model_copy(update={"public_url": browser_url(args.host, args.port)})
    engine = make_engine(settings.database_url)
    if settings.is_sqlite:
        upgrade(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with unit_of_work(sessions) as session:
            summary = load_demo(
                session=session, settings=settings, now=utcnow(), draw_photo=demo_photo
            )
    except DomainError as exc:
        print("the demo shop was not loaded.", file=sys.stderr)
        return _fail(exc)
    print(summary)
    return 0


def cmd_scripts_check(args: argparse.Namespace) -> int:
    from tickets.messages.scripts import LibraryRefused, bundled_scripts_dir, load_library

    settings = settings_or_exit()
    try:
        from tickets.policy.rules import load_policy

        limits = load_policy(settings.policy_file).script_limits()
        lib = load_library(bundled_scripts_dir(), settings.scripts_dir, limits=limits, verify=False)
    except LibraryRefused as exc:
        problems = exc.problems
    else:
        problems = lib.check()
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"{len(problems)} problem(s): fix them before the scripts can be used", file=sys.stderr
        )
        return 1
    count = len(lib.list())
    print(f"ok: {count} scripts ({len(lib.names())} names x 2 languages) all render and check")
    return 0


def cmd_sla_sweep(args: argparse.Namespace) -> int:
    from datetime import datetime

    from api.deps import context_for
    from bot.render import PARTS
    from tickets.messages.outbox import delivered_channels
    from tickets.messages.scripts import bundled_scripts_dir, load_library
    from tickets.policy.rules import load_policy
    from tickets.sla.sweep import run_sweep

    settings = settings_or_exit()
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            now = None
        if now is None or now.tzinfo is None:
            print(
                "error: --now takes an ISO time with an offset, like 2026-11-25T10:00:00+08:00",
                file=sys.stderr,
            )
            return 2
    else:
        now = utcnow()
    policy = load_policy(settings.policy_file)
    state = argparse.Namespace(
        policy=policy,
        settings=settings,
        # Reminders are queued for the bot only when this shop runs one (the same settings).
        channels=delivered_channels(settings),
        parts=PARTS,
        scripts=load_library(
            bundled_scripts_dir(), settings.scripts_dir, limits=policy.script_limits()
        ),
    )
    sessions = make_sessionmaker(make_engine(settings.database_url))
    report = run_sweep(sessions=sessions, ctx=context_for(state, now))
    print(f"SLA sweep as of {now.isoformat()}: {report}")
    return 1 if report.failed else 0


def cmd_chat_link(args: argparse.Namespace) -> int:
    from tickets.chat_links import link_for_order

    settings = settings_or_exit()
    if not settings.web_chat:
        print("the web chat is off (AFTERSALES_WEB_CHAT=false): no link opens it", file=sys.stderr)
        return 2
    sessions = make_sessionmaker(make_engine(settings.database_url))
    try:
        with unit_of_work(sessions) as session:
            link = link_for_order(
                session,
                secret=settings.secret_key,
                public_url=settings.public_url,
                order_no=args.order_no,
                now=utcnow(),
                hours=settings.web_chat_link_hours,
            )
    except DomainError as exc:
        return _fail(exc)
    print(f"web chat for order {link.order_no}, until {link.expires_at.isoformat()}:")
    print(link.url)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from api.checks import production_refusals, run_checks

    settings = settings_or_exit()
    ok = run_checks(settings, out=sys.stdout)
    if args.production:
        refusals = production_refusals(settings, workers=args.workers)
        for refusal in refusals:
            print(f"FAIL  production: {refusal}")
        if not refusals:
            print("ok    production: nothing unsafe found")
        ok = ok and not refusals
    return 0 if ok else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from tickets.backup import BackupRefused, backup

    settings = settings_or_exit()
    target = Path(args.file)
    try:
        manifest = backup(
            database_url=settings.database_url,
            media_dir=settings.media_dir,
            target=target,
            now=utcnow(),
        )
    except BackupRefused as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(
        f"backup written to {target}: {manifest.backend} database at schema "
        f"{manifest.schema_revision}, {manifest.media_files} media files"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from api import processes
    from tickets.backup import BackupRefused, restore

    settings = settings_or_exit()
    try:
        # A SQLite database is replaced only while no serve runs on it (serve's own lock).
        serve_lock = processes.hold_sqlite_lock(settings.database_url)
    except processes.Refused as exc:
        print(f"error: stop serve first: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = restore(
            database_url=settings.database_url,
            media_dir=settings.media_dir,
            archive=Path(args.file),
            force=args.force,
        )
    except BackupRefused as exc:
        print(f"error: nothing was restored: {exc.message}", file=sys.stderr)
        return 2
    finally:
        del serve_lock
    print(
        f"restored {args.file} (taken {manifest.created_at}) into "
        f"{_safe_url(settings.database_url)}: schema {manifest.schema_revision}, "
        f"{manifest.media_files} media files into {settings.media_dir}"
    )
    engine = make_engine(settings.database_url)
    try:
        current = schema_is_current(engine)
    finally:
        engine.dispose()
    if not current:
        print("the backup is from an older release: run `aftersales migrate` before serving")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aftersales", description="After-sales desk: bot, panel, API, SLA sweep."
    )
    parser.add_argument("--version", action="version", version=f"aftersales {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run everything in one process")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8000)
    p.add_argument("--no-scheduler", action="store_true", help="do not run the SLA sweep")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes to serve with (PostgreSQL only; the bot polls in one of them)",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.add_argument(
        "--check",
        action="store_true",
        help="only say whether the schema is up to date (exit 3 when it is behind)",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="load the demo shop (idempotent)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="where `serve` will listen, for the panel's address printed with the log-ins",
    )
    p.add_argument("--port", type=port_number, default=8000, help="the port `serve` will listen on")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("create-agent", help="add an agent who can log in or hold API tokens")
    p.add_argument("username")
    p.add_argument("--role", choices=[r.value for r in Role], default="agent")
    p.add_argument("--group")
    p.add_argument(
        "--telegram-user-id",
        type=int,
        help="the agent's Telegram user id, so the agents' chat knows who presses a button",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    p.set_defaults(func=cmd_create_agent)

    p = sub.add_parser("create-token", help="make an API bearer token for an agent")
    p.add_argument("username")
    p.add_argument("--name", help="what the token is for")
    p.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        help="what the token may do (repeat for several): cases (the default: work cases), "
        "orders (push orders, for the shop's integration) or webhooks (manage the shop's "
        "webhook subscriptions)",
    )
    p.set_defaults(func=cmd_create_token)

    p = sub.add_parser("import-orders", help="import orders from a .csv or .xlsx file")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="check the file, write nothing")
    p.set_defaults(func=cmd_import_orders)

    p = sub.add_parser("sla-sweep", help="run one SLA sweep now (or as of --now)")
    p.add_argument("--now", help="ISO time with offset: sweep as if it were then")
    p.set_defaults(func=cmd_sla_sweep)

    p = sub.add_parser("scripts", help="the reply-script library")
    scripts_sub = p.add_subparsers(dest="scripts_command", required=True)
    q = scripts_sub.add_parser("check", help="render and check every script in every language")
    q.set_defaults(func=cmd_scripts_check)

    p = sub.add_parser(
        "chat-link", help="a signed link opening the web chat already proved for an order"
    )
    p.add_argument("order_no")
    p.set_defaults(func=cmd_chat_link)

    p = sub.add_parser("check", help="check settings, database and Telegram")
    p.add_argument(
        "--production",
        action="store_true",
        help="also refuse what is unsafe on a real shop's server (README: Running in production)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with --production: the processes the desk will run as (serve --workers N, peers)",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "backup", help="the database and the media files in one archive (safe while serve runs)"
    )
    p.add_argument("file", help="the archive to write (a tar file)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a backup's database and media files in place")
    p.add_argument("file", help="an archive `aftersales backup` wrote")
    p.add_argument(
        "--force", action="store_true", help="replace a database that already holds data"
    )
    p.set_defaults(func=cmd_restore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except InvalidInput as exc:
        return _fail(exc)
    except OperationalError as exc:
        print(database_unusable(exc), file=sys.stderr)
        return 1
    return result


def database_unusable(exc: OperationalError) -> str:
    """One line for a database that does not answer or refuses the log-in (a server not
    started, a role or database not created yet): the driver's own words, no traceback."""
    reason = (str(exc.orig or exc).strip().splitlines() or ["no answer"])[0]
    return f"error: the database (AFTERSALES_DATABASE_URL) cannot be used: {reason}"


if __name__ == "__main__":
    raise SystemExit(main())
