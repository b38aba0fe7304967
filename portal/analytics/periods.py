"""Periods of whole UTC days, and the runs of days a period's time series is counted in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# Over longer periods the page's time series (tasks done per vendor, the sparklines) count
# weeks rather than days: a year of daily bars is thinner than a pixel, and a year of days
# per annotator is 70,000 numbers to fetch and draw. The per-day CSVs stay per day.
DAILY_SERIES_MAX_DAYS = 62
WEEK = 7


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `first_day` to `last_day`, both included."""

    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period (exclusive bound)."""
        return datetime.combine(self.last_day + timedelta(days=1), time(0), tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def day_list(self) -> list[date]:
        return [self.first_day + timedelta(days=offset) for offset in range(self.days)]

    @property
    def buckets(self) -> Buckets:
        """The points of the page's time series: days, or weeks over long periods."""
        return Buckets(self.first_day, self.last_day, WEEK if self.days > DAILY_SERIES_MAX_DAYS else 1)

    def as_args(self) -> dict[str, str]:
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}


@dataclass(frozen=True)
class Buckets:
    """Runs of `size` days from `first_day` to `last_day`, aligned on the end: the last run
    (the latest week, the one a supervisor looks at first) is whole, the first may be shorter."""

    first_day: date
    last_day: date
    size: int

    @property
    def anchor(self) -> date:
        """Where the first run would start if it were whole (on or before `first_day`)."""
        missing = -((self.last_day - self.first_day).days + 1) % self.size
        return self.first_day - timedelta(days=missing)

    def of(self, day: date) -> date:
        """The first day of the run `day` falls in."""
        run = (day - self.anchor).days // self.size
        return max(self.first_day, self.anchor + timedelta(days=run * self.size))

    def starts(self) -> list[date]:
        """The first day of every run, in order (the index of a run is its position here)."""
        runs = ((self.last_day - self.anchor).days + 1) // self.size
        return [max(self.first_day, self.anchor + timedelta(days=run * self.size)) for run in range(runs)]
