"""Reading a sealed range as two running totals and a few days: which rows to add and subtract.

The rollup keeps, besides one row set per sealed day, **checkpoints**: running totals of
every day from the first sealed one through the end of each month, and through the last
sealed day. A range's sum is then the difference of two running totals,

    sum(a … b) = total(through b) − total(through a − 1),

where each total is taken at the nearest checkpoint and corrected by the days between
(added, or subtracted when the checkpoint lies past the boundary). A year is two
checkpoints and at most half a month of days at each end, instead of 365 days of rows;
a week is just its days. `plan` picks whichever reads fewer rows.

Running totals before the first sealed day are empty (there was nothing to count), so a
range that starts there needs only one checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from portal.analytics.periods import Period

# Rows in a checkpoint, in days of rows: a running total has a row per annotator and
# time-on-task step ever seen (about 130 steps), one day about 16 of them.
CHECKPOINT_COST_DAYS = 8
ONE_DAY = timedelta(days=1)


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - ONE_DAY


@dataclass(frozen=True)
class Sealed:
    """The days the rollup holds: `first_day` (the first with anything to count) to `last_day`."""

    first_day: date
    last_day: date

    def is_empty(self, day: date) -> bool:
        """The running total through `day` is nothing: `day` is before the first sealed day."""
        return day < self.first_day

    def has_checkpoint(self, day: date) -> bool:
        """A running total through `day` is stored (or empty)."""
        return self.is_empty(day) or day == self.last_day or (day < self.last_day and day == month_end(day))

    def checkpoints_in(self, added: Period) -> list[date]:
        """The checkpoints a refresh that sealed `added` (ending at `last_day`) must write."""
        ends = []
        end = month_end(added.first_day)
        while end < added.last_day:
            ends.append(end)
            end = month_end(end + ONE_DAY)
        return [*ends, added.last_day]


@dataclass(frozen=True)
class Term:
    """One part of a sum: a checkpoint's rows or some days' rows, added (+1) or subtracted (−1)."""

    sign: int
    checkpoint: date | None = None
    days: Period | None = None


def _nearest(day: date, sealed: Sealed) -> date:
    """The checkpoint nearest to `day` (`day` itself if it is one; a tie goes to the earlier).

    The end of the month before is always one (stored, or empty before the first sealed
    day); so may be the end of `day`'s month and the last sealed day.
    """
    if sealed.has_checkpoint(day):
        return day
    candidates = [day.replace(day=1) - ONE_DAY]
    candidates += [later for later in (month_end(day), sealed.last_day) if day < later <= sealed.last_day]
    return min(candidates, key=lambda checkpoint: (abs((checkpoint - day).days), checkpoint))


def _towards(boundary: date, checkpoint: date, sign: int) -> list[Term]:
    """The days that turn the running total at `checkpoint` into the one at `boundary`."""
    if checkpoint < boundary:
        return [Term(sign, days=Period(checkpoint + ONE_DAY, boundary))]
    if checkpoint > boundary:
        return [Term(-sign, days=Period(boundary + ONE_DAY, checkpoint))]
    return []


def plan(period: Period, sealed: Sealed) -> list[Term]:
    """The terms whose signed sum is the sum over `period` (all of it sealed)."""
    before = period.first_day - ONE_DAY
    high, low = _nearest(period.last_day, sealed), _nearest(before, sealed)
    stored = [
        Term(sign, checkpoint=checkpoint)
        for sign, checkpoint in ((1, high), (-1, low))
        if not sealed.is_empty(checkpoint) and high != low
    ]
    edges = _towards(period.last_day, high, 1) + _towards(before, low, -1)
    cost = CHECKPOINT_COST_DAYS * len(stored) + sum(term.days.days for term in edges if term.days)
    if period.days <= cost:
        return [Term(1, days=period)]
    return stored + edges
