"""Rendering the panel's pages: one Jinja2 environment (autoescaped, with the i18n extension)
built when the panel is installed, and `render` that fills in what every page needs.

The environment's gettext reads the language from the template context (`lang`), so one
environment serves both languages and a page can never mix them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape

from api.deps import shop_macros
from api.panel import i18n
from api.panel.labels import label
from tickets.bundled import bundled
from tickets.macros import Macros
from tickets.money import format_amount

TEMPLATES_DIR = bundled("templates", "panel")
STATIC_DIR = bundled("api", "static")

# Telegram's HTML subset (what reply scripts produce). Anything else in a message stays text.
_TELEGRAM_TAG = re.compile(
    r"&lt;(/?)(b|strong|i|em|u|ins|s|strike|del|code|pre|blockquote)&gt;", re.IGNORECASE
)
_ANY_TAG = re.compile(r"<[^>]+>")
# Time left on a clock; marked here so the catalog extractor sees them.
_IN = i18n.N_("in %(span)s")
_OVERDUE = i18n.N_("overdue %(span)s")
# When a refund route's money arrives (the calculator's "immediate", "3 days", "1-3 days").
_IMMEDIATE = i18n.N_("immediately")
_DAYS = i18n.N_("%(days)s days")
# Where the policy page looks a key or a value up (the first table naming it wins).
_POLICY_KEY_TABLES = ("policy_key", "payment", "kind")
_POLICY_VALUE_TABLES = (
    "kind",
    "reason",
    "risk",
    "order_status",
    "group",
    "category",
    "status",
    "payment",
)
_ARRIVAL = re.compile(r"^(\d+(?:-\d+)?) days?$")


@dataclass
class PanelState:
    """What the panel keeps on `app.state.panel`: its templates and catalogs."""

    env: Environment
    catalogs: Mapping[str, i18n.Catalog]
    # Who has which case open: {number: {username: (display name, monotonic time, typing)}}.
    presence: dict[str, dict[str, tuple[str, float, bool]]] = field(default_factory=dict)
    # The live notifications' hub (api/panel/notifications.py), made by the first stream.
    notify_hub: Any = None


def panel_macros(request: Request) -> Macros:
    """The shop's macros, as the JSON API reads them (api/deps.py `shop_macros`: once per
    process, on first use)."""
    return shop_macros(request)


def telegram_html(text: str) -> Markup:
    """A message as the customer sees it in Telegram: the script's <b>, <code>... kept, any
    other markup shown as text (escaped first, then only bare known tags restored)."""
    safe = str(escape(text))
    # Safe: every character came through escape(); only attribute-less known tags come back.
    restored = _TELEGRAM_TAG.sub(lambda m: f"<{m.group(1)}{m.group(2).lower()}>", safe)
    return Markup(restored)  # noqa: S704


def plain_text(telegram: str) -> str:
    """Telegram HTML as the plain text an agent edits (tags dropped, entities decoded)."""
    return html.unescape(_ANY_TAG.sub("", telegram))


def build_environment(catalogs: Mapping[str, i18n.Catalog]) -> Environment:
    """The panel's environment; `_()` and `{% trans %}` translate to the context's `lang`."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )

    @pass_context
    def gettext(ctx: Context, message: str) -> str:
        return catalogs[ctx.get("lang", i18n.DEFAULT_LANGUAGE)].gettext(message)

    @pass_context
    def ngettext(ctx: Context, singular: str, plural: str, n: int) -> str:
        return catalogs[ctx.get("lang", i18n.DEFAULT_LANGUAGE)].ngettext(singular, plural, n)

    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]

    @pass_context
    def tr(ctx: Context, table: str, code: str | None) -> str:
        """A code's name in the page's language: {{ tr('status', t.status) }}."""
        return gettext(ctx, label(table, code)) if code else ""

    @pass_context
    def money(ctx: Context, amount: Any, currency: str | None) -> str:
        return i18n.money(amount, currency, ctx["lang"])

    @pass_context
    def moment(ctx: Context, value: datetime | None, style: str = "short") -> str:
        return i18n.moment(value, ctx["lang"], ctx["tz"], style)

    @pass_context
    def until(ctx: Context, value: datetime | None) -> str:
        """'in 3h 20m' / 'overdue 1h 5m' from the page's `now`."""
        if value is None:
            return ""
        seconds = (value - ctx["now"]).total_seconds()
        span = i18n.duration(seconds, ctx["lang"])
        key = _IN if seconds >= 0 else _OVERDUE
        return gettext(ctx, key) % {"span": span}

    @pass_context
    def gap(ctx: Context, value: datetime | None) -> str:
        """How far `value` is from the page's `now`, either way: '3h 10m' (late or left)."""
        if value is None:
            return ""
        return i18n.duration((value - ctx["now"]).total_seconds(), ctx["lang"])

    @pass_context
    def age(ctx: Context, value: datetime | None) -> str:
        if value is None:
            return ""
        return i18n.duration((ctx["now"] - value).total_seconds(), ctx["lang"])

    @pass_context
    def words(ctx: Context, message: str | None) -> str:
        """A message known only at run time (an error the panel words with N_) in the page's
        language; unlike `_()` it formats nothing, so a '%' in it is just a character."""
        return gettext(ctx, message) if message else ""

    @pass_context
    def actor(ctx: Context, value: str | None) -> str:
        """Who acted, as the event log names them (`agent:tom`, `customer`, `system:sla` ...),
        in words: the agent's display name (from the page's `people`), else a translated role."""
        if not value:
            return ""
        kind, _sep, rest = value.partition(":")
        if kind == "agent" and rest:
            people: Mapping[str, str] = ctx.get("people") or {}
            return people.get(rest) or rest
        if kind == "system" and rest.startswith("auto-approval"):
            value = "system:auto-approval"
        known = label("actor", value)
        if known == value and kind == "system":
            known = label("actor", "system")
        return gettext(ctx, known)

    @pass_context
    def arrival(ctx: Context, value: str | None) -> str:
        """A refund route's arrival ('1-3 days', 'immediate') in the page's language."""
        if not value:
            return ""
        if value == "immediate":
            return gettext(ctx, _IMMEDIATE)
        match = _ARRIVAL.match(value)
        if match is None:
            return value
        return gettext(ctx, _DAYS) % {"days": match.group(1)}

    @pass_context
    def group_name(ctx: Context, code: str | None) -> str:
        """A group's name: the default groups' translated, a shop's own as the code."""
        return gettext(ctx, label("group", code)) if code else ""

    @pass_context
    def policy_key(ctx: Context, key: str) -> str:
        """A policy setting's name for a lead ('escalate_after_minutes' -> 'Escalate after
        (minutes)'); keys that are codes (a payment route, a kind) by their own name."""
        for table in _POLICY_KEY_TABLES:
            known = label(table, key)
            if known != key:
                return gettext(ctx, known)
        return key

    @pass_context
    def policy_code(ctx: Context, value: Any) -> str | None:
        """A code among the policy's values (a kind, reason, category ...) in words; None when
        the value is the shop's own text, shown as written."""
        if not isinstance(value, str):
            return None
        for table in _POLICY_VALUE_TABLES:
            known = label(table, value)
            if known != value:
                return gettext(ctx, known)
        return None

    @pass_context
    def var_label(ctx: Context, name: str, description: str = "") -> str:
        """A script variable's label: its translated name, else the script's own description."""
        known = label("variable", name)
        if known != name:
            return gettext(ctx, known)
        return description or name

    def minor(amount: int, currency: str) -> str:
        """Integer minor units (the database's money) as the decimal string `money` takes."""
        return format_amount(amount, currency)

    env.globals.update(
        tr=tr,
        money=money,
        moment=moment,
        until=until,
        gap=gap,
        age=age,
        minor=minor,
        actor=actor,
        arrival=arrival,
        group_name=group_name,
        var_label=var_label,
        words=words,
        policy_key=policy_key,
        policy_code=policy_code,
    )
    env.filters["telegram"] = telegram_html
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    lang: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page in the logged-in agent's language (or `lang`, for the login page)."""
    body = render_text(request, template, context, lang=lang)
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    # Pages carry a CSRF token and case data: never cache them, never frame them.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def render_text(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    lang: str | None = None,
) -> str:
    """A template rendered as text with everything a page gets (for files: the evidence
    bundle's timeline)."""
    state: PanelState = request.app.state.panel
    agent = getattr(request.state, "panel_agent", None)
    panel_session = getattr(request.state, "panel_session", None)
    tz: ZoneInfo = request.app.state.settings.tz
    page_lang = i18n.pick_language(lang or (agent.language if agent is not None else None))
    data: dict[str, Any] = {
        "request": request,
        "agent": agent,
        "csrf": panel_session.csrf_token if panel_session is not None else "",
        "lang": page_lang,
        "languages": i18n.LANGUAGE_NAMES,
        "tz": tz,
        "now": getattr(request.state, "now", None) or datetime.now(tz),
        "flash": None,
        "error": None,
    }
    data.update(context or {})
    return state.env.get_template(template).render(data)
