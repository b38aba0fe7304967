"""Keeping the dashboard rollup up to date: seal the days whose figures can no longer change.

A day is sealed once it is over and nothing that happens later can change a figure dated
on it (see `portal.analytics.models`). Two things could:

* a transaction that stamped a row just before midnight and commits just after: the day
  is sealed only `SEAL_DELAY` after its end, far longer than any request takes;
* a lease still live: whether it will run out is not known yet, and it is counted on the
  day it was taken. Days from the oldest live lease's on wait (a lease left renewing over
  a weekend holds the line back, and the page reads more days live meanwhile).

Everything else a figure reads is fixed when the row is written: a submission's timing,
listening, WER and gold scores, its clip's length, a decision (dated by `reviewed_at`, and
counted by its reviewer, which erasure does not undo), a lease's start.

`refresh` seals every sealable day after the last sealed one, in the caller's
transaction, under the state row's lock: the dashboard calls it before reading, so after
midnight the first page view adds the new day (a few thousand rows), and the first view
after installing adds the whole history once. `rebuild` starts again from nothing: for
rows written behind the portal's back (a restored backup of older data, a bulk load).
`flask dashboard refresh [--rebuild]` runs either from a shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from portal.analytics.checkpoints import Sealed
from portal.analytics.models import (
    FIGURES,
    ROLLUP_ID,
    DashboardDay,
    DashboardHour,
    DashboardRatio,
    DashboardRatioTotal,
    DashboardRollup,
    DashboardTotal,
)
from portal.analytics.periods import Period
from portal.analytics.services import lease_expired, ratio_steps, sealed_days, within
from portal.analytics.sql import Unit, day_of, time_bucket
from portal.clips.models import Clip
from portal.extensions import db
from portal.tasks.models import Submission, SubmissionStatus, TaskLease

SEAL_DELAY = timedelta(minutes=15)
ROLLUP_TABLES = (DashboardDay, DashboardRatio, DashboardHour, DashboardTotal, DashboardRatioTotal)


@dataclass(frozen=True)
class Refresh:
    """What a refresh sealed: the days added (None if none) and the rollup's new end."""

    added: Period | None
    sealed_through: date


def seal_limit(now: datetime) -> date:
    """The last day that may be sealed at `now`: over for `SEAL_DELAY`, and before the day
    the oldest live lease was taken."""
    limit = (now - SEAL_DELAY).date() - timedelta(days=1)
    # The few live leases first, from `ix_task_leases_live` (a MATERIALIZED CTE): asked for
    # MIN(leased_at) directly, SQLite's planner walks every lease ever taken in
    # `leased_at` order looking for the first live one.
    live = (
        sa.select(TaskLease.leased_at)
        .where(TaskLease.ended_at.is_(None), TaskLease.expires_at > now)
        .cte("live")
        .prefix_with("MATERIALIZED")
    )
    oldest_live = db.session.scalar(sa.select(sa.func.min(live.c.leased_at)))
    if oldest_live is not None:
        limit = min(limit, oldest_live.date() - timedelta(days=1))
    return limit


def _lock_state() -> DashboardRollup:
    return db.session.execute(
        sa.select(DashboardRollup)
        .where(DashboardRollup.id == ROLLUP_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def refresh(now: datetime) -> Refresh:
    """Seal every sealable day after the last sealed one. The caller commits.

    Most calls (every page view) find nothing new: that is answered without the lock, so
    page views do not queue behind each other. Otherwise the state row is locked and read
    again: a second refresh waits, then finds the days sealed.
    """
    limit = seal_limit(now)
    known = sealed_days()
    if known is not None and limit <= known.last_day:
        return Refresh(None, known.last_day)
    state = _lock_state()
    sealed = state.sealed_through
    if sealed is not None and limit <= sealed:
        return Refresh(None, sealed)
    if sealed is None or state.sealed_from is None:
        state.sealed_from = _first_day(limit)
    first = sealed + timedelta(days=1) if sealed is not None else state.sealed_from
    if first <= limit:
        added = Period(first, limit)
        _add_days(added, now)
        _add_checkpoints(Sealed(state.sealed_from, limit), added, sealed)
    state.sealed_through = limit
    state.refreshed_at = now
    db.session.flush()
    return Refresh(Period(first, limit) if first <= limit else None, limit)


def rebuild(now: datetime) -> Refresh:
    """Forget every sealed day and seal them again from the rows. The caller commits."""
    state = _lock_state()
    for table in ROLLUP_TABLES:
        db.session.execute(sa.delete(table))
    state.sealed_from = state.sealed_through = None
    db.session.flush()
    return refresh(now)


def _first_day(limit: date) -> date:
    """The first day with anything to count: every figure's row comes after a lease."""
    first = db.session.scalar(sa.select(sa.func.min(TaskLease.leased_at)))
    return first.date() if first is not None else limit + timedelta(days=1)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _add_days(days: Period, now: datetime) -> None:
    """Add the figures of `days` (all sealable) to the day-level tables."""
    dialect = _dialect()
    day = day_of(Submission.created_at, dialect)
    timed = sa.and_(within(Submission.created_at, days), Clip.duration_ms > 0)
    db.session.execute(
        sa.insert(DashboardRatio).from_select(
            ["day", "vendor_id", "user_id", "step", "done"],
            sa.select(day, Submission.vendor_id, Submission.user_id, ratio_steps(), sa.func.count())
            .join(Clip, Clip.id == Submission.clip_id)
            .where(timed)
            .group_by(day, Submission.vendor_id, Submission.user_id, ratio_steps()),
        )
    )
    hour = time_bucket(Submission.created_at, Unit.HOUR_OF_DAY, dialect)
    db.session.execute(
        sa.insert(DashboardHour).from_select(
            ["day", "hour", "vendor_id", "done"],
            sa.select(day, hour, Submission.vendor_id, sa.func.count())
            .where(within(Submission.created_at, days))
            .group_by(day, hour, Submission.vendor_id),
        )
    )
    rows = _day_rows(days, now, dialect)
    if rows:
        db.session.execute(sa.insert(DashboardDay), list(rows.values()))


def _zero_day(day: date, vendor_id: int | None, user_id: int) -> dict[str, Any]:
    """A `DashboardDay` row with nothing counted yet."""
    zero: dict[str, Any] = {name: 0.0 if name.endswith("_sum") else 0 for name in FIGURES}
    return {"day": day, "vendor_id": vendor_id, "user_id": user_id, **zero}


def _as_day(value: Any) -> date:
    """A day as the driver hands back `day_of`: a date on PostgreSQL, text on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _day_rows(
    days: Period, now: datetime, dialect: str
) -> dict[tuple[date, int | None, int], dict[str, Any]]:
    """One `DashboardDay` row per (day, vendor, annotator) with anything to count in `days`.

    The same definitions as the live figures of `portal.analytics.services`: rubber stamps
    and gold only over clips with a length (as the quality scan joins them), "faster than
    the clip" as time on task below the clip's length (the ratio steps below 1×).
    """
    rows: dict[tuple[date, int | None, int], dict[str, Any]] = {}

    def at(day: Any, vendor_id: int | None, user_id: int) -> dict[str, Any]:
        key = (_as_day(day), vendor_id, user_id)
        row = rows.get(key)
        if row is None:
            row = rows[key] = _zero_day(*key)
        return row

    def count_if(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((sa.and_(*conditions), 1), else_=0))

    timed = Clip.duration_ms > 0
    unedited = sa.and_(timed, Submission.wer == 0)
    fast = Submission.time_on_task_ms < Clip.duration_ms
    unheard = Submission.fully_heard.is_(False)
    gold = sa.case((timed, Submission.gold_wer))
    day = day_of(Submission.created_at, dialect)
    submitted = (
        sa.select(
            day,
            Submission.vendor_id,
            Submission.user_id,
            sa.func.count(),
            sa.func.count(sa.distinct(time_bucket(Submission.created_at, Unit.HOUR, dialect))),
            count_if(unedited),
            count_if(unedited, fast),
            count_if(unedited, unheard),
            count_if(unedited, sa.or_(fast, unheard)),
            sa.func.count(gold),
            sa.func.sum(gold),
            sa.func.sum(sa.case((timed, Submission.gold_cer))),
        )
        .join(Clip, Clip.id == Submission.clip_id)
        .where(within(Submission.created_at, days))
        .group_by(day, Submission.vendor_id, Submission.user_id)
    )
    for (
        when,
        vendor_id,
        user_id,
        done,
        hours,
        plain,
        quick,
        unlistened,
        flagged,
        scored,
        wer,
        cer,
    ) in db.session.connection().execute(submitted):
        row = at(when, vendor_id, user_id)
        row.update(
            done=done,
            active_hours=hours,
            unedited=plain or 0,
            fast=quick or 0,
            unheard=unlistened or 0,
            flagged=flagged or 0,
            gold_scored=scored,
            gold_wer_sum=float(wer or 0),
            gold_cer_sum=float(cer or 0),
        )
    reviewed = day_of(Submission.reviewed_at, dialect)
    decided = (
        sa.select(
            reviewed,
            Submission.vendor_id,
            Submission.user_id,
            sa.func.count(),
            count_if(Submission.status == SubmissionStatus.REJECTED),
        )
        .where(within(Submission.reviewed_at, days), Submission.reviewer_id.is_not(None))
        .group_by(reviewed, Submission.vendor_id, Submission.user_id)
    )
    for when, vendor_id, user_id, count, rejected in db.session.connection().execute(decided):
        at(when, vendor_id, user_id).update(decided=count, rejected=rejected or 0)
    leased = day_of(TaskLease.leased_at, dialect)
    leases = (
        sa.select(
            leased, TaskLease.vendor_id, TaskLease.user_id, sa.func.count(), count_if(lease_expired(now))
        )
        .where(within(TaskLease.leased_at, days))
        .group_by(leased, TaskLease.vendor_id, TaskLease.user_id)
    )
    for when, vendor_id, user_id, taken, expired in db.session.connection().execute(leases):
        at(when, vendor_id, user_id).update(leases_taken=taken, leases_expired=expired or 0)
    return rows


def _add_checkpoints(sealed: Sealed, added: Period, previous: date | None) -> None:
    """Write the running totals through each month's end in `added` and through its last day.

    Each is the one before it plus the days between. The previous refresh's last day stays
    a checkpoint only if it ended a month; otherwise it is dropped once the new ones are built
    (it was their starting point).
    """
    base = previous
    for through in sealed.checkpoints_in(added):
        days = Period(base + timedelta(days=1) if base is not None else sealed.first_day, through)
        _add_checkpoint(DashboardTotal, DashboardDay, FIGURES, through, base, days, keys=())
        _add_checkpoint(DashboardRatioTotal, DashboardRatio, ("done",), through, base, days, keys=("step",))
        base = through
    if previous is not None and not sealed.has_checkpoint(previous):
        for table in (DashboardTotal, DashboardRatioTotal):
            db.session.execute(sa.delete(table).where(table.through == previous))


def _add_checkpoint(
    total: Any,
    daily: Any,
    figures: tuple[str, ...],
    through: date,
    base: date | None,
    days: Period,
    keys: tuple[str, ...],
) -> None:
    """INSERT the running total through `through`: the one through `base` plus `days`."""
    key_names = ("vendor_id", "user_id", *keys)

    def part(table: Any, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return sa.select(*(getattr(table, name) for name in (*key_names, *figures))).where(*conditions)

    parts = [part(daily, daily.day >= days.first_day, daily.day <= days.last_day)]
    if base is not None:
        parts.append(part(total, total.through == base))
    rows = sa.union_all(*parts).subquery()
    db.session.execute(
        sa.insert(total).from_select(
            ["through", *key_names, *figures],
            sa.select(
                sa.literal(through, sa.Date),
                *(rows.c[name] for name in key_names),
                *(sa.func.sum(rows.c[name]) for name in figures),
            ).group_by(*(rows.c[name] for name in key_names)),
        )
    )
