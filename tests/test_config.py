"""The policy file: the example loads as the defaults; a bad file is refused with the reason."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import NOW
from tickets.context import Context
from tickets.exceptions import InvalidInput
from tickets.policy.rules import Policy, load_policy
from tickets.self_service import pickup_slots

ROOT = Path(__file__).resolve().parent.parent


def test_example_file_equals_the_defaults() -> None:
    assert load_policy(ROOT / "policy.example.toml") == Policy()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('default_group = "nobody"', "default_group 'nobody' is not one of the groups"),
        ("[risk.duplicate_request]\nminutes = -5", "risk.duplicate_request.minutes"),
        ('[eligibility.evidence]\nphoto_reasons = ["because"]', "unknown reasons"),
        ("[sla.clocks.review]\nhours = 0", "sla.clocks.review.hours"),
        ('[sla.calendars.default]\ntimezone = "Mars/Olympus"', "Mars/Olympus"),
        ("colour = 3", "colour: Extra inputs are not permitted"),
        ("this is not toml", "not valid TOML"),
        ('[pickup]\nam = ["12:00:00", "09:00:00"]', "pickup.am: the slot must end after it starts"),
        ("[pickup]\ndays = 0", "pickup.days"),
    ],
)
def test_bad_policy_is_refused_with_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        load_policy(path)
    assert expected in err.value.message


def test_pickup_slots_follow_the_policy(tmp_path: Path) -> None:
    """A shop whose courier comes 08:00-11:30 and 13:00-17:00 offers those, for two days."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[pickup]\ndays = 2\nam = ["08:00:00", "11:30:00"]\npm = ["13:00:00", "17:00:00"]',
        encoding="utf-8",
    )
    policy = load_policy(path)
    ctx = Context(policy=policy, now=NOW, tz=ZoneInfo("Asia/Shanghai"))
    slots = pickup_slots(SimpleNamespace(group="service"), ctx)  # type: ignore[arg-type]
    # NOW is Sunday 22 Nov in Shanghai: Monday and Tuesday, each morning and afternoon.
    assert [s.value for s in slots] == [
        "2026-11-23 08:00-11:30",
        "2026-11-23 13:00-17:00",
        "2026-11-24 08:00-11:30",
        "2026-11-24 13:00-17:00",
    ]
