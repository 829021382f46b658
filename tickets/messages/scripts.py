"""Reply scripts (话术): bilingual, sandboxed templates in the desk's markup.
Over 500 lines as one file: the loader, the renderer and the check share the script model and
must agree (the check renders as a send would).

One file per script and language, `<name>.<lang>.md` (lang `zh-CN` or `en`): a TOML front
matter block between `+++` lines, then a Jinja2 body (templates/scripts/README.md describes
the format). The bundled folder ships every script; a shop's folder (a setting) overrides any
of them, or adds its own, without forking. Everything is checked at start-up (when the library
loads, or in `aftersales serve`'s preflight child): a script that would fail at send time is
refused with the file and the reason.

Rendering runs in one `ImmutableSandboxedEnvironment` with `StrictUndefined`: a missing or
misspelt variable is an error naming it, never a blank. Every string value is HTML-escaped
before it reaches the template (the body itself may use the markup's tags <b>, <i>, <code>...:
tickets/messages/markup.py, Telegram's HTML subset, which every channel shows), money and
dates are formatted for the language with Babel, datetimes in the shop's timezone, and a
result over the longest message (4096) is an error, never a cut. How a channel carries the
text (Telegram's shorter caption under a file) is the channel's: bot/render.py.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, validate_currency
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

from tickets.bundled import bundled
from tickets.exceptions import DomainError
from tickets.limits import VARIABLE_INT_MAX
from tickets.messages.markup import markup_length
from tickets.money import to_decimal, to_minor

LANGUAGES: Final = ("zh-CN", "en")
Language = Literal["zh-CN", "en"]
CATEGORIES: Final = ("delay", "compensation", "refusal", "notification", "information")
VARIABLE_TYPES: Final = ("str", "int", "money", "date", "datetime", "list")

# The longest script result, in visible characters (UTF-16 units): the most one message of
# any channel carries (Telegram's 4096 after entity parsing is the tightest). A file's caption
# has a smaller limit on Telegram: the bot splits such a reply (bot/render.py), never the script.
MESSAGE_LIMIT: Final = 4096

# The block a refusal must fill with the customer's next step, and the one a compensation
# script must fill with what the customer gets.
NEXT_STEP_BLOCK: Final = "next_step"
OFFER_BLOCK: Final = "offer"

# One notification per lifecycle step; the rest of the code sends them by these names.
NOTICE_NAMES: Final = (
    "notice_received",
    "notice_needs_info",
    "notice_approved",
    "notice_ship_reminder",
    "notice_parcel_received",
    "notice_inspection_passed",
    "notice_inspection_failed",
    "notice_refund_issued",
    "notice_exchange_shipped",
    "notice_closed",
    "notice_refused",
    "notice_cancelled",
    "notice_reply",
)

_BABEL_LOCALE: Final[dict[str, str]] = {"zh-CN": "zh_Hans_CN", "en": "en"}
_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE_RE: Final = re.compile(r"^(?P<name>[a-z][a-z0-9_]{0,63})\.(?P<lang>zh-CN|en)\.md$")
_FRONT_KEYS: Final = frozenset(
    {"name", "category", "title", "when", "refuses", "asks_rating", "variables", "replies"}
)
# A script that asks the customer to type a word ("reply 1 or 2") declares those words: a few
# choices, each a handful of short words (bounded: they are matched against every free message).
_REPLY_KEYS: Final = frozenset({"words", "label"})
MAX_REPLY_CHOICES: Final = 5
MAX_REPLY_WORDS: Final = 8
MAX_REPLY_WORD: Final = 40
_VAR_KEYS: Final = frozenset({"type", "sample", "default", "choices", "limit", "description"})
_UNDEFINED_RE: Final = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")

# --------------------------------------------------------------------------------------------
# Errors


class ScriptError(DomainError):
    """Base of every script error: a message naming the script, variable or file at fault."""

    code = "script_error"


class UnknownScript(ScriptError):
    code = "unknown_script"


class MissingVariable(ScriptError):
    code = "missing_variable"

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message, variable=variable)
        self.variable = variable


class UnexpectedVariable(ScriptError):
    """A value the script does not take (a misspelt name on the caller's side)."""

    code = "unexpected_variable"

    def __init__(self, message: str, *, variables: builtins.list[str]) -> None:
        super().__init__(message, variables=variables)
        self.variables = variables


class InvalidVariable(ScriptError):
    code = "invalid_variable"

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message, variable=variable)
        self.variable = variable


class OverLimit(InvalidVariable):
    """A compensation above the shop's limit for it."""

    code = "over_limit"


class TooLong(ScriptError):
    code = "too_long"

    def __init__(self, message: str, *, length: int, limit: int) -> None:
        super().__init__(message, length=length, limit=limit)
        self.length = length
        self.limit = limit


class UnsafeOutput(ScriptError):
    """The result is outside the desk's markup, Telegram's HTML subset (a tag it does not
    allow, an unclosed tag...)."""

    code = "unsafe_output"


class LibraryRefused(ScriptError):
    """The library (bundled or the shop's folder) fails its checks; `problems` lists each."""

    code = "library_refused"

    def __init__(self, message: str, *, problems: builtins.list[str]) -> None:
        super().__init__(message, problems=problems)
        self.problems = problems


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in the currency's minor unit (fen, cents): 500 CNY is ¥5.00. Never float."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError(f"Money.minor must be an int of minor units, not {self.minor!r}")
        if not isinstance(self.currency, str) or not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"Money.currency must be an ISO code like CNY, not {self.currency!r}")

    @classmethod
    def parse(cls, text: str) -> Money:
        """'5.00 CNY' -> Money(500, 'CNY')."""
        parts = text.split()
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not money: write it like '5.00 CNY'")
        amount, currency = parts
        return cls(to_minor(amount, currency.upper()), currency.upper())

    def __str__(self) -> str:
        return f"{to_decimal(self.minor, self.currency)} {self.currency}"


# The shop's compensation ceilings, by the `limit` key a money variable names. The shop's
# settings replace them (load_library(limits=...)); these are conservative defaults.
DEFAULT_LIMITS: Final[Mapping[str, Money]] = {
    # A no-threshold coupon (the manuals' default is 5 yuan).
    "coupon": Money(2000, "CNY"),
    # The shop's cost of a small gift, or a bonus gift sent with a replacement.
    "gift": Money(3000, "CNY"),
    # A goodwill payment (cash back, balance) for a service failure.
    "goodwill": Money(5000, "CNY"),
}


@dataclass(frozen=True, slots=True)
class Variable:
    """A declared variable: its type, a sample (for the check and the preview), an optional
    default, the allowed values of a str (`choices`), the limit key of a compensation."""

    name: str
    type: str
    sample: Any
    default: Any = None
    choices: tuple[str, ...] = ()
    limit: str | None = None
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class ReplyChoice:
    """One answer a script asks the customer to type: its key, the words that mean it
    (casefolded), and how it is said back to them ("Reship with another carrier")."""

    key: str
    words: frozenset[str]
    label: str


@dataclass(frozen=True, slots=True)
class Script:
    """One script in one language, as loaded and compiled."""

    name: str
    language: str
    category: str
    title: str
    when: str
    variables: Mapping[str, Variable]
    body: str
    path: Path
    origin: Literal["bundled", "shop"]
    # It refuses something, so it must end with a next step (every refusal, and notices such as
    # notice_refused); an override cannot drop this.
    refuses: bool
    template: Template = field(repr=False, compare=False)
    # Sent to a customer, it carries the 1-5 satisfaction buttons (a notice that ends a case).
    # None in a file that does not say: a shop's override then keeps the bundled script's.
    asks_rating: bool | None = None
    # The names a caller may pass: the script's own, and for an override of a bundled script
    # the bundled one's (so an override that uses fewer variables never breaks a caller).
    accepts: frozenset[str] = frozenset()
    # The words it asks the customer to type (tickets.self_service.script_answer takes them).
    # None in a file that does not say: a shop's override then keeps the bundled script's.
    replies: tuple[ReplyChoice, ...] | None = None

    def choice_for(self, words: str) -> ReplyChoice | None:
        """The choice these typed words (already casefolded and trimmed) make, if any."""
        return next((c for c in self.replies or () if words in c.words), None)


# --------------------------------------------------------------------------------------------
# Environment, formatting


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )


_ENV: Final = _environment()


def resolve_language(code: str | None) -> Language:
    """A client's language code (Telegram's `language_code`, a browser's) -> zh-CN or en."""
    if code and code.strip().lower().replace("_", "-").startswith("zh"):
        return "zh-CN"
    return "en"


def _zone(timezone: str | dt.tzinfo) -> dt.tzinfo:
    if isinstance(timezone, dt.tzinfo):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScriptError(f"unknown timezone {timezone!r}: use an IANA name") from exc


def format_money(value: Money, language: str) -> str:
    """Money for the language: zh-CN '¥5.00', en 'CN¥5.00' (Babel, CLDR)."""
    return str(
        format_currency(
            to_decimal(value.minor, value.currency), value.currency, locale=_BABEL_LOCALE[language]
        )
    )


def format_day(value: dt.date, language: str) -> str:
    """A date: zh-CN '2026年11月22日', en 'November 22, 2026'."""
    return str(format_date(value, "long", locale=_BABEL_LOCALE[language]))


def format_moment(value: dt.datetime, language: str, tz: dt.tzinfo) -> str:
    """An aware datetime in the shop's timezone, Babel's long date and short time joined by the
    locale's pattern: '2026年11月22日 14:30', 'November 22, 2026, 2:30 PM'."""
    local = value.astimezone(tz)
    locale = _BABEL_LOCALE[language]
    day = format_date(local.date(), "long", locale=locale)
    time = format_time(local, "short", tzinfo=tz, locale=locale)
    return str(get_datetime_format("long", locale=locale)).replace("{1}", day).replace("{0}", time)


# --------------------------------------------------------------------------------------------
# Loading


class _Problems:
    def __init__(self) -> None:
        self.items: builtins.list[str] = []

    def add(self, where: Path | str, reason: str) -> None:
        self.items.append(f"{where}: {reason}")


def _split_front_matter(text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "+++":
        raise ValueError("must start with a '+++' line opening the TOML front matter")
    for index in range(1, len(lines)):
        if lines[index].strip() == "+++":
            return "".join(lines[1:index]), "".join(lines[index + 1 :]).strip("\n")
    raise ValueError("the front matter is not closed by a '+++' line")


def _coerce_sample(var_type: str, raw: Any, what: str) -> Any:
    """A declared sample/default (TOML value) -> the Python value a caller would pass."""
    if var_type == "str":
        if not isinstance(raw, str):
            raise ValueError(f"{what} must be a string")
        return raw
    if var_type == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"{what} must be an integer")
        return raw
    if var_type == "money":
        if not isinstance(raw, str):
            raise ValueError(f"{what} must be a string like '5.00 CNY'")
        money = Money.parse(raw)
        validate_currency(money.currency)
        return money
    if var_type == "date":
        if isinstance(raw, str):
            raw = dt.date.fromisoformat(raw)
        if isinstance(raw, dt.datetime) or not isinstance(raw, dt.date):
            raise ValueError(f"{what} must be a date like 2026-11-29")
        return raw
    if var_type == "datetime":
        if isinstance(raw, str):
            raw = dt.datetime.fromisoformat(raw)
        if not isinstance(raw, dt.datetime) or raw.utcoffset() is None:
            raise ValueError(
                f"{what} must be a datetime with an offset, like 2026-11-22T14:30+08:00"
            )
        return raw
    if var_type == "list":
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise ValueError(f"{what} must be a non-empty list of strings")
        return tuple(raw)
    raise ValueError(f"unknown type {var_type!r}")


def _parse_variable(name: str, spec: Any) -> Variable:
    if not _NAME_RE.match(name):
        raise ValueError(f"variable name {name!r} must be lower_snake_case")
    if not isinstance(spec, dict):
        raise ValueError(f"variable {name!r} must be a table like {{ type = 'str', sample = '' }}")
    unknown = set(spec) - _VAR_KEYS
    if unknown:
        raise ValueError(f"variable {name!r} has unknown keys {sorted(unknown)}")
    var_type = spec.get("type")
    if var_type not in VARIABLE_TYPES:
        raise ValueError(f"variable {name!r} type must be one of {', '.join(VARIABLE_TYPES)}")
    if "sample" not in spec:
        raise ValueError(f"variable {name!r} has no sample value")
    sample = _coerce_sample(var_type, spec["sample"], f"variable {name!r} sample")
    default = None
    if "default" in spec:
        default = _coerce_sample(var_type, spec["default"], f"variable {name!r} default")
    choices: tuple[str, ...] = ()
    if "choices" in spec:
        raw = spec["choices"]
        if var_type != "str" or not isinstance(raw, list) or not raw:
            raise ValueError(f"variable {name!r}: choices must be a non-empty list for a str")
        if not all(isinstance(c, str) for c in raw):
            raise ValueError(f"variable {name!r}: choices must be strings")
        choices = tuple(raw)
        for value, what in ((sample, "sample"), (default, "default")):
            if value is not None and value not in choices:
                raise ValueError(f"variable {name!r} {what} {value!r} is not one of its choices")
    limit = spec.get("limit")
    if limit is not None and (var_type != "money" or not isinstance(limit, str)):
        raise ValueError(f"variable {name!r}: limit names a shop limit and is only for money")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"variable {name!r}: description must be a string")
    return Variable(name, var_type, sample, default, choices, limit, description)


def _parse_replies(raw: Any) -> tuple[ReplyChoice, ...]:
    """`[replies.<key>]` tables: `words` (what the customer may type) and `label`."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("replies must be a table of choices like [replies.reship]")
    if len(raw) > MAX_REPLY_CHOICES:
        raise ValueError(f"replies: at most {MAX_REPLY_CHOICES} choices")
    choices: list[ReplyChoice] = []
    seen: set[str] = set()
    for key, spec in raw.items():
        if not _NAME_RE.match(key):
            raise ValueError(f"reply {key!r} must be lower_snake_case")
        if not isinstance(spec, dict) or set(spec) - _REPLY_KEYS:
            raise ValueError(f"reply {key!r} must be a table with words and label")
        words, label = spec.get("words"), spec.get("label")
        if (
            not isinstance(words, list)
            or not 0 < len(words) <= MAX_REPLY_WORDS
            or not all(isinstance(w, str) and 0 < len(w.strip()) <= MAX_REPLY_WORD for w in words)
        ):
            raise ValueError(
                f"reply {key!r}: words must be 1-{MAX_REPLY_WORDS} strings of at most "
                f"{MAX_REPLY_WORD} characters"
            )
        if not isinstance(label, str) or not label.strip() or len(label) > 80:
            raise ValueError(f"reply {key!r}: label must be a string of at most 80 characters")
        folded = frozenset(w.strip().casefold() for w in words)
        if folded & seen:
            raise ValueError(f"reply {key!r}: {sorted(folded & seen)} already mean another choice")
        seen |= folded
        choices.append(ReplyChoice(key, folded, label.strip()))
    return tuple(choices)


# Where a text asks the customer to type a word: `reply "Keep"`, `reply "1" or "2"`,
# 回复「保留」, 回复「1」或「2」 (the quoted words up to the end of the clause).
_REPLY_CLAUSE: Final = re.compile(r"(?:\b[Rr]eply\b|回复)[^.;。；!！\n]*")
_QUOTED: Final = re.compile(r"[\"“]([^\"”]{1,40})[\"”]|「([^」]{1,40})」")


def quoted_replies(body: str) -> set[str]:
    """The words a script's text tells the customer to reply with, casefolded."""
    return {
        (a or b).strip().casefold()
        for clause in _REPLY_CLAUSE.findall(body)
        for a, b in _QUOTED.findall(clause)
    }


def _used_variables(source: str) -> set[str]:
    return set(meta.find_undeclared_variables(_ENV.parse(source)))


def _block_names(source: str) -> set[str]:
    return {block.name for block in _ENV.parse(source).find_all(nodes.Block)}


def _load_file(path: Path, origin: Literal["bundled", "shop"]) -> Script:
    match = _FILE_RE.match(path.name)
    if match is None:
        raise ValueError("file name must be <name>.<lang>.md with lang zh-CN or en")
    front_text, body = _split_front_matter(path.read_text(encoding="utf-8"))
    try:
        front = tomllib.loads(front_text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"front matter is not valid TOML: {exc}") from exc
    unknown = set(front) - _FRONT_KEYS
    if unknown:
        raise ValueError(f"unknown front matter keys {sorted(unknown)}")
    for key in ("name", "category", "title", "when"):
        if not isinstance(front.get(key), str) or not front[key].strip():
            raise ValueError(f"front matter needs a non-empty string {key!r}")
    if front["name"] != match["name"]:
        raise ValueError(f"name {front['name']!r} does not match the file name")
    if front["category"] not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
    refuses = front.get("refuses", False)
    asks_rating = front.get("asks_rating")
    for key, flag in (("refuses", refuses), ("asks_rating", asks_rating)):
        if flag is not None and not isinstance(flag, bool):
            raise ValueError(f"{key} must be true or false")
    raw_vars = front.get("variables", {})
    if not isinstance(raw_vars, dict):
        raise ValueError("variables must be a table")
    variables = {name: _parse_variable(name, spec) for name, spec in raw_vars.items()}
    replies = _parse_replies(front["replies"]) if "replies" in front else None
    if not body.strip():
        raise ValueError("the body is empty")
    try:
        template = _ENV.from_string(body)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template error line {exc.lineno}: {exc.message}") from exc
    return Script(
        name=front["name"],
        language=match["lang"],
        category=front["category"],
        title=front["title"].strip(),
        when=front["when"].strip(),
        variables=variables,
        body=body,
        path=path,
        origin=origin,
        refuses=refuses or front["category"] == "refusal",
        template=template,
        asks_rating=asks_rating,
        accepts=frozenset(variables),
        replies=replies,
    )


def _load_dir(
    folder: Path, origin: Literal["bundled", "shop"], problems: _Problems
) -> dict[tuple[str, str], Script]:
    scripts: dict[tuple[str, str], Script] = {}
    if not folder.is_dir():
        problems.add(folder, "the scripts folder does not exist")
        return scripts
    for path in sorted(folder.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            script = _load_file(path, origin)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            problems.add(path, str(exc))
            continue
        scripts[(script.name, script.language)] = script
    return scripts


# --------------------------------------------------------------------------------------------
# The library


@dataclass(frozen=True, slots=True)
class _Contents:
    """What the folders hold: the scripts in force (the shop's overrides applied), the bundled
    ones, the compensation limits, and the files that could not be read."""

    scripts: dict[tuple[str, str], Script]
    bundled: dict[tuple[str, str], Script]
    limits: dict[str, Money]
    load_problems: builtins.list[str]


class ScriptLibrary:
    """Every script in both languages: the bundled ones with the shop's overrides applied,
    read by `read` once, when first needed (load_library says when)."""

    def __init__(self, read: Callable[[], _Contents]) -> None:
        self._read = read
        self._read_once: _Contents | None = None
        self._lock = threading.Lock()

    def _contents(self) -> _Contents:
        # Request threads and the bot's threads may ask first at the same time: one reads.
        if self._read_once is None:
            with self._lock:
                if self._read_once is None:
                    self._read_once = self._read()
        return self._read_once

    @property
    def _scripts(self) -> dict[tuple[str, str], Script]:
        return self._contents().scripts

    @property
    def _bundled(self) -> dict[tuple[str, str], Script]:
        return self._contents().bundled

    @property
    def _limits(self) -> dict[str, Money]:
        return self._contents().limits

    @property
    def _load_problems(self) -> builtins.list[str]:
        return self._contents().load_problems

    @property
    def limits(self) -> Mapping[str, Money]:
        return dict(self._limits)

    def list(
        self, *, category: str | None = None, language: str | None = None
    ) -> builtins.list[Script]:
        """The scripts, sorted by name then language, optionally of one category or language."""
        return [
            s
            for key, s in sorted(self._scripts.items())
            if (category is None or s.category == category)
            and (language is None or s.language == language)
        ]

    def names(self) -> builtins.list[str]:
        return sorted({name for name, _ in self._scripts})

    def get(self, name: str, language: str) -> Script:
        if language not in LANGUAGES:
            raise UnknownScript(f"unknown language {language!r}: use one of {LANGUAGES}")
        try:
            return self._scripts[(name, language)]
        except KeyError:
            raise UnknownScript(f"no script {name!r} in {language}") from None

    def sample_variables(self, name: str, language: str) -> dict[str, Any]:
        """The declared samples, as a caller would pass them (Money, date, datetime...)."""
        script = self.get(name, language)
        return {v.name: v.sample for v in script.variables.values()}

    def render(
        self,
        name: str,
        language: str,
        variables: Mapping[str, Any],
        *,
        timezone: str | dt.tzinfo,
    ) -> str:
        """The script filled in, in the desk's markup (tickets/messages/markup.py). Raises a
        ScriptError subclass, never blanks."""
        script = self.get(name, language)
        return self._render(script, variables, tz=_zone(timezone))

    # -- internals ---------------------------------------------------------------------------

    def _context(
        self, script: Script, variables: Mapping[str, Any], tz: dt.tzinfo
    ) -> dict[str, Any]:
        unexpected = sorted(set(variables) - script.accepts)
        if unexpected:
            raise UnexpectedVariable(
                f"script {script.name!r} does not take {', '.join(unexpected)}",
                variables=unexpected,
            )
        context: dict[str, Any] = {}
        for var in script.variables.values():
            if var.name in variables and variables[var.name] is not None:
                value = variables[var.name]
            elif var.default is not None:
                value = var.default
            else:
                raise MissingVariable(
                    f"script {script.name!r} needs variable {var.name!r}", variable=var.name
                )
            context[var.name] = self._convert(script, var, value, tz)
        return context

    def _convert(self, script: Script, var: Variable, value: Any, tz: dt.tzinfo) -> Any:
        where = f"script {script.name!r} variable {var.name!r}"
        lang = script.language
        if var.type == "str":
            if not isinstance(value, str):
                raise InvalidVariable(f"{where} must be a str", variable=var.name)
            if var.choices and value not in var.choices:
                raise InvalidVariable(
                    f"{where} must be one of {', '.join(var.choices)}, not {value!r}",
                    variable=var.name,
                )
            # str() drops a Markup wrapper: caller-supplied text is always escaped.
            return escape(str.__str__(value))
        if var.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidVariable(f"{where} must be an int", variable=var.name)
            if abs(value) > VARIABLE_INT_MAX:
                raise InvalidVariable(
                    f"{where} must be at most {VARIABLE_INT_MAX}", variable=var.name
                )
            return value
        if var.type == "money":
            if not isinstance(value, Money):
                raise InvalidVariable(f"{where} must be Money(minor, currency)", variable=var.name)
            if value.minor < 0:
                raise InvalidVariable(f"{where} must not be negative", variable=var.name)
            if var.limit is not None:
                self._within_limit(where, var, value)
            return escape(format_money(value, lang))
        if var.type == "date":
            if isinstance(value, dt.datetime):
                if value.utcoffset() is None:
                    raise InvalidVariable(f"{where}: a datetime must be aware", variable=var.name)
                value = value.astimezone(tz).date()
            if not isinstance(value, dt.date):
                raise InvalidVariable(f"{where} must be a date", variable=var.name)
            return escape(format_day(value, lang))
        if var.type == "datetime":
            if not isinstance(value, dt.datetime) or value.utcoffset() is None:
                raise InvalidVariable(f"{where} must be an aware datetime", variable=var.name)
            return escape(format_moment(value, lang, tz))
        # list
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InvalidVariable(f"{where} must be a list of str", variable=var.name)
        if not value or not all(isinstance(item, str) for item in value):
            raise InvalidVariable(f"{where} must be a non-empty list of str", variable=var.name)
        return tuple(escape(str.__str__(item)) for item in value)

    def _within_limit(self, where: str, var: Variable, value: Money) -> None:
        assert var.limit is not None
        limit = self._limits.get(var.limit)
        if limit is None:
            raise OverLimit(f"{where}: the shop has no limit {var.limit!r}", variable=var.name)
        if limit.currency != value.currency:
            raise OverLimit(
                f"{where}: {value} is not in the limit's currency {limit.currency}",
                variable=var.name,
            )
        if value.minor > limit.minor:
            raise OverLimit(
                f"{where}: {value} is over the shop's {var.limit} limit of {limit}",
                variable=var.name,
            )

    def _render(self, script: Script, variables: Mapping[str, Any], *, tz: dt.tzinfo) -> str:
        context = self._context(script, variables, tz)
        try:
            html = script.template.render(context).strip()
        except UndefinedError as exc:
            match = _UNDEFINED_RE.search(str(exc))
            missing = next((g for g in match.groups() if g), "?") if match else "?"
            raise MissingVariable(
                f"script {script.name!r} ({script.language}) uses undefined {missing!r}: {exc}",
                variable=missing,
            ) from exc
        except SecurityError as exc:
            raise UnsafeOutput(f"script {script.name!r}: {exc}") from exc
        except TemplateError as exc:
            raise ScriptError(f"script {script.name!r} ({script.language}): {exc}") from exc
        length, problems = markup_length(html)
        if problems:
            raise UnsafeOutput(
                f"script {script.name!r} ({script.language}) is not Telegram HTML: {problems[0]}"
            )
        if length == 0:
            raise ScriptError(f"script {script.name!r} ({script.language}) renders empty")
        if length > MESSAGE_LIMIT:
            raise TooLong(
                f"script {script.name!r} ({script.language}) is {length} characters, "
                f"over the {MESSAGE_LIMIT} characters one message carries",
                length=length,
                limit=MESSAGE_LIMIT,
            )
        return html

    def _render_block(self, script: Script, block: str, context: Mapping[str, Any]) -> str:
        render = script.template.blocks[block]
        return "".join(render(script.template.new_context(dict(context)))).strip()

    # -- the check ---------------------------------------------------------------------------

    def check(self) -> builtins.list[str]:
        """Every problem of every script in every language, as '<file>: <reason>' lines."""
        problems = _Problems()
        problems.items.extend(self._load_problems)
        self._check_coverage(problems)
        for script in self._scripts.values():
            self._check_script(script, problems)
        return problems.items

    def _check_coverage(self, problems: _Problems) -> None:
        names = {name for name, _ in self._scripts} | set(NOTICE_NAMES)
        for name in sorted(names):
            present = [lang for lang in LANGUAGES if (name, lang) in self._scripts]
            if not present:
                problems.add(name, "the notification is missing in every language")
                continue
            for lang in LANGUAGES:
                if lang not in present:
                    other = self._scripts[(name, present[0])]
                    problems.add(other.path, f"{name!r} has no {lang} version")
            scripts = [self._scripts[(name, lang)] for lang in present]
            categories = {s.category for s in scripts}
            if len(categories) > 1:
                problems.add(scripts[0].path, f"{name!r} has different categories per language")
            signatures = {
                (lang, tuple(sorted((v.name, v.type) for v in s.variables.values())))
                for lang, s in zip(present, scripts, strict=True)
                if s.origin == "bundled" or (name, lang) not in self._bundled
            }
            if len({sig for _, sig in signatures}) > 1:
                detail = "; ".join(f"{lang}: {[n for n, _ in sig]}" for lang, sig in signatures)
                problems.add(
                    scripts[0].path,
                    f"{name!r} declares different variables per language ({detail})",
                )

    def _check_script(self, script: Script, problems: _Problems) -> None:
        where = script.path
        found_before = len(problems.items)
        for word in sorted(quoted_replies(script.body)):
            if script.choice_for(word) is None:
                problems.add(
                    where,
                    f"the text asks the customer to reply {word!r}, which [replies] does not "
                    "declare: a typed word the bot would not understand",
                )
        declared = set(script.variables)
        used = _used_variables(script.body)
        for name in sorted(used - declared):
            problems.add(where, f"uses variable {name!r} but does not declare it")
        for name in sorted(declared - used):
            problems.add(where, f"declares variable {name!r} but never uses it")

        base = self._bundled.get((script.name, script.language))
        if script.origin == "shop" and base is not None and base is not script:
            if script.category != base.category:
                problems.add(where, f"overrides a {base.category} script with a {script.category}")
            for var in script.variables.values():
                original = base.variables.get(var.name)
                if original is None:
                    problems.add(
                        where,
                        f"declares {var.name!r}, which the bundled script does not take "
                        "(the code would never supply it)",
                    )
                elif original.type != var.type:
                    problems.add(
                        where,
                        f"variable {var.name!r} is {var.type}, the bundled one {original.type}",
                    )

        blocks = _block_names(script.body)
        refuses = script.refuses or (base is not None and base.refuses)
        if refuses and NEXT_STEP_BLOCK not in blocks:
            problems.add(
                where,
                "a refusal must end with a next step for the customer: "
                "put it in {% block next_step %}...{% endblock %}",
            )
        if script.category == "compensation":
            if OFFER_BLOCK not in blocks:
                problems.add(
                    where,
                    "a compensation must say what the customer gets: "
                    "put it in {% block offer %}...{% endblock %}",
                )
            for var in script.variables.values():
                if var.type == "money" and var.limit is None:
                    problems.add(
                        where, f"money variable {var.name!r} needs a limit (one of the shop's)"
                    )
        for var in script.variables.values():
            if var.limit is not None:
                if var.limit not in self._limits:
                    problems.add(
                        where,
                        f"variable {var.name!r} names unknown limit {var.limit!r} "
                        f"(known: {', '.join(sorted(self._limits))})",
                    )
                    continue
                for what, value in (("sample", var.sample), ("default", var.default)):
                    if value is None:
                        continue
                    try:
                        self._within_limit(f"{what} of", var, value)
                    except OverLimit as exc:
                        problems.add(where, f"variable {var.name!r} {exc.message}")
        if len(problems.items) > found_before:
            return  # rendering would only repeat the problems above

        for context in self._sample_contexts(script):
            try:
                self._render(script, context, tz=dt.UTC)
                converted = self._context(script, context, dt.UTC)
                if refuses and not self._render_block(script, NEXT_STEP_BLOCK, converted):
                    problems.add(where, "the next_step block renders empty")
                if script.category == "compensation" and not self._render_block(
                    script, OFFER_BLOCK, converted
                ):
                    problems.add(where, "the offer block renders empty")
            except ScriptError as exc:
                problems.add(where, f"does not render with its samples: {exc.message}")
                return

    def _sample_contexts(self, script: Script) -> Iterator[dict[str, Any]]:
        """The samples, then once per choice of each choice variable (so every branch renders)."""
        base = {v.name: v.sample for v in script.variables.values()}
        yield base
        for var in script.variables.values():
            for choice in var.choices:
                if choice != var.sample:
                    yield {**base, var.name: choice}
            if var.default is not None:
                yield {k: v for k, v in base.items() if k != var.name}


def load_library(
    bundled: Path,
    override: Path | None = None,
    *,
    limits: Mapping[str, Money] | Callable[[], Mapping[str, Money]] | None = None,
    verify: bool = True,
) -> ScriptLibrary:
    """The bundled scripts with the shop's folder (if any) applied on top; `limits` are the
    compensation limits, or what makes them.

    With `verify` (the default) the folders are read at once and any problem refuses the whole
    library with a LibraryRefused naming each file and reason. With verify=False they are read
    when the library is first used, and the problems are left for `library.check()` (the CLI's
    `aftersales scripts check` lists them all): `aftersales serve`, whose preflight child has
    just checked the same folders, keeps neither the compiled templates nor Babel's currency
    tables (the limits' and the samples' money) until a message or a page needs a script.
    """

    def read() -> _Contents:
        problems = _Problems()
        base = _load_dir(Path(bundled), "bundled", problems)
        scripts = dict(base)
        if override is not None:
            for key, script in _load_dir(Path(override), "shop", problems).items():
                original = base.get(key)
                if original is not None:
                    # The code passes the bundled script's variables: an override may use fewer.
                    script = replace(script, accepts=script.accepts | original.accepts)
                    if script.asks_rating is None:
                        script = replace(script, asks_rating=original.asks_rating)
                    if script.replies is None:
                        script = replace(script, replies=original.replies)
                scripts[key] = script
        given = limits() if callable(limits) else limits
        return _Contents(
            scripts=scripts,
            bundled=base,
            limits=dict(DEFAULT_LIMITS if given is None else given),
            load_problems=problems.items,
        )

    library = ScriptLibrary(read)
    if verify:
        found = library.check()
        if found:
            raise LibraryRefused(
                f"reply scripts refused ({len(found)} problem(s)): " + "; ".join(found),
                problems=found,
            )
    return library


def bundled_scripts_dir() -> Path:
    """The bundled scripts: templates/scripts, shipped with the code."""
    return bundled("templates", "scripts")
