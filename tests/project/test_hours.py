"""project.hours: the BUSINESS_HOURS format, read in the business's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from project.hours import Window, is_open, parse

BERLIN = ZoneInfo("Europe/Berlin")


def test_day_ranges_expand_to_one_window_per_day_and_may_wrap_the_week() -> None:
    assert parse("mon-wed 09:00-17:30") == tuple(Window(day=d, start=540, end=1050) for d in (0, 1, 2))
    assert [w.day for w in parse("fri-mon 10:00-12:00")] == [4, 5, 6, 0]
    assert parse(" SAT   10:00-24:00 ;; ") == (Window(day=5, start=600, end=1440),)
    assert parse("") == ()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mon-fry 09:00-17:00", "'fry'"),
        ("monday 09:00-17:00", "is not like"),
        ("mon 9:00-17:00", "is not like"),
        ("mon 17:00-09:00", "closes before it opens"),
        ("mon 09:00-09:00", "closes before it opens"),
        ("mon 09:60-10:00", "'09:60'"),
        ("mon 24:00-24:00", "'24:00' is not a time"),
        ("mon 09:00-24:01", "'24:01'"),
    ],
)
def test_a_malformed_spec_names_the_part_that_is_wrong(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        parse(spec)


def test_open_is_read_in_the_business_time_zone_across_daylight_saving() -> None:
    windows = parse("mon-fri 09:00-17:00")
    # Monday 2026-03-23 (CET, UTC+1) and Monday 2026-03-30 (CEST, UTC+2): 08:30 UTC is 09:30 / 10:30 there.
    assert is_open(windows, datetime(2026, 3, 23, 8, 30, tzinfo=UTC), BERLIN)
    assert is_open(windows, datetime(2026, 3, 30, 14, 59, tzinfo=UTC), BERLIN)  # 16:59 CEST
    assert not is_open(windows, datetime(2026, 3, 30, 15, 0, tzinfo=UTC), BERLIN)  # 17:00 CEST: closed
    assert not is_open(windows, datetime(2026, 3, 23, 7, 59, tzinfo=UTC), BERLIN)  # 08:59 CET
    assert not is_open(windows, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), BERLIN)  # a Saturday
    # Sunday 23:30 UTC is already Monday 00:30 in Berlin.
    assert is_open(parse("mon 00:00-01:00"), datetime(2026, 3, 22, 23, 30, tzinfo=UTC), BERLIN)


def test_no_hours_means_always_open() -> None:
    assert is_open((), datetime(2026, 3, 28, 3, 0, tzinfo=UTC), BERLIN)
