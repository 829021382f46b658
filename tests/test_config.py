"""The policy file: the example loads as the defaults; a bad file is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickets.config import Policy, load_policy
from tickets.exceptions import InvalidInput

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
    ],
)
def test_bad_policy_is_refused_with_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        load_policy(path)
    assert expected in err.value.message
