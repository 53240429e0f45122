"""Business hours: when people answer visitors (`BUSINESS_HOURS`, in `BUSINESS_HOURS_TZ`).

The format is a `;`-separated list of day ranges with their opening times, in the business's
own time zone (so daylight saving is handled by the zone, not by the operator):

    mon-fri 09:00-17:30; sat 10:00-14:00

Days are `mon` … `sun`; a range may wrap (`fri-mon`); `24:00` closes at midnight; a day may
appear in several parts (`mon 09:00-12:00; mon 13:00-17:00`). Empty means always open. A
malformed value stops the server at startup with the part that is wrong, not at the first
visitor who asks for a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"^(?P<first>[a-z]{3})(?:-(?P<last>[a-z]{3}))?\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    """Open on weekday `day` (0 = Monday) from `start` (inclusive) to `end` minutes (exclusive)."""

    day: int
    start: int  # minutes after midnight
    end: int


def _minutes(text: str, *, closing: bool) -> int:
    hours, minutes = int(text[:2]), int(text[3:])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not closing)):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 24:00)")
    return hours * 60 + minutes


def parse(spec: str) -> tuple[Window, ...]:
    """The windows of `spec`; ValueError naming the part that is wrong."""
    windows: list[Window] = []
    for raw_part in spec.split(";"):
        part = " ".join(raw_part.strip().lower().split())
        if not part:
            continue
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"{raw_part.strip()!r} is not like 'mon-fri 09:00-17:30'")
        first, last = match["first"], match["last"] or match["first"]
        for day in (first, last):
            if day not in DAYS:
                raise ValueError(f"{day!r} in {raw_part.strip()!r} is not one of {', '.join(DAYS)}")
        start, end = _minutes(match["start"], closing=False), _minutes(match["end"], closing=True)
        if end <= start:
            raise ValueError(f"{raw_part.strip()!r} closes before it opens")
        day, stop = DAYS.index(first), DAYS.index(last)
        while True:
            windows.append(Window(day=day, start=start, end=end))
            if day == stop:
                break
            day = (day + 1) % 7
    return tuple(windows)


def is_open(windows: tuple[Window, ...], at: datetime, zone: ZoneInfo) -> bool:
    """Whether `at` (aware) falls in one of `windows`, read in `zone`; always open without windows."""
    if not windows:
        return True
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    return any(w.day == local.weekday() and w.start <= minute < w.end for w in windows)


def as_time(minutes: int) -> time:
    """A window bound as a `time` (24:00 as 23:59:59.999999), for display."""
    return time.max if minutes >= 24 * 60 else time(minutes // 60, minutes % 60)
