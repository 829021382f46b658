"""Process settings, read from the environment or `.env` with the AFTERSALES_ prefix.

Nothing here is built at import time: the entry point calls `get_settings()` (or tests build a
`Settings(...)` of their own) and passes the object down.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tickets.limits import DEFAULTS, HARD, Limits

# A secret that must never reach production: refused unless the process is the demo/dev one.
DEV_SECRET = "dev-only-change-me"  # noqa: S105

PREFIX = "AFTERSALES_"
# The databases the product runs on, as AFTERSALES_DATABASE_URL names them (the drivers the
# lock file installs: the standard library's sqlite3, and psycopg 3).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
DATABASE_FORMS = (
    "sqlite:///path/to/file.db or postgresql+psycopg://user:password@host:5432/database"
)
ENCODE_HINT = (
    "; a password holding @ : / # ? or % goes percent-encoded "
    "(@ as %40, : as %3A, / as %2F, # as %23, ? as %3F, % as %25)"
)
# Names with the prefix that are not settings, and so are never reported as misspelt: the test
# suite's (AFTERSALES_TEST_*, AFTERSALES_LEDGER_EXAMPLES) and what `serve --workers N` hands
# to its worker processes (AFTERSALES_SERVE_*, api/processes.py).
NOT_SETTINGS_PREFIXES = (f"{PREFIX}TEST_", f"{PREFIX}SERVE_")
NOT_SETTINGS = frozenset({f"{PREFIX}LEDGER_EXAMPLES"})


def host_port(value: str) -> tuple[str, int]:
    """`host:port` (an IPv6 address in brackets: `[::1]:9464`) as (host, port), or ValueError
    saying what is wrong."""
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. [::1]:9464")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: use host:port, e.g. 127.0.0.1:9464")
    return host, int(port)


class Settings(BaseSettings):
    """Every setting of the product; `.env.example` lists each with its meaning."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./data/aftersales.db"
    secret_key: str = DEV_SECRET
    telegram_token: str | None = None
    telegram_api_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    agent_chat_id: int | None = None
    media_dir: Path = Path("./data/media")
    timezone: str = "Asia/Shanghai"
    redis_url: str | None = None
    # Polling (bot/polling.py): updates stored and not yet handled; at this many, no more are
    # fetched until some are done (Telegram keeps the rest, for up to a day).
    polling_max_backlog: int = Field(default=1000, ge=1, le=100_000)
    # `serve` with the bot polling runs the bot in a process of its own (api/bot_process.py):
    # requests are not slowed by a flood of updates; false keeps it in the server's process.
    bot_process: bool = True
    # Rules as data: a TOML file overriding the manuals' defaults (see policy.example.toml).
    policy_file: Path | None = None
    # A shop's own reply scripts, overriding or adding to templates/scripts/ (same format).
    scripts_dir: Path | None = None
    # Macros (a script plus an action in one step): the shop's own file instead of
    # templates/macros.toml (same format; tickets/macros.py).
    macros_file: Path | None = None
    # The shop's name, as customers see it in notices.
    shop_name: str = "Demo Shop 演示店铺"
    # Shown in links printed by the CLI and sent to agents. Unset, `serve` and `demo` put the
    # address serve listens on in its place (api/cli.py).
    public_url: str = "http://127.0.0.1:8000"
    # A reverse proxy in front terminates TLS although AFTERSALES_PUBLIC_URL says http (an
    # internal address): `check --production` then accepts the http public URL.
    behind_tls_proxy: bool = False
    # Case numbers look like AS-20261122-0001.
    case_prefix: str = Field(default="AS", pattern=r"^[A-Z]{1,6}$")
    # The web chat at /chat (api/chat.py): off, every chat route answers 404. A browser's
    # session lasts this many idle days; each session may send this many messages a minute, and
    # each address open this many sessions an hour.
    web_chat: bool = True
    web_chat_session_days: int = Field(default=30, ge=1, le=365)
    web_chat_messages_per_minute: int = Field(default=30, ge=1, le=1000)
    web_chat_sessions_per_hour: int = Field(default=20, ge=1, le=10_000)
    # A signed chat link for an order (tickets/chat_links.py) opens the chat already proved for
    # it, for this many hours after it is made.
    web_chat_link_hours: int = Field(default=168, ge=1, le=24 * 365)
    # How often the one watcher of the live pages (api/watch.py: the web chat's and the panel's
    # notifications' event streams) looks for what other processes wrote, in seconds.
    watch_seconds: float = Field(default=1.0, ge=0.2, le=30)
    # Evidence from customers: size limits per kind, and files per request.
    media_max_photo_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    media_max_video_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    media_max_document_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    media_max_files: int = Field(default=10, ge=1)
    # Panel log-ins (tickets/logins.py): after this many failures from one address on one
    # account, that address waits before each next try, doubling up to the longest pause; past
    # this many failures in an hour from everywhere, the account takes one try per pace.
    # Sessions expire after this many idle hours.
    panel_max_failed_logins: int = Field(default=5, ge=1)
    panel_lockout_minutes: int = Field(default=15, ge=1)
    panel_account_failures_per_hour: int = Field(default=50, ge=1)
    panel_account_pace_seconds: int = Field(default=10, ge=1, le=3600)
    # Past this many failures in an hour from one address over all names, it is paced too.
    panel_address_failures_per_hour: int = Field(default=30, ge=1)
    panel_session_hours: int = Field(default=12, ge=1)
    # The panel's "breaching soon" queue: a shop clock due within this many minutes.
    panel_breaching_soon_minutes: int = Field(default=60, ge=1)
    # The dashboard flags a product whose after-sales rate is above this percentage.
    panel_product_flag_percent: int = Field(default=20, ge=1, le=100)
    # ... and gives that rate only for a product with at least this many units sold in the
    # period: 2 cases on 1 unit is no "200 %" (fewer sold: the counts alone).
    panel_product_min_sold: int = Field(default=5, ge=1, le=1_000_000)
    # A case's customer history (tickets/cases/history.py): the most recent this many cases
    # and orders shown, and counted up to the cap (then "more than").
    panel_history_limit: int = Field(default=10, ge=1, le=100)
    panel_history_count_cap: int = Field(default=200, ge=10, le=10_000)
    # Lists count matching rows exactly up to this many, then say "more" (count_capped).
    count_cap: int = Field(default=10_000, ge=100)
    # Page size limits for list endpoints.
    page_size_max: int = Field(default=200, ge=1, le=1000)
    # import-orders refuses a file with more rows than this below its header, as it reads it.
    import_max_rows: int = Field(default=100_000, ge=1, le=10_000_000)

    # Sizes no real shop reaches (tickets/limits.py), checked before any work; a shop may
    # lower them, or raise them up to the hard ceilings of the request schemas.
    limit_units_per_line: int = Field(default=DEFAULTS.units_per_line, ge=1, le=HARD.units_per_line)
    limit_units_per_order: int = Field(
        default=DEFAULTS.units_per_order, ge=1, le=HARD.units_per_order
    )
    limit_lines_per_order: int = Field(
        default=DEFAULTS.lines_per_order, ge=1, le=HARD.lines_per_order
    )
    limit_payments_per_order: int = Field(
        default=DEFAULTS.payments_per_order, ge=1, le=HARD.payments_per_order
    )
    limit_orders_per_batch: int = Field(
        default=DEFAULTS.orders_per_batch, ge=1, le=HARD.orders_per_batch
    )
    limit_items_per_request: int = Field(
        default=DEFAULTS.items_per_request, ge=1, le=HARD.items_per_request
    )
    limit_results_per_inspect: int = Field(
        default=DEFAULTS.results_per_inspect, ge=1, le=HARD.results_per_inspect
    )
    limit_variables_per_fill: int = Field(
        default=DEFAULTS.variables_per_fill, ge=1, le=HARD.variables_per_fill
    )
    limit_text_max: int = Field(default=DEFAULTS.text_max, ge=100, le=HARD.text_max)
    # Wrong proofs of owning an order (the bot, the web chat) per day: per order, per person.
    limit_proof_tries_per_order: int = Field(
        default=DEFAULTS.proof_tries_per_order, ge=1, le=HARD.proof_tries_per_order
    )
    limit_proof_tries_per_person: int = Field(
        default=DEFAULTS.proof_tries_per_person, ge=1, le=HARD.proof_tries_per_person
    )
    limit_tags_per_case: int = Field(default=DEFAULTS.tags_per_case, ge=1, le=HARD.tags_per_case)
    limit_tags_per_request: int = Field(
        default=DEFAULTS.tags_per_request, ge=1, le=HARD.tags_per_request
    )
    limit_saved_views_per_agent: int = Field(
        default=DEFAULTS.saved_views_per_agent, ge=1, le=HARD.saved_views_per_agent
    )
    limit_links_per_case: int = Field(default=DEFAULTS.links_per_case, ge=1, le=HARD.links_per_case)
    # The newest this many notifications of each agent are kept (older ones go as new come).
    limit_notifications_per_agent: int = Field(
        default=DEFAULTS.notifications_per_agent, ge=10, le=HARD.notifications_per_agent
    )
    # The largest amount of money accepted anywhere, in the currency's major unit.
    max_amount: Decimal = Field(default=DEFAULTS.max_amount, gt=0, le=HARD.max_amount)
    # Request bodies: the most bytes read from one request, and from one upload (evidence,
    # order files); larger bodies get 413 before they are parsed.
    max_body_bytes: int = Field(default=1024 * 1024, ge=16 * 1024)
    # POST /api/v1/orders: a batch of up to AFTERSALES_LIMIT_ORDERS_PER_BATCH orders.
    max_batch_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024 * 1024)

    # Watching it (README): GET /metrics answers a scraper sending this as a bearer token
    # (off, 404, while unset); log lines as plain text, or one JSON object each.
    metrics_token: str | None = Field(default=None, min_length=16, max_length=200)
    # host:port of a listener of its own serving /metrics without a token, for a scraper on an
    # internal network (`127.0.0.1:9464`); `serve` binds it once, whatever --workers says.
    metrics_address: str | None = None
    log_format: Literal["text", "json"] = "text"
    # Webhooks to the shop's systems (tickets/webhooks.py, api/hooks_delivery.py). Development
    # only: allow http:// URLs and loopback or private addresses (else refused: SSRF).
    hooks_allow_private: bool = False
    # One delivery: the longest wait for the whole answer, and the most bytes of it read.
    hooks_timeout_seconds: float = Field(default=10.0, ge=1, le=60)
    hooks_max_response_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    # Tries of one delivery (5 s, 10 s, 20 s ... then hourly between them) before it fails.
    hooks_max_attempts: int = Field(default=15, ge=1, le=100)
    # A subscription is switched off (and the admins told) after this many failed attempts
    # in a row, or after failing without a success for this many hours.
    hooks_disable_after_failures: int = Field(default=50, ge=1, le=10_000)
    hooks_disable_after_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    hooks_max_subscriptions: int = Field(default=20, ge=1, le=1000)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        # Checked here, so every command refuses a URL it cannot use in one line, before any
        # engine is built (SQLAlchemy would fail later, deep in a traceback).
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            # The value is not repeated: it may hold a password. SQLAlchemy's ValueError is a
            # port it could not read, most often a password's `:` or `/` taken for one.
            raise ValueError(f"not a database URL: use {DATABASE_FORMS}{ENCODE_HINT}") from None
        if url.host and "@" in url.host:
            # `user:p@ss@host`: the password's own @ left the rest of it in the host name.
            raise ValueError(f"the host name holds an @{ENCODE_HINT}")
        driver = url.drivername
        if driver not in DATABASE_DRIVERS:
            raise ValueError(f"{driver!r} is not supported: use {DATABASE_FORMS}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}: use an IANA name such as Asia/Shanghai"
            ) from exc
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `AFTERSALES_METRICS_TOKEN=` (as .env.example leaves it): metrics off, not refused.
        return None if value == "" else value

    @field_validator("metrics_address", mode="before")
    @classmethod
    def _host_and_port(cls, value: object) -> object:
        if value is None or value == "":
            return None
        host_port(str(value))  # refused here, at start, rather than when `serve` binds it
        return str(value).strip()

    @property
    def metrics_listen(self) -> tuple[str, int] | None:
        """Where the internal metrics listener binds (None: no such listener)."""
        return host_port(self.metrics_address) if self.metrics_address else None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def limits(self) -> Limits:
        """The shop's limits, as the core checks them."""
        return Limits(
            units_per_line=self.limit_units_per_line,
            units_per_order=self.limit_units_per_order,
            lines_per_order=self.limit_lines_per_order,
            payments_per_order=self.limit_payments_per_order,
            orders_per_batch=self.limit_orders_per_batch,
            items_per_request=self.limit_items_per_request,
            results_per_inspect=self.limit_results_per_inspect,
            variables_per_fill=self.limit_variables_per_fill,
            text_max=self.limit_text_max,
            max_amount=self.max_amount,
            proof_tries_per_order=self.limit_proof_tries_per_order,
            proof_tries_per_person=self.limit_proof_tries_per_person,
            tags_per_case=self.limit_tags_per_case,
            tags_per_request=self.limit_tags_per_request,
            saved_views_per_agent=self.limit_saved_views_per_agent,
            links_per_case=self.limit_links_per_case,
            notifications_per_agent=self.limit_notifications_per_agent,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def unknown_names(environ: Mapping[str, str], env_file: Path | None = Path(".env")) -> list[str]:
    """A warning for each AFTERSALES_ name in the environment or the `.env` file that no
    setting reads (a misspelt setting is otherwise silently ignored), naming the closest one."""
    from dotenv import dotenv_values

    known = sorted(name.upper() for name in Settings.model_fields)
    found = [(name, "the environment") for name in environ]
    if env_file is not None and env_file.is_file():
        found += [(name, str(env_file)) for name in dotenv_values(env_file)]
    warnings = []
    for name, where in found:
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.removeprefix(PREFIX) in known:
            continue
        if upper in NOT_SETTINGS or upper.startswith(NOT_SETTINGS_PREFIXES):
            continue
        # Compared without the prefix, which every name shares and would make any two alike.
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), known, n=1, cutoff=0.6)
        hint = (
            f": did you mean {PREFIX}{close[0]}?"
            if close
            else " (.env.example lists every setting)"
        )
        warnings.append(f"{name} in {where} is not a setting and is ignored{hint}")
    return warnings


def get_settings() -> Settings:
    """Read the settings from the environment (and `.env`) now."""
    return Settings()
