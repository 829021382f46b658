"""Business time for SLA clocks: hand-worked examples, validation messages, and properties.
Over 500 lines as one file: one module under test, its examples and properties.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tickets.exceptions import InvalidInput
from tickets.sla.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    ClockStatus,
    add_business_time,
    business_time_between,
    calendar_for,
    clock_state,
    default_calendar,
    due_at,
    elapsed_fraction,
    is_working,
    load_calendars,
)

SH = ZoneInfo("Asia/Shanghai")
BER = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
MIN = timedelta(minutes=1)
US = timedelta(microseconds=1)

WEEKDAY = ["09:00-12:00", "13:30-18:00"]


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


def ber(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BER)


def calendar(**fields: Any) -> BusinessCalendar:
    return BusinessCalendar.model_validate(fields)


def mon_to_fri(tz: str = "Asia/Shanghai", spans: list[str] = WEEKDAY) -> BusinessCalendar:
    return calendar(timezone=tz, **dict.fromkeys(WEEKDAYS[:5], spans))


def national_day_2025() -> BusinessCalendar:
    # The real 2025 schedule: Oct 1-8 off, make-up working days Sun Sep 28 and Sat Oct 11.
    return calendar(
        timezone="Asia/Shanghai",
        **dict.fromkeys(WEEKDAYS[:5], WEEKDAY),
        saturday=["10:00-16:00"],
        holidays=[date(2025, 10, d) for d in range(1, 9)],
        makeup_days=["2025-09-28", date(2025, 10, 11)],
    )


# --- hand-worked examples (2025-01-06 is a Monday) -------------------------------------------


def test_lunch_break_is_skipped() -> None:
    cal = default_calendar()
    assert add_business_time(cal, sh(2025, 1, 6, 11), 2 * H) == sh(2025, 1, 6, 14, 30)
    assert business_time_between(cal, sh(2025, 1, 6, 11), sh(2025, 1, 6, 14, 30)) == 2 * H


def test_friday_evening_runs_into_saturday_on_the_default_calendar() -> None:
    # Fri 17:00-18:00 is one hour; Saturday opens at 10:00, so the second hour ends at 11:00.
    cal = default_calendar()
    assert add_business_time(cal, sh(2025, 1, 10, 17), 2 * H) == sh(2025, 1, 11, 11)


def test_friday_evening_runs_into_monday_when_saturday_is_off() -> None:
    cal = mon_to_fri()
    assert add_business_time(cal, sh(2025, 1, 10, 17), 2 * H) == sh(2025, 1, 13, 10)


def test_saturday_afternoon_skips_sunday() -> None:
    cal = default_calendar()
    assert add_business_time(cal, sh(2025, 1, 11, 15), 2 * H) == sh(2025, 1, 13, 10)


def test_positive_duration_ends_at_the_close_not_at_the_next_opening() -> None:
    cal = default_calendar()
    assert add_business_time(cal, sh(2025, 1, 6, 9), 3 * H) == sh(2025, 1, 6, 12)


def test_zero_duration_is_the_next_open_instant() -> None:
    cal = default_calendar()
    assert add_business_time(cal, sh(2025, 1, 6, 10), timedelta(0)) == sh(2025, 1, 6, 10)
    assert add_business_time(cal, sh(2025, 1, 6, 12, 30), timedelta(0)) == sh(2025, 1, 6, 13, 30)
    # A span's end is closed: 12:00 is lunch already.
    assert add_business_time(cal, sh(2025, 1, 6, 12), timedelta(0)) == sh(2025, 1, 6, 13, 30)
    assert add_business_time(cal, sh(2025, 1, 10, 18), timedelta(0)) == sh(2025, 1, 11, 10)


def test_holidays_are_skipped() -> None:
    # Tue Sep 30 17:00: one hour that day, then Oct 1-8 off, the second hour on Thu Oct 9.
    cal = national_day_2025()
    assert add_business_time(cal, sh(2025, 9, 30, 17), 2 * H) == sh(2025, 10, 9, 10)
    assert business_time_between(cal, sh(2025, 10, 1), sh(2025, 10, 9)) == timedelta(0)


def test_makeup_saturday_works_monday_hours() -> None:
    # Sat Oct 11 is a make-up day: it opens at 09:00 like a Monday, not at 10:00.
    cal = national_day_2025()
    assert add_business_time(cal, sh(2025, 10, 10, 17), 2 * H) == sh(2025, 10, 11, 10)
    assert add_business_time(default_calendar(), sh(2025, 10, 10, 17), 2 * H) == sh(
        2025, 10, 11, 11
    )
    assert business_time_between(cal, sh(2025, 10, 11), sh(2025, 10, 12)) == timedelta(hours=7.5)


def test_makeup_sunday_is_counted() -> None:
    # Sat Sep 27 15:00-16:00 is one hour; Sun Sep 28 works 09:00-11:00 for the other two.
    cal = national_day_2025()
    assert add_business_time(cal, sh(2025, 9, 27, 15), 3 * H) == sh(2025, 9, 28, 11)


def test_makeup_day_with_its_own_spans() -> None:
    cal = calendar(
        timezone="Asia/Shanghai",
        monday=WEEKDAY,
        makeup_days=[{"date": "2025-01-12", "spans": ["10:00-12:00"]}],
    )
    assert business_time_between(cal, sh(2025, 1, 12), sh(2025, 1, 13)) == 2 * H
    assert add_business_time(cal, sh(2025, 1, 12, 8), H) == sh(2025, 1, 12, 11)


def test_a_span_may_end_at_24_00_and_touch_the_next_day() -> None:
    cal = calendar(timezone="Asia/Shanghai", friday=["20:00-24:00"], saturday=["00:00-02:00"])
    assert add_business_time(cal, sh(2025, 1, 10, 23), 2 * H) == sh(2025, 1, 11, 1)
    assert business_time_between(cal, sh(2025, 1, 10), sh(2025, 1, 12)) == 6 * H


def test_touching_spans_are_one_span() -> None:
    cal = calendar(timezone="UTC", monday=["09:00-12:00", "12:00-13:00"])
    start = datetime(2025, 1, 6, 11, tzinfo=UTC)
    assert add_business_time(cal, start, 2 * H) == datetime(2025, 1, 6, 13, tzinfo=UTC)
    assert is_working(cal, datetime(2025, 1, 6, 12, tzinfo=UTC))


def test_weekend_across_spring_forward_in_berlin() -> None:
    # Sun 2025-03-30 02:00 CET became 03:00 CEST. Fri 16:00 CET + 2 h: one hour Friday,
    # one hour Monday: 10:00 CEST, which is 08:00 UTC (not 09:00 as a fixed offset would say).
    cal = mon_to_fri("Europe/Berlin", ["09:00-17:00"])
    due = add_business_time(cal, ber(2025, 3, 28, 16), 2 * H)
    assert due == ber(2025, 3, 31, 10)
    assert due == datetime(2025, 3, 31, 8, tzinfo=UTC)
    assert business_time_between(cal, ber(2025, 3, 28, 16), due) == 2 * H


def test_weekend_across_fall_back_in_berlin() -> None:
    cal = mon_to_fri("Europe/Berlin", ["09:00-17:00"])
    due = add_business_time(cal, ber(2025, 10, 24, 16), 2 * H)
    assert due == ber(2025, 10, 27, 10)
    assert due == datetime(2025, 10, 27, 9, tzinfo=UTC)


def test_a_span_across_the_dst_change_counts_real_hours() -> None:
    cal = calendar(timezone="Europe/Berlin", sunday=["01:00-04:00"])
    assert business_time_between(cal, ber(2025, 3, 30), ber(2025, 3, 31)) == 2 * H
    assert business_time_between(cal, ber(2025, 10, 26), ber(2025, 10, 27)) == 4 * H
    assert business_time_between(cal, ber(2025, 4, 6), ber(2025, 4, 7)) == 3 * H
    # 01:00 CET + 1.5 h of real time is 03:30 CEST.
    assert add_business_time(cal, ber(2025, 3, 30), timedelta(hours=1.5)) == ber(2025, 3, 30, 3, 30)


def test_a_span_inside_the_skipped_hour_has_no_time() -> None:
    cal = calendar(timezone="Europe/Berlin", sunday=["02:00-02:30", "05:00-06:00"])
    assert business_time_between(cal, ber(2025, 3, 30), ber(2025, 3, 31)) == H
    assert business_time_between(cal, ber(2025, 4, 6), ber(2025, 4, 7)) == timedelta(hours=1.5)


def test_twenty_four_seven_is_plain_elapsed_time_even_across_dst() -> None:
    berlin = BusinessCalendar.twenty_four_seven("Europe/Berlin")
    start = ber(2025, 3, 29, 12)
    # Real elapsed time: convert to UTC first, as aware arithmetic in one zone is wall-clock.
    assert add_business_time(berlin, start, 24 * H) == start.astimezone(UTC) + 24 * H
    assert add_business_time(berlin, start, 24 * H) == ber(2025, 3, 30, 13)
    assert business_time_between(berlin, ber(2025, 3, 30), ber(2025, 3, 31)) == 23 * H
    utc = BusinessCalendar.twenty_four_seven()
    start = datetime(2025, 1, 6, 9, 17, 3, 12, tzinfo=UTC)
    assert add_business_time(utc, start, 1000 * H) == start + 1000 * H
    assert add_business_time(utc, start, timedelta(0)) == start


def test_a_thousand_hour_target() -> None:
    # 43.5 working hours a week: Fri 17:00 + 1 h, 22 weeks (957 h), then 42 h from Sat Jun 14.
    cal = default_calendar()
    start = sh(2025, 1, 10, 17)
    due = add_business_time(cal, start, 1000 * H)
    assert due == sh(2025, 6, 20, 16, 30)
    assert business_time_between(cal, start, due) == 1000 * H
    # Day-sized pieces never take the whole-week shortcut: they must agree with it.
    assert _between_day_by_day(cal, start, due) == 1000 * H


def test_exactly_a_week_of_work_ends_at_friday_close() -> None:
    # From Monday midnight a whole week is exactly the target: the answer is the end of its
    # last span, not the next opening (the whole-week shortcut must not swallow it).
    cal = mon_to_fri("Europe/Berlin", ["09:00-17:00"])
    assert add_business_time(cal, ber(2025, 1, 6), 40 * H) == ber(2025, 1, 10, 17)
    assert add_business_time(cal, ber(2025, 1, 6), 80 * H) == ber(2025, 1, 17, 17)


def test_long_targets_across_dst_changes_agree_with_counting_day_by_day() -> None:
    cal = mon_to_fri("Europe/Berlin", ["09:00-17:00"])
    start = ber(2025, 1, 6, 9)
    due = add_business_time(cal, start, 1000 * H)
    # 125 working days of 8 h: the 25th week ends Fri Jun 27 17:00 CEST.
    assert due == ber(2025, 6, 27, 17)
    assert _between_day_by_day(cal, start, due) == 1000 * H
    # A Sunday night shift across the spring change: that week is an hour short. (Not across
    # both changes: the autumn week's extra hour would hide a miscount.)
    night = calendar(timezone="Europe/Berlin", monday=["09:00-17:00"], sunday=["01:00-04:00"])
    end = ber(2025, 6, 30)
    assert business_time_between(night, start, end) == _between_day_by_day(night, start, end)
    due = add_business_time(night, start, 150 * H)
    assert _between_day_by_day(night, start, due) == 150 * H


def test_business_time_between_is_empty_when_b_is_not_after_a() -> None:
    cal = default_calendar()
    assert business_time_between(cal, sh(2025, 1, 7), sh(2025, 1, 6)) == timedelta(0)


def test_is_working() -> None:
    cal = default_calendar()
    assert is_working(cal, sh(2025, 1, 6, 9))
    assert not is_working(cal, sh(2025, 1, 6, 12))
    assert not is_working(cal, sh(2025, 1, 12, 11))  # Sunday


# --- due dates, pauses, legal deadlines, clock states -------------------------------------------


def test_a_pause_extends_the_due_time_by_the_working_time_it_covers() -> None:
    # Mon 11:00, 2 h. Paused 11:30-14:00: 30 min before lunch and 30 min after it are paused.
    cal = default_calendar()
    pause = (sh(2025, 1, 6, 11, 30), sh(2025, 1, 6, 14))
    assert due_at(cal, sh(2025, 1, 6, 11), 2 * H) == sh(2025, 1, 6, 14, 30)
    assert due_at(cal, sh(2025, 1, 6, 11), 2 * H, [pause]) == sh(2025, 1, 6, 15, 30)


def test_overlapping_pauses_count_once_and_pauses_outside_the_clock_count_not() -> None:
    cal = default_calendar()
    start = sh(2025, 1, 6, 11)
    pauses = [
        (sh(2025, 1, 6, 11, 30), sh(2025, 1, 6, 14)),
        (sh(2025, 1, 6, 13), sh(2025, 1, 6, 13, 45)),
        (sh(2025, 1, 5, 9), sh(2025, 1, 5, 18)),  # before the start
        (sh(2025, 1, 7, 9), sh(2025, 1, 7, 18)),  # after the clock fell due
    ]
    assert due_at(cal, start, 2 * H, pauses) == sh(2025, 1, 6, 15, 30)


def test_an_open_pause_needs_now_and_ends_then() -> None:
    cal = default_calendar()
    start = sh(2025, 1, 6, 9)
    pauses = [(sh(2025, 1, 6, 10), None)]
    with pytest.raises(ValueError, match="pause 0 is still open: pass `now`"):
        due_at(cal, start, 2 * H, pauses)
    # One hour worked; if it resumed at 15:00 it would be due an hour later.
    assert due_at(cal, start, 2 * H, pauses, now=sh(2025, 1, 6, 15)) == sh(2025, 1, 6, 16)


def test_the_earlier_of_business_and_legal_deadline_wins() -> None:
    # Mon 09:00 + 24 business hours is Thu 10:30; the 48 h legal limit is Wed 09:00.
    cal = default_calendar()
    start = sh(2025, 1, 6, 9)
    assert due_at(cal, start, 24 * H) == sh(2025, 1, 9, 10, 30)
    assert due_at(cal, start, 24 * H, legal_deadline=start + 48 * H) == sh(2025, 1, 8, 9)
    assert due_at(cal, start, 2 * H, legal_deadline=start + 48 * H) == sh(2025, 1, 6, 11)


def test_clock_states() -> None:
    cal = default_calendar()
    start, target = sh(2025, 1, 6, 9), 2 * H
    due = sh(2025, 1, 6, 11)

    def state(**kw: Any) -> tuple[ClockStatus, datetime]:
        result = clock_state(cal, start=start, target=target, **kw)
        return result.status, result.due_at

    assert state(now=sh(2025, 1, 6, 10)) == (ClockStatus.running, due)
    assert state(now=due) == (ClockStatus.running, due)
    assert state(now=due + US) == (ClockStatus.breached, due)
    assert state(now=sh(2025, 1, 7), met_at=due) == (ClockStatus.met, due)
    assert state(now=sh(2025, 1, 7), met_at=due + MIN) == (ClockStatus.breached, due)
    # Paused since 10:00: one hour left, so due an hour after "now" while it lasts.
    paused = [(sh(2025, 1, 6, 10), None)]
    assert state(now=sh(2025, 1, 6, 15), pauses=paused) == (
        ClockStatus.paused,
        sh(2025, 1, 6, 16),
    )
    # A pause that ended resumes the clock; one that ends later is still on now.
    ended = [(sh(2025, 1, 6, 10), sh(2025, 1, 6, 14))]
    assert state(now=sh(2025, 1, 6, 14, 30), pauses=ended) == (
        ClockStatus.running,
        sh(2025, 1, 6, 15),
    )
    assert state(now=sh(2025, 1, 6, 11, 30), pauses=ended)[0] is ClockStatus.paused
    # A pause does not rescue a clock already breached, nor one past its legal deadline.
    late = [(sh(2025, 1, 6, 12), None)]
    assert state(now=sh(2025, 1, 6, 15), pauses=late) == (ClockStatus.breached, due)
    legal = sh(2025, 1, 6, 10, 30)
    assert state(now=sh(2025, 1, 6, 15), pauses=paused, legal_deadline=legal) == (
        ClockStatus.breached,
        legal,
    )


def test_met_at_after_now_is_refused() -> None:
    cal = default_calendar()
    with pytest.raises(ValueError, match=r"met_at .* is after now"):
        clock_state(
            cal, start=sh(2025, 1, 6, 9), target=H, met_at=sh(2025, 1, 6, 11), now=sh(2025, 1, 6)
        )


def test_elapsed_fraction() -> None:
    cal = default_calendar()
    start, target = sh(2025, 1, 6, 9), 2 * H
    assert elapsed_fraction(cal, start=start, target=target, now=sh(2025, 1, 6, 10, 30)) == 0.75
    # Lunch is not working time: by 13:00 only 09:00-12:00 is used.
    assert elapsed_fraction(cal, start=start, target=target, now=sh(2025, 1, 6, 13)) == 1.5
    paused = [(sh(2025, 1, 6, 9, 30), sh(2025, 1, 6, 10))]
    assert (
        elapsed_fraction(cal, start=start, target=target, pauses=paused, now=sh(2025, 1, 6, 10, 30))
        == 0.5
    )
    open_pause = [(sh(2025, 1, 6, 9, 30), None)]
    assert (
        elapsed_fraction(cal, start=start, target=target, pauses=open_pause, now=sh(2025, 1, 6, 15))
        == 0.25
    )
    met = sh(2025, 1, 6, 10)
    assert elapsed_fraction(cal, start=start, target=target, met_at=met, now=sh(2025, 1, 8)) == 0.5
    assert elapsed_fraction(cal, start=start, target=timedelta(0), now=start) == 1.0


# --- refusals ---------------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    cal = default_calendar()
    naive = datetime(2025, 1, 6, 9)  # noqa: DTZ001 - the point of the test
    aware = sh(2025, 1, 6, 9)
    with pytest.raises(ValueError, match="start is a naive datetime"):
        add_business_time(cal, naive, H)
    with pytest.raises(ValueError, match="b is a naive datetime"):
        business_time_between(cal, aware, naive)
    with pytest.raises(ValueError, match="pause 0 end is a naive datetime"):
        due_at(cal, aware, H, [(aware, naive)])
    with pytest.raises(ValueError, match="legal_deadline is a naive datetime"):
        due_at(cal, aware, H, legal_deadline=naive)
    with pytest.raises(ValueError, match="now is a naive datetime"):
        clock_state(cal, start=aware, target=H, now=naive)
    with pytest.raises(ValueError, match="at is a naive datetime"):
        is_working(cal, naive)


def test_negative_durations_and_backwards_pauses_are_refused() -> None:
    cal = default_calendar()
    start = sh(2025, 1, 6, 9)
    with pytest.raises(ValueError, match="duration is negative"):
        add_business_time(cal, start, -MIN)
    with pytest.raises(ValueError, match="target is negative"):
        due_at(cal, start, -MIN)
    with pytest.raises(ValueError, match="pause 0 ends before it starts"):
        due_at(cal, start, H, [(start + H, start)])


def _refusal(fields: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        BusinessCalendar.model_validate(fields)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return ".".join(str(p) for p in errors[0]["loc"]), errors[0]["msg"]


@pytest.mark.parametrize(
    ("fields", "loc", "reason"),
    [
        (
            {"timezone": "UTC", "monday": ["12:00-09:00"]},
            "monday.0",
            "span 12:00-09:00 ends before or when it starts",
        ),
        (
            {"timezone": "UTC", "tuesday": ["09:00-09:00"]},
            "tuesday.0",
            "span 09:00-09:00 ends before or when it starts",
        ),
        (
            {"timezone": "UTC", "monday": ["09:00-12:00", "11:00-13:00"]},
            "monday",
            "spans 09:00-12:00 and 11:00-13:00 overlap",
        ),
        (
            {"timezone": "Mars/Olympus_Mons", "monday": WEEKDAY},
            "timezone",
            "unknown timezone 'Mars/Olympus_Mons'",
        ),
        (
            {"timezone": "UTC"},
            "",
            "no working time: every weekday from monday to sunday has no spans",
        ),
        (
            {
                "timezone": "UTC",
                "monday": WEEKDAY,
                "holidays": ["2025-10-01"],
                "makeup_days": ["2025-10-01"],
            },
            "makeup_days",
            "2025-10-01 is both a holiday and a make-up day",
        ),
        (
            {"timezone": "UTC", "monday": ["24:00-24:00"]},
            "monday.0.start",
            "24:00 may only end a span",
        ),
        ({"timezone": "UTC", "monday": ["09:00-25:00"]}, "monday.0.end", "'25:00' is not a time"),
        ({"timezone": "UTC", "monday": ["09:00"]}, "monday.0", "is not written HH:MM-HH:MM"),
        ({"timezone": "UTC", "mondays": WEEKDAY}, "mondays", "Extra inputs are not permitted"),
        (
            {"timezone": "UTC", "sunday": WEEKDAY, "makeup_days": ["2025-01-04"]},
            "makeup_days",
            "2025-01-04 has no spans of its own and monday, its default, has none",
        ),
        (
            {
                "timezone": "UTC",
                "monday": WEEKDAY,
                "makeup_days": [{"date": "2025-01-04", "spans": []}],
            },
            "makeup_days.0.spans",
            "a make-up day with no spans is a holiday",
        ),
        (
            {"timezone": "UTC", "monday": WEEKDAY, "makeup_days": ["2025-01-04", "2025-01-04"]},
            "makeup_days",
            "2025-01-04 is listed twice",
        ),
    ],
)
def test_calendar_validation_names_the_field_and_the_reason(
    fields: dict[str, Any], loc: str, reason: str
) -> None:
    got_loc, msg = _refusal(fields)
    assert got_loc == loc
    assert reason in msg


def test_load_calendars_from_toml() -> None:
    raw = tomllib.loads(
        """
        [service]
        timezone = "Asia/Shanghai"
        monday = ["09:00-12:00", "13:30-18:00"]
        friday = [{ start = "09:00", end = "17:00" }]
        holidays = [2025-10-01, 2025-10-02]
        makeup_days = [2025-09-28, { date = 2025-10-11, spans = ["10:00-16:00"] }]

        [logistics]
        timezone = "Europe/Berlin"
        monday = ["08:00-16:00"]
        """
    )
    calendars = load_calendars(raw)
    assert set(calendars) == {"service", "logistics", "default"}
    assert calendars["default"] == default_calendar()
    assert calendar_for(calendars, "logistics").timezone == "Europe/Berlin"
    assert calendar_for(calendars, "finance") == default_calendar()
    service = calendars["service"]
    assert business_time_between(service, sh(2025, 10, 11), sh(2025, 10, 12)) == 6 * H
    assert business_time_between(service, sh(2025, 9, 28), sh(2025, 9, 29)) == 7.5 * H
    # What a calendar dumps, it loads back.
    assert BusinessCalendar.model_validate(service.model_dump()) == service


def test_load_calendars_refuses_the_whole_mapping_naming_calendar_and_field() -> None:
    raw = {"service": default_calendar().model_dump(), "logistics": {"timezone": "Nowhere/Land"}}
    with pytest.raises(InvalidInput) as caught:
        load_calendars(raw)
    assert "logistics.timezone: Value error, unknown timezone 'Nowhere/Land'" in str(caught.value)
    assert caught.value.errors[0]["loc"] == "logistics.timezone"


def test_default_calendar() -> None:
    cal = default_calendar()
    assert cal.timezone == "Asia/Shanghai"
    week = sh(2025, 1, 6)
    assert business_time_between(cal, week, week + timedelta(days=7)) == timedelta(hours=43.5)


# --- properties --------------------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None)
ZONES = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
# DST changes (roughly; random offsets around them do the rest) so the properties meet them.
CHANGES = [
    datetime(2025, 3, 30, 1, tzinfo=UTC),
    datetime(2025, 10, 26, 1, tzinfo=UTC),
    datetime(2025, 3, 9, 7, tzinfo=UTC),
    datetime(2025, 11, 2, 6, tzinfo=UTC),
    datetime(2025, 4, 5, 15, tzinfo=UTC),
    datetime(2025, 10, 4, 15, 30, tzinfo=UTC),
]


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def day_spans(draw: st.DrawFn) -> list[str]:
    # Quarter-hour boundaries, so spans regularly start or end inside a skipped DST hour.
    points = sorted(draw(st.lists(st.integers(0, 96), unique=True, max_size=6)))
    pairs = zip(points[0::2], points[1::2], strict=False)
    return [f"{_hhmm(a * 15)}-{_hhmm(b * 15)}" for a, b in pairs]


DAY_SPANS = day_spans()
MAKEUP_SPANS = st.none() | DAY_SPANS.filter(bool)
DATES = st.dates(date(2024, 12, 1), date(2026, 3, 31))


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    week = {name: draw(DAY_SPANS) for name in WEEKDAYS}
    if not any(week.values()):
        week["wednesday"] = ["10:00-11:00"]
    holidays = draw(st.lists(DATES, max_size=20, unique=True))
    makeup: list[Any] = []
    for day in draw(st.lists(DATES, max_size=6, unique=True)):
        if day in holidays:
            continue
        spans = draw(MAKEUP_SPANS)
        if spans is None and not week["monday"]:
            spans = ["09:00-10:00"]
        makeup.append(day if spans is None else {"date": day, "spans": spans})
    return calendar(
        timezone=draw(st.sampled_from(ZONES)), **week, holidays=holidays, makeup_days=makeup
    )


instants = st.one_of(
    # Hypothesis wants naive bounds and attaches the timezone itself.
    st.datetimes(
        datetime(2025, 1, 1),  # noqa: DTZ001
        datetime(2025, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.builds(
        lambda at, seconds: at + timedelta(seconds=seconds),
        st.sampled_from(CHANGES),
        st.integers(-4 * 86400, 4 * 86400),
    ),
)
durations = st.one_of(
    st.just(timedelta(0)),
    st.builds(timedelta, seconds=st.integers(0, 12 * 3600), microseconds=st.integers(0, 999_999)),
    st.builds(timedelta, minutes=st.integers(0, 300 * 60)),
)
positive_durations = durations.filter(lambda d: d > timedelta(0))


def _between_day_by_day(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    total, cursor = timedelta(0), a
    while cursor < b:
        step = min(cursor + timedelta(days=1), b)
        total += business_time_between(cal, cursor, step)
        cursor = step
    return total


@FAST
@given(calendars(), instants, durations)
def test_business_time_between_undoes_add_business_time(
    cal: BusinessCalendar, start: datetime, d: timedelta
) -> None:
    due = add_business_time(cal, start, d)
    assert due >= start
    assert business_time_between(cal, start, due) == d
    # The whole-week shortcut agrees with counting day by day.
    assert _between_day_by_day(cal, start, due) == d


@FAST
@given(calendars(), instants, positive_durations)
def test_a_positive_due_time_is_never_inside_closed_time(
    cal: BusinessCalendar, start: datetime, d: timedelta
) -> None:
    due = add_business_time(cal, start, d)
    # Within an open span or at its very end: the microsecond before it was working time.
    assert is_working(cal, due - US)


@FAST
@given(calendars(), instants)
def test_a_zero_target_is_due_at_the_next_open_instant(
    cal: BusinessCalendar, start: datetime
) -> None:
    due = add_business_time(cal, start, timedelta(0))
    assert is_working(cal, due)
    assert business_time_between(cal, start, due) == timedelta(0)


@FAST
@given(calendars(), instants, durations, durations)
def test_due_times_are_monotonic_in_the_target(
    cal: BusinessCalendar, start: datetime, d1: timedelta, d2: timedelta
) -> None:
    small, large = sorted((d1, d2))
    assert add_business_time(cal, start, small) <= add_business_time(cal, start, large)
    pauses = [(start + timedelta(hours=3), start + timedelta(hours=30))]
    assert due_at(cal, start, small, pauses) <= due_at(cal, start, large, pauses)


@FAST
@given(
    calendars(),
    instants,
    positive_durations,
    st.floats(0, 1, exclude_max=True),
    st.integers(0, 7 * 24 * 3600),
)
def test_pausing_moves_the_due_time_by_exactly_the_paused_working_time(
    cal: BusinessCalendar, start: datetime, target: timedelta, where: float, length: int
) -> None:
    due = due_at(cal, start, target)
    # Rounding to microseconds could land on `due` itself; the pause must begin before it.
    pause_start = min(start + (due - start) * where, due - US)
    pause_end = pause_start + timedelta(seconds=length)
    paused = business_time_between(cal, pause_start, pause_end)
    moved = due_at(cal, start, target, [(pause_start, pause_end)])
    assert business_time_between(cal, due, moved) == paused
    if paused:
        assert moved == add_business_time(cal, due, paused)
    else:
        assert moved == due
    # At the moved due time the whole target is used, and not a microsecond before.
    clock: dict[str, Any] = {
        "start": start,
        "target": target,
        "pauses": [(pause_start, pause_end)],
    }
    if moved >= pause_end:
        assert elapsed_fraction(cal, **clock, now=moved) == 1.0
        assert clock_state(cal, **clock, now=moved).status is ClockStatus.running
        assert clock_state(cal, **clock, now=moved + US).status is ClockStatus.breached


@FAST
@given(calendars(), instants)
def test_is_working_agrees_with_business_time(cal: BusinessCalendar, at: datetime) -> None:
    assert (business_time_between(cal, at, at + US) == US) is is_working(cal, at)
