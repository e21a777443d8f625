"""Working days: the promised completion date of a filing (办理时限 counts working days, not calendar days)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection


def add_working_days(start: dt.date, days: int, holidays: Collection[dt.date] = ()) -> dt.date:
    """The date `days` working days after `start` (Monday-Friday, minus `holidays`); 0 is `start` itself."""
    if days < 0:
        raise ValueError("days must be >= 0")
    d = start
    left = days
    while left:
        d += dt.timedelta(days=1)
        if d.weekday() < 5 and d not in holidays:
            left -= 1
    return d
