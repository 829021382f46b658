"""Business time for SLA clocks: opening hours, holidays, make-up days, pauses and due dates.
Over 500 lines as one file: business-time arithmetic (hours added across closures, holidays,
make-up days, pauses) is one algorithm with its validation; split, its invariants would span
files.

Everything here is pure: no database, no clock. `now` is always a parameter (DESIGN.md,
principle 3) and every datetime must be timezone-aware; a naive one is refused with a
ValueError rather than guessed at. Results are returned in UTC.

A `BusinessCalendar` says when the desk works, in the shop's local wall-clock time: spans per
weekday ("09:00-12:00", "13:30-18:00"; "24:00" may end a span), holidays (no work) and make-up
days (调休: a date that works although its weekday normally does not). Working time is real
elapsed time between an opening and the following closing, so a span that crosses a DST change
is one hour shorter or longer that day; a wall-clock time that does not exist (skipped by a
spring-forward) means the instant of the change, and one that occurs twice means its first
occurrence.

Spans are half-open: the desk is open from the start of a span up to, not including, its end.
`add_business_time` with a positive duration ends inside an open span or exactly at its end
(09:00 + 3 h of 09:00-12:00 is 12:00, not 13:30 after lunch); with a zero duration it returns
the next instant the desk is open (now, if it is open).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tickets.exceptions import InvalidInput

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_CALENDAR_NAME = "default"

_Date = date  # a model field is called `date`; this alias keeps the type reachable in its class
_ZERO = timedelta(0)
_MINUTES_PER_DAY = 24 * 60
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")

# (start, end) in minutes after local midnight, end exclusive, sorted, touching spans merged.
_Minutes = tuple[tuple[int, int], ...]
# A pause of an SLA clock: (start, end), end None while it is still paused.
Pause = tuple[datetime, datetime | None]


class _Strict(BaseModel):
    # A misspelt key in a settings file is an error naming it, not silently dropped; frozen
    # because a calendar caches what it derives from its fields.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _minute_of_day(text: str, *, is_end: bool) -> int:
    match = _HHMM.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    if hours == 24 and minutes == 0:
        if not is_end:
            raise ValueError("24:00 may only end a span")
        return _MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    return hours * 60 + minutes


class Span(_Strict):
    """A stretch of working time in local wall-clock time, start included, end excluded.

    Written "09:00-12:00" in settings (or as a table with `start` and `end`).
    """

    start: str
    end: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            start, dash, end = value.partition("-")
            if not dash:
                raise ValueError(f"span {value!r} is not written HH:MM-HH:MM")
            return {"start": start.strip(), "end": end.strip()}
        return value

    @field_validator("start")
    @classmethod
    def _start_is_time(cls, value: str) -> str:
        _minute_of_day(value, is_end=False)
        return value

    @field_validator("end")
    @classmethod
    def _end_is_time(cls, value: str) -> str:
        _minute_of_day(value, is_end=True)
        return value

    @model_validator(mode="after")
    def _ends_after_start(self) -> Span:
        if self.end_minute <= self.start_minute:
            raise ValueError(f"span {self} ends before or when it starts")
        return self

    @property
    def start_minute(self) -> int:
        """Minutes after local midnight when the span opens."""
        return _minute_of_day(self.start, is_end=False)

    @property
    def end_minute(self) -> int:
        """Minutes after local midnight when the span closes (1440 for 24:00)."""
        return _minute_of_day(self.end, is_end=True)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def _check_no_overlap(spans: Sequence[Span]) -> None:
    ordered = sorted(spans, key=lambda s: s.start_minute)
    for before, after in pairwise(ordered):
        # Touching (12:00 end, 12:00 start) is fine: it is one longer span written as two.
        if after.start_minute < before.end_minute:
            raise ValueError(f"spans {before} and {after} overlap")


def _as_minutes(spans: Sequence[Span]) -> _Minutes:
    merged: list[tuple[int, int]] = []
    for span in sorted(spans, key=lambda s: s.start_minute):
        if merged and merged[-1][1] == span.start_minute:
            merged[-1] = (merged[-1][0], span.end_minute)
        else:
            merged.append((span.start_minute, span.end_minute))
    return tuple(merged)


class MakeupDay(_Strict):
    """A date that works although its weekday is off; its spans replace the weekday's.

    Without spans of its own it works Monday's spans. A bare date in settings means that.
    """

    date: _Date
    spans: list[Span] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_bare_date(cls, value: Any) -> Any:
        if isinstance(value, date | str):
            return {"date": value}
        return value

    @field_validator("spans")
    @classmethod
    def _spans_sensible(cls, value: list[Span] | None) -> list[Span] | None:
        if value is not None:
            if not value:
                raise ValueError("a make-up day with no spans is a holiday: list it there")
            _check_no_overlap(value)
        return value


class BusinessCalendar(_Strict):
    """When the desk works: an IANA timezone, spans per weekday, holidays and make-up days."""

    timezone: str
    monday: list[Span] = []
    tuesday: list[Span] = []
    wednesday: list[Span] = []
    thursday: list[Span] = []
    friday: list[Span] = []
    saturday: list[Span] = []
    sunday: list[Span] = []
    holidays: list[_Date] = []
    makeup_days: list[MakeupDay] = []

    _tz: ZoneInfo = PrivateAttr()
    _week: tuple[_Minutes, ...] = PrivateAttr()
    _week_time: timedelta = PrivateAttr()
    _holidays: frozenset[_Date] = PrivateAttr()
    _makeup: dict[_Date, _Minutes] = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}: use an IANA name such as 'Asia/Shanghai'"
            ) from exc
        return value

    @field_validator(*WEEKDAYS)
    @classmethod
    def _weekday_spans_disjoint(cls, value: list[Span]) -> list[Span]:
        _check_no_overlap(value)
        return value

    @field_validator("makeup_days")
    @classmethod
    def _makeup_days_consistent(
        cls, value: list[MakeupDay], info: ValidationInfo
    ) -> list[MakeupDay]:
        # Fields validate in declaration order, so holidays and monday are in info.data here
        # (unless they failed themselves, which is reported on its own).
        holidays = set(info.data.get("holidays", []))
        seen: set[_Date] = set()
        for day in value:
            if day.date in holidays:
                raise ValueError(f"{day.date} is both a holiday and a make-up day")
            if day.date in seen:
                raise ValueError(f"{day.date} is listed twice")
            seen.add(day.date)
            if day.spans is None and info.data.get("monday") == []:
                raise ValueError(
                    f"{day.date} has no spans of its own and monday, its default, has none"
                )
        return value

    @model_validator(mode="after")
    def _some_working_time(self) -> BusinessCalendar:
        # Make-up days alone are finite, so a clock could run off their end: the week must work.
        if not any(getattr(self, name) for name in WEEKDAYS):
            raise ValueError("no working time: every weekday from monday to sunday has no spans")
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Derive the lookup tables the business-time maths uses.

        They are derived once, at validation: build a changed calendar with `model_validate`,
        not `model_copy(update=...)`, which skips validation and would keep stale tables.
        """
        self._tz = ZoneInfo(self.timezone)
        self._week = tuple(_as_minutes(getattr(self, name)) for name in WEEKDAYS)
        self._week_time = timedelta(minutes=sum(e - s for day in self._week for s, e in day))
        self._holidays = frozenset(self.holidays)
        self._makeup = {
            m.date: _as_minutes(m.spans if m.spans is not None else self.monday)
            for m in self.makeup_days
        }

    @classmethod
    def twenty_four_seven(cls, timezone: str = "UTC") -> BusinessCalendar:
        """A calendar that never closes (a legal or platform clock counts every hour)."""
        always = ["00:00-24:00"]
        return cls.model_validate({"timezone": timezone, **dict.fromkeys(WEEKDAYS, always)})

    # The helpers below are the maths' view of the calendar: UTC instants per local date.

    def _spans_on(self, day: _Date) -> _Minutes:
        if day in self._holidays:
            return ()
        makeup = self._makeup.get(day)
        if makeup is not None:
            return makeup
        return self._week[day.weekday()]

    def _intervals_on(self, day: _Date) -> list[tuple[datetime, datetime]]:
        intervals = []
        for start, end in self._spans_on(day):
            opens = _wall_to_utc(self._tz, day, start)
            closes = _wall_to_utc(self._tz, day, end)
            # A span lying wholly in a spring-forward gap has no real time in it.
            if opens < closes:
                intervals.append((opens, closes))
        return intervals

    def _local_date(self, instant: datetime) -> _Date:
        return instant.astimezone(self._tz).date()

    def _midnight(self, day: _Date) -> datetime:
        return _wall_to_utc(self._tz, day, 0)

    def _is_plain_week(self, day: _Date) -> bool:
        """True when the 7 days from `day` hold exactly the nominal weekly working time.

        That is: no holiday or make-up day, and the same UTC offset at each of the 8 local
        midnights. Sampling midnights is enough because no zone in the tz database changes its
        offset and back within one day (the closest such pair is four days apart).
        """
        days = [day + timedelta(days=k) for k in range(8)]
        if any(d in self._holidays or d in self._makeup for d in days[:7]):
            return False
        first = datetime.combine(day, time(), tzinfo=self._tz).utcoffset()
        return all(datetime.combine(d, time(), tzinfo=self._tz).utcoffset() == first for d in days)


def _wall_to_utc(tz: ZoneInfo, day: _Date, minute: int) -> datetime:
    """The instant a local wall-clock time happens; monotonic in (day, minute).

    An ambiguous time (the repeated hour of a fall-back) is its first occurrence; a time that
    does not exist (the skipped hour of a spring-forward) is the instant of the change, so that
    spans keep their order and a span inside the gap is empty.
    """
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = naive.replace(tzinfo=tz).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap fold=0 and fold=1 land either side of the change; bisect to the change itself.
    other = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low, high = sorted((int(first.timestamp()), int(other.timestamp())))
    offset_before = datetime.fromtimestamp(low, tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _aware_utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime ({value.isoformat()}): pass a timezone-aware one"
        )
    return value.astimezone(UTC)


def _non_negative(name: str, value: timedelta) -> timedelta:
    if value < _ZERO:
        raise ValueError(f"{name} is negative ({value}): it must be zero or more")
    return value


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The instant (UTC) at which `duration` of working time has elapsed from `start`.

    A positive duration ends inside an open span or exactly at its end; a zero duration gives
    the first open instant at or after `start`. Whole ordinary weeks are skipped in one step.
    """
    cursor = _aware_utc("start", start)
    remaining = _non_negative("duration", duration)
    # The previous local date too: its last span may run up to (and touch) this one's start.
    day = calendar._local_date(cursor) - timedelta(days=1)
    while True:
        # Strictly more than a week, so the answer is never the end of a skipped week, where a
        # zero remainder would wrongly become "the next opening".
        if remaining > calendar._week_time:
            week_start = calendar._midnight(day)
            if week_start >= cursor and calendar._is_plain_week(day):
                remaining -= calendar._week_time
                day += timedelta(days=7)
                cursor = calendar._midnight(day)
                continue
        for opens, closes in calendar._intervals_on(day):
            if closes <= cursor:
                continue
            opens = max(opens, cursor)
            if remaining <= closes - opens:
                return opens + remaining
            remaining -= closes - opens
            cursor = closes
        day += timedelta(days=1)


def business_time_between(calendar: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Working time in [a, b); zero when b is not after a."""
    a = _aware_utc("a", a)
    b = _aware_utc("b", b)
    total = _ZERO
    day = calendar._local_date(a) - timedelta(days=1)
    while a < b:
        day_start = calendar._midnight(day)
        if day_start >= b:
            break
        next_week = day + timedelta(days=7)
        if day_start >= a and calendar._midnight(next_week) <= b and calendar._is_plain_week(day):
            total += calendar._week_time
            day = next_week
            continue
        for opens, closes in calendar._intervals_on(day):
            low, high = max(opens, a), min(closes, b)
            if low < high:
                total += high - low
        day += timedelta(days=1)
    return total


def is_working(calendar: BusinessCalendar, at: datetime) -> bool:
    """Whether the desk is open at the instant `at`."""
    at = _aware_utc("at", at)
    day = calendar._local_date(at)
    return any(
        opens <= at < closes
        for d in (day - timedelta(days=1), day)
        for opens, closes in calendar._intervals_on(d)
    )


def _normalise_pauses(
    pauses: Iterable[Pause], open_until: datetime | None
) -> list[tuple[datetime, datetime]]:
    """Pauses in UTC, an open one ended at `open_until`, sorted, overlapping ones merged."""
    closed: list[tuple[datetime, datetime]] = []
    for i, (raw_start, raw_end) in enumerate(pauses):
        begins = _aware_utc(f"pause {i} start", raw_start)
        if raw_end is None:
            if open_until is None:
                raise ValueError(f"pause {i} is still open: pass `now` to say until when")
            if open_until < begins:
                raise ValueError(f"pause {i} starts after now ({begins.isoformat()})")
            ends = open_until
        else:
            ends = _aware_utc(f"pause {i} end", raw_end)
            if ends < begins:
                raise ValueError(f"pause {i} ends before it starts")
        closed.append((begins, ends))
    merged: list[tuple[datetime, datetime]] = []
    for begins, ends in sorted(closed):
        # Overlapping pauses (two reasons at once) stop the clock once, not twice.
        if merged and begins <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ends))
        else:
            merged.append((begins, ends))
    return merged


def due_at(
    calendar: BusinessCalendar,
    start: datetime,
    target: timedelta,
    pauses: Iterable[Pause] = (),
    legal_deadline: datetime | None = None,
    *,
    now: datetime | None = None,
) -> datetime:
    """When a clock of `target` working time started at `start` falls due (UTC).

    Each pause extends it by exactly the working time it covers (pauses before `start`, or
    after the clock already reached its target, change nothing). A pause still open (end None)
    needs `now` and is taken to end then: the answer is the due time if the clock resumed now.
    A legal calendar-time deadline, when given, wins if it is earlier (DOMAIN.md).
    """
    cursor = _aware_utc("start", start)
    remaining = _non_negative("target", target)
    open_until = None if now is None else _aware_utc("now", now)
    for pause_start, pause_end in _normalise_pauses(pauses, open_until):
        if pause_end <= cursor:
            continue
        worked = business_time_between(calendar, cursor, max(pause_start, cursor))
        if remaining <= worked:
            break  # the target is reached before this pause begins
        remaining -= worked
        cursor = pause_end
    due = add_business_time(calendar, cursor, remaining)
    if legal_deadline is not None:
        due = min(due, _aware_utc("legal_deadline", legal_deadline))
    return due


class ClockStatus(enum.StrEnum):
    """Where an SLA clock stands."""

    running = "running"
    paused = "paused"
    met = "met"
    breached = "breached"


@dataclass(frozen=True)
class ClockState:
    """An SLA clock at one instant: its status and when it is (or was) due, in UTC."""

    status: ClockStatus
    due_at: datetime


def _pauses_until(pauses: Iterable[Pause], end: datetime) -> list[Pause]:
    # Only the past is known: a pause starting later is ignored, one reaching past `end` is
    # still running at `end`.
    clipped: list[Pause] = []
    for i, (begins, ends) in enumerate(pauses):
        if _aware_utc(f"pause {i} start", begins) > end:
            continue
        if ends is not None and _aware_utc(f"pause {i} end", ends) <= end:
            clipped.append((begins, ends))
        else:
            clipped.append((begins, None))
    return clipped


def _clock_end(now: datetime, met_at: datetime | None) -> tuple[datetime, datetime | None]:
    now = _aware_utc("now", now)
    if met_at is None:
        return now, None
    met_at = _aware_utc("met_at", met_at)
    if met_at > now:
        raise ValueError(f"met_at ({met_at.isoformat()}) is after now ({now.isoformat()})")
    return met_at, met_at


def clock_state(
    calendar: BusinessCalendar,
    *,
    start: datetime,
    target: timedelta,
    pauses: Iterable[Pause] = (),
    met_at: datetime | None = None,
    now: datetime,
    legal_deadline: datetime | None = None,
) -> ClockState:
    """The status of an SLA clock at `now`, and its due time.

    Met: stopped (`met_at`) on or before the due time. Breached: stopped late, or not stopped
    and `now` is past the due time. Paused: a pause covers `now` (its due time is then the due
    time if it resumed now). Running otherwise.
    """
    end, met = _clock_end(now, met_at)
    clipped = _pauses_until(pauses, end)
    due = due_at(calendar, start, target, clipped, legal_deadline, now=end)
    if met is not None:
        return ClockState(ClockStatus.met if met <= due else ClockStatus.breached, due)
    if end > due:
        return ClockState(ClockStatus.breached, due)
    if any(pause_end is None for _, pause_end in clipped):
        return ClockState(ClockStatus.paused, due)
    return ClockState(ClockStatus.running, due)


def elapsed_fraction(
    calendar: BusinessCalendar,
    *,
    start: datetime,
    target: timedelta,
    pauses: Iterable[Pause] = (),
    met_at: datetime | None = None,
    now: datetime,
) -> float:
    """The share of the target's working time used by `now` (or by `met_at`): 0.75 is 75 %.

    Paused working time is not used. Above 1.0 the clock is past its target. A zero target
    counts as all used (1.0). A legal deadline is not part of it: compare due times for that.
    """
    start = _aware_utc("start", start)
    target = _non_negative("target", target)
    end, _ = _clock_end(now, met_at)
    used = business_time_between(calendar, start, end)
    for pause_start, pause_end in _normalise_pauses(_pauses_until(pauses, end), end):
        used -= business_time_between(calendar, max(pause_start, start), pause_end)
    if target == _ZERO:
        return 1.0
    return used / target


def default_calendar() -> BusinessCalendar:
    """A Chinese shop's desk: Asia/Shanghai, Mon-Fri 09:00-12:00 and 13:30-18:00, Sat 10:00-16:00.

    No holidays: the State Council publishes them (and their make-up days) each year, so they
    are settings, not code.
    """
    weekday = ["09:00-12:00", "13:30-18:00"]
    return BusinessCalendar.model_validate(
        {
            "timezone": "Asia/Shanghai",
            **dict.fromkeys(WEEKDAYS[:5], weekday),
            "saturday": ["10:00-16:00"],
        }
    )


def load_calendars(raw: Mapping[str, Any]) -> dict[str, BusinessCalendar]:
    """Named calendars (one per group, say) from a mapping such as a parsed TOML table.

    A calendar named "default" serves every group without its own; when the mapping has none,
    `default_calendar()` is added. A mapping that does not make sense is refused whole, with
    each problem named by calendar and field.
    """
    try:
        calendars = TypeAdapter(dict[str, BusinessCalendar]).validate_python(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        lines = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        raise InvalidInput(f"calendars are refused: {lines}", errors) from exc
    calendars.setdefault(DEFAULT_CALENDAR_NAME, default_calendar())
    return calendars


def calendar_for(calendars: Mapping[str, BusinessCalendar], group: str) -> BusinessCalendar:
    """The calendar of `group`, or the default one when the group has none of its own."""
    if group in calendars:
        return calendars[group]
    return calendars[DEFAULT_CALENDAR_NAME]
