"""The supervisor dashboard's figures: one function per figure, each aggregated in SQL.

The three figures that need each submission's clip (time on task over clip length, rubber
stamps, gold scores) come from one grouped scan, `quality`, so that the page joins the
submissions to their clips once; `time_on_task`, `rubber_stamps` and `gold_scores` are
that scan's projections.

Every figure is scoped in its query: a vendor supervisor's `Scope` carries their vendor and
each statement filters on the vendor column of the rows it counts (the submission's, the
lease's, or the clip's vendor pool), so another vendor's rows never leave the database.
Internal supervisors (vendor NULL) see every vendor, or one they pick.

Time is UTC. A period is a range of whole UTC days, both ends included. Figures keyed by
annotator are grouped in SQL at that level (vendor, user); `summaries_by` adds them up
to vendor or overall in Python (each figure's value supports `+`): one pass over at most a
few hundred rows instead of another scan of the submissions.

Definitions (see docs/dashboard.md):

* done: submissions created in the period (gold, later rejected or withdrawn ones too: the
  annotator did the work);
* time on task relative to clip length: `time_on_task_ms / duration_ms`, floored to a
  multiple of 0.05 in SQL and capped at 10; median and p90 are nearest-rank percentiles of
  those values, so both databases give exactly the same answer;
* rejection rate: of the submissions a supervisor decided in the period (by
  `reviewed_at`; automatic acceptances are not decisions), the share rejected;
* gold WER/CER: mean `gold_wer`/`gold_cer` of gold submissions created in the period;
* leases expired: of the leases taken in the period, those that ran out unrenewed
  (`expires_at` passed while the lease was still open), noticed by a later claim or not;
* rubber stamp: a submission without edits (`wer == 0`: the correction equals the machine
  transcript after normalisation) that was sent faster than the clip's own length or
  without the whole clip heard.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from portal.analytics import checkpoints
from portal.analytics.checkpoints import Sealed, Term
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
from portal.analytics.periods import Buckets, Period
from portal.analytics.sql import Unit, bucket_start, days_since, time_bucket
from portal.auth.models import User, Vendor
from portal.clips.models import Clip, ClipStatus
from portal.exceptions import AccessDenied, PortalError
from portal.extensions import db
from portal.tasks.models import ClipVendor, Submission, SubmissionStatus, Task, TaskLease, TaskStatus

DEFAULT_DAYS = 7
MAX_DAYS = 366
# Time on task over clip length is counted in steps of RATIO_STEP_PERCENT (floored), and
# beyond ten times the clip's length as ten times: a lease left open over lunch says nothing
# more about the work than "very slow". Both bound the number of distinct values, and so
# the rows the percentile query returns (at most 200 per annotator).
RATIO_STEP_PERCENT = 5
RATIO_CAP_PERCENT = 1000
# Hourly charts beyond this many days would draw thousands of bars; longer periods show
# the hour-of-day profile instead (the hourly CSV is always available).
HOURLY_CHART_MAX_DAYS = 31
FLAGGED_ON_PAGE = 25
INTERNAL = "internal"


class FilterError(PortalError):
    """The dashboard's filters cannot be understood; the message says which and why."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__("bad_filter", message)


# --- the filters: period and scope -----------------------------------------------------------


def within(column: Any, period: Period) -> sa.ColumnElement[bool]:
    """`column` falls in `period` (half-open, so an index range scan serves it)."""
    return sa.and_(column >= period.start, column < period.end)


def _parse_day(raw: str, name: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"The {name} date must be a date like 2026-11-30, not “{raw[:40]}”.") from None


def parse_period(raw_from: str | None, raw_to: str | None, today: date) -> Period:
    """Read the `from` and `to` filters (YYYY-MM-DD, both optional) into a Period.

    Missing ends default to the last `DEFAULT_DAYS` days up to today. Refused with a
    FilterError: a malformed date, a start after the end, a period longer than
    `MAX_DAYS`, or an end after today (the dashboard reports what happened).
    """
    raw_from = (raw_from or "").strip()
    raw_to = (raw_to or "").strip()
    last_day = _parse_day(raw_to, "end") if raw_to else today
    first_day = _parse_day(raw_from, "start") if raw_from else last_day - timedelta(days=DEFAULT_DAYS - 1)
    if last_day > today:
        raise FilterError(
            f"The end date {last_day.isoformat()} is in the future; today is {today.isoformat()} (UTC)."
        )
    if first_day > last_day:
        raise FilterError("The start date is after the end date.")
    period = Period(first_day, last_day)
    if period.days > MAX_DAYS:
        raise FilterError(f"Choose at most {MAX_DAYS} days; this range has {period.days}.")
    return period


@dataclass(frozen=True)
class Scope:
    """Whose numbers a supervisor sees: one vendor, or every vendor (`vendor_id` None)."""

    vendor_id: int | None
    vendor_name: str | None = None
    # A vendor supervisor's scope is fixed; an internal one may have narrowed it.
    fixed: bool = False

    def covers(self, vendor_column: Any) -> sa.ColumnElement[bool]:
        """The WHERE clause that keeps rows of this scope's vendor (or every row)."""
        if self.vendor_id is None:
            return sa.true()
        return vendor_column == self.vendor_id

    def as_args(self) -> dict[str, str]:
        return {"vendor": str(self.vendor_id)} if self.vendor_id is not None and not self.fixed else {}


def scope_for(supervisor: User, requested_vendor: str | None) -> Scope:
    """The scope of `supervisor`'s dashboard, narrowed to `requested_vendor` (an id) if asked.

    A vendor supervisor always gets their own vendor. Asking for another vendor (by id,
    existing or not) is an attempt to see another vendor's numbers: AccessDenied, which
    the error handler audits. An internal supervisor may pick any vendor; an unknown id is
    a FilterError.
    """
    requested = (requested_vendor or "").strip()
    if supervisor.vendor_id is not None:
        if requested and requested != str(supervisor.vendor_id):
            raise AccessDenied(
                "vendor supervisor asked for another vendor's dashboard", target=f"vendor:{requested[:40]}"
            )
        return Scope(supervisor.vendor_id, supervisor.vendor_name, fixed=True)
    if not requested:
        return Scope(None)
    if not requested.isdigit():
        raise FilterError("Pick a vendor from the list.")
    vendor = db.session.get(Vendor, int(requested))
    if vendor is None:
        raise FilterError("There is no such vendor.")
    return Scope(vendor.id, vendor.name)


def selectable_vendors(supervisor: User) -> list[tuple[int, str]]:
    """The vendors an internal supervisor can narrow to (none for a vendor supervisor)."""
    if supervisor.vendor_id is not None:
        return []
    return [tuple(row) for row in db.session.execute(sa.select(Vendor.id, Vendor.name).order_by(Vendor.name))]


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _rows(query: sa.Select[Any]) -> sa.CursorResult[Any]:
    """Run a Core query on the session's connection: plain rows, without the ORM's
    per-row bookkeeping (a visible cost at tens of thousands of grouped rows)."""
    return db.session.connection().execute(query)


# --- grouping keys -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Key:
    """Who a figure row is about: an annotator of a vendor, a vendor, or everybody."""

    vendor_id: int | None = None
    user_id: int | None = None


OVERALL = Key()


class By(enum.StrEnum):
    """The level a table is at."""

    ANNOTATOR = "annotator"
    VENDOR = "vendor"
    ALL = "all"


# --- queue (now, not the period) -----------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """The queue as one vendor (or everybody) sees it right now."""

    vendor_id: int | None
    vendor: str
    queued: int = 0
    oldest_queued_at: datetime | None = None
    in_progress: int = 0
    awaiting_review: int = 0


def _open_tasks(name: str, *conditions: sa.ColumnElement[bool]) -> sa.CTE:
    """The few tasks in an open status, as a MATERIALIZED CTE: computed first, from the
    status index, before anything is joined to them.

    Without the fence SQLite's planner (which has no statistics on how rare `queued` is)
    starts from the clips or the vendor pools and walks the whole history.
    """
    return (
        sa.select(Task.id, Task.clip_id, Task.created_at, Task.current_lease_id)
        .where(*conditions)
        .cte(name)
        .prefix_with("MATERIALIZED")
    )


def queue_status(scope: Scope, now: datetime) -> tuple[list[QueueRow], QueueRow]:
    """Per vendor and in total: claimable tasks and the oldest one's creation, live leases,
    submissions awaiting review.

    The queue of a vendor is its clip pool (ClipVendor): a task shared by two vendors'
    pools is queued for both, and counted once in the total. Claimable means queued, or
    leased with the lease run out; tasks of clips that are not active (quarantined,
    erased) are not claimable and not counted.
    """
    claimable = _open_tasks(
        "claimable",
        Task.status.in_((TaskStatus.QUEUED, TaskStatus.LEASED)),
        sa.or_(Task.status == TaskStatus.QUEUED, Task.lease_expires_at <= now),
    )
    queued_rows = db.session.execute(
        sa.select(ClipVendor.vendor_id, sa.func.count(), sa.func.min(claimable.c.created_at))
        .select_from(claimable)
        .join(Clip, Clip.id == claimable.c.clip_id)
        .join(ClipVendor, ClipVendor.clip_id == claimable.c.clip_id)
        .where(Clip.status == ClipStatus.ACTIVE, scope.covers(ClipVendor.vendor_id))
        .group_by(ClipVendor.vendor_id)
    ).all()
    held = _open_tasks("held", Task.status == TaskStatus.LEASED, Task.lease_expires_at > now)
    leased_rows = db.session.execute(
        sa.select(TaskLease.vendor_id, sa.func.count())
        .select_from(held)
        .join(TaskLease, TaskLease.id == held.c.current_lease_id)
        .where(TaskLease.ended_at.is_(None), scope.covers(TaskLease.vendor_id))
        .group_by(TaskLease.vendor_id)
    ).all()
    waiting = _open_tasks("waiting", Task.status == TaskStatus.SUBMITTED, Task.is_gold.is_(False))
    review_rows = db.session.execute(
        sa.select(Submission.vendor_id, sa.func.count())
        .select_from(waiting)
        .join(Submission, Submission.task_id == waiting.c.id)
        .join(Clip, Clip.id == waiting.c.clip_id)
        .where(
            Submission.status == SubmissionStatus.PENDING_REVIEW,
            Clip.status == ClipStatus.ACTIVE,
            scope.covers(Submission.vendor_id),
        )
        .group_by(Submission.vendor_id)
    ).all()
    names = _vendor_names_in(scope)
    rows: dict[int | None, dict[str, Any]] = {vendor_id: {} for vendor_id in names}
    for vendor_id, count, oldest in queued_rows:
        rows.setdefault(vendor_id, {}).update(queued=count, oldest_queued_at=oldest)
    for vendor_id, count in leased_rows:
        rows.setdefault(vendor_id, {})["in_progress"] = count
    for vendor_id, count in review_rows:
        rows.setdefault(vendor_id, {})["awaiting_review"] = count
    per_vendor = sorted(
        (QueueRow(vendor_id, names.get(vendor_id, INTERNAL), **values) for vendor_id, values in rows.items()),
        key=lambda row: (row.vendor_id is None, row.vendor.casefold()),
    )
    if scope.vendor_id is not None:
        own = next((row for row in per_vendor if row.vendor_id == scope.vendor_id), None)
        return per_vendor, own or QueueRow(scope.vendor_id, scope.vendor_name or "")
    queued, oldest = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(claimable.c.created_at))
        .select_from(claimable)
        .join(Clip, Clip.id == claimable.c.clip_id)
        .where(Clip.status == ClipStatus.ACTIVE)
    ).one()
    total = QueueRow(
        None,
        "All vendors",
        queued=queued,
        oldest_queued_at=oldest,
        in_progress=sum(row.in_progress for row in per_vendor),
        awaiting_review=sum(row.awaiting_review for row in per_vendor),
    )
    return per_vendor, total


def _vendor_names_in(scope: Scope) -> dict[int | None, str]:
    query = sa.select(Vendor.id, Vendor.name).where(scope.covers(Vendor.id))
    return {vendor_id: name for vendor_id, name in db.session.execute(query)}


# --- throughput ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DoneRow:
    """Tasks done in one hour or day, by one annotator, one vendor, or everybody."""

    bucket: datetime
    key: Key
    done: int
    # Hours of the bucket in which at least one of these tasks was done.
    active_hours: int


def tasks_done(scope: Scope, period: Period, unit: Unit, by: By) -> Iterator[DoneRow]:
    """Submissions created in `period`, counted per `unit` (hour or day) and `by`, in time order.

    An iterator: a year of hourly rows per annotator is streamed into a CSV, not held.
    """
    dialect = _dialect()
    bucket = time_bucket(Submission.created_at, unit, dialect).label("bucket")
    hour = time_bucket(Submission.created_at, Unit.HOUR, dialect)
    keys = _key_columns(by, Submission.vendor_id, Submission.user_id)
    query = (
        sa.select(
            bucket, *keys, sa.func.count().label("done"), sa.func.count(sa.distinct(hour)).label("hours")
        )
        .where(within(Submission.created_at, period), scope.covers(Submission.vendor_id))
        .group_by(bucket, *keys)
        .order_by(bucket, *keys)
    )
    for row in _rows(query.execution_options(yield_per=5000)):
        yield DoneRow(bucket_start(row.bucket, unit), _key(row, by), row.done, row.hours)


def hourly_profile(scope: Scope, period: Period) -> list[int]:
    """Tasks done in `period` per hour of the day (0–23, UTC): when the work happens."""
    hour = time_bucket(Submission.created_at, Unit.HOUR_OF_DAY, _dialect()).label("hour")
    counts = [0] * 24
    for value, done in db.session.execute(
        sa.select(hour, sa.func.count())
        .where(within(Submission.created_at, period), scope.covers(Submission.vendor_id))
        .group_by(hour)
    ):
        counts[int(value)] = done
    return counts


def _key_columns(by: By, vendor_column: Any, user_column: Any) -> list[Any]:
    if by is By.ANNOTATOR:
        return [vendor_column.label("vendor_id"), user_column.label("user_id")]
    if by is By.VENDOR:
        return [vendor_column.label("vendor_id")]
    return []


def _key(row: Any, by: By) -> Key:
    if by is By.ANNOTATOR:
        return Key(row.vendor_id, row.user_id)
    if by is By.VENDOR:
        return Key(row.vendor_id)
    return OVERALL


# --- time on task ----------------------------------------------------------------------------


def _nearest_rank(counts: Mapping[int, int], percent: int) -> int | None:
    """The nearest-rank `percent`-th percentile of a value → count mapping (None if empty)."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = (percent * total + 99) // 100
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: rank ≤ total")


@dataclass
class TimeOnTask:
    """Time on task as a share of the clip's length: value (percent, a multiple of
    RATIO_STEP_PERCENT) → submissions."""

    counts: dict[int, int] = field(default_factory=dict)

    def __add__(self, other: TimeOnTask) -> TimeOnTask:
        merged = dict(self.counts)
        for value, count in other.counts.items():
            merged[value] = merged.get(value, 0) + count
        return TimeOnTask(merged)

    @property
    def submissions(self) -> int:
        return sum(self.counts.values())

    def percentile(self, percent: int) -> float | None:
        """Times the clip's length (1.0 = as long as the clip), floored to 0.05."""
        value = _nearest_rank(self.counts, percent)
        return None if value is None else value / 100

    @property
    def median(self) -> float | None:
        return self.percentile(50)

    @property
    def p90(self) -> float | None:
        return self.percentile(90)

    def histogram(self, step: int = 25, last: int = 300) -> list[tuple[int, int | None, int]]:
        """Submissions per bin of `step` percent of the clip's length: (from, to, count).

        The last bin is open-ended (`to` None) and holds everything from `last` percent on.
        """
        bins = [[low, low + step, 0] for low in range(0, last, step)]
        overflow = 0
        for value, count in self.counts.items():
            if value >= last:
                overflow += count
            else:
                bins[value // step][2] += count
        return [(low, high, count) for low, high, count in bins] + [(last, None, overflow)]


def ratio_steps() -> sa.ColumnElement[int]:
    """floor(time on task × 20 / clip length), capped: the ratio in steps of 5 %.

    `//` is integer division on both databases (SQLAlchemy's `/` is true division);
    BigInteger so that the product cannot overflow an int4.
    """
    per_step = sa.literal_column(str(100 // RATIO_STEP_PERCENT), sa.BigInteger)
    cap = sa.literal_column(str(RATIO_CAP_PERCENT // RATIO_STEP_PERCENT), sa.BigInteger)
    length = sa.func.nullif(Clip.duration_ms, sa.literal_column("0", sa.Integer), type_=sa.BigInteger)
    steps = (sa.cast(Submission.time_on_task_ms, sa.BigInteger) * per_step) // length
    return sa.case((steps > cap, cap), else_=steps)


# --- review outcomes, gold, leases ---------------------------------------------------------


@dataclass
class Reviews:
    """Supervisors' decisions on an annotator's submissions."""

    decided: int = 0
    rejected: int = 0

    def __add__(self, other: Reviews) -> Reviews:
        return Reviews(self.decided + other.decided, self.rejected + other.rejected)

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.decided if self.decided else None


def review_outcomes(scope: Scope, period: Period) -> dict[Key, Reviews]:
    """Per annotator: submissions a supervisor accepted or rejected in `period`, and how many rejected.

    A decision is a reviewer on the row (only a supervisor's decision sets one), not an
    accepted status: erasing a clip later withdraws an accepted correction, but the
    decision was made, and a day's figures must not change once the day is over.
    """
    rejected = sa.func.sum(sa.case((Submission.status == SubmissionStatus.REJECTED, 1), else_=0))
    query = (
        sa.select(Submission.vendor_id, Submission.user_id, sa.func.count(), rejected)
        .where(
            within(Submission.reviewed_at, period),
            Submission.reviewer_id.is_not(None),
            scope.covers(Submission.vendor_id),
        )
        .group_by(Submission.vendor_id, Submission.user_id)
    )
    return {Key(v, u): Reviews(int(n), int(r or 0)) for v, u, n, r in _rows(query)}


@dataclass
class Gold:
    """Scores on gold tasks: how many, and the sums that give the means."""

    scored: int = 0
    wer_sum: float = 0.0
    cer_sum: float = 0.0

    def __add__(self, other: Gold) -> Gold:
        return Gold(self.scored + other.scored, self.wer_sum + other.wer_sum, self.cer_sum + other.cer_sum)

    @property
    def wer(self) -> float | None:
        return self.wer_sum / self.scored if self.scored else None

    @property
    def cer(self) -> float | None:
        return self.cer_sum / self.scored if self.scored else None


@dataclass
class Leases:
    """Leases taken, and how many of them ran out unrenewed."""

    taken: int = 0
    expired: int = 0

    def __add__(self, other: Leases) -> Leases:
        return Leases(self.taken + other.taken, self.expired + other.expired)

    @property
    def expiry_rate(self) -> float | None:
        return self.expired / self.taken if self.taken else None


def lease_expired(now: datetime) -> sa.ColumnElement[bool]:
    """The lease ran out: its end passed while it was open (a submit, skip or release ends it
    before `expires_at`; a claim that notices the expiry ends it after)."""
    return sa.and_(
        TaskLease.expires_at <= now,
        sa.or_(TaskLease.ended_at.is_(None), TaskLease.ended_at >= TaskLease.expires_at),
    )


def expired_leases(scope: Scope, period: Period, now: datetime) -> dict[Key, Leases]:
    """Per annotator: leases taken in `period`, and how many of them expired."""
    expired = sa.func.sum(sa.case((lease_expired(now), 1), else_=0))
    query = (
        sa.select(TaskLease.vendor_id, TaskLease.user_id, sa.func.count(), expired)
        .where(within(TaskLease.leased_at, period), scope.covers(TaskLease.vendor_id))
        .group_by(TaskLease.vendor_id, TaskLease.user_id)
    )
    return {Key(v, u): Leases(int(n), int(e or 0)) for v, u, n, e in _rows(query)}


# --- rubber stamps ---------------------------------------------------------------------------


def _unedited() -> sa.ColumnElement[bool]:
    return Submission.wer == 0


def _faster_than_clip() -> sa.ColumnElement[bool]:
    return Submission.time_on_task_ms < Clip.duration_ms


def _not_fully_heard() -> sa.ColumnElement[bool]:
    return Submission.fully_heard.is_(False)


def _rubber_stamped() -> sa.ColumnElement[bool]:
    return sa.and_(_unedited(), sa.or_(_faster_than_clip(), _not_fully_heard()))


@dataclass
class RubberStamps:
    """Unedited submissions and, among them, the ones sent too fast or without listening."""

    unedited: int = 0
    fast: int = 0
    unheard: int = 0
    flagged: int = 0

    def __add__(self, other: RubberStamps) -> RubberStamps:
        return RubberStamps(
            self.unedited + other.unedited,
            self.fast + other.fast,
            self.unheard + other.unheard,
            self.flagged + other.flagged,
        )


# --- the quality scan: time on task, rubber stamps and gold, in one pass --------------------


@dataclass
class Quality:
    """What one scan of an annotator's submissions (joined to their clips) says about quality."""

    time: TimeOnTask = field(default_factory=TimeOnTask)
    stamps: RubberStamps = field(default_factory=RubberStamps)
    gold: Gold = field(default_factory=Gold)


def quality(scope: Scope, period: Period) -> dict[Key, Quality]:
    """Per annotator: time on task over clip length, rubber stamps and gold scores of the
    submissions created in `period`, from one grouped scan.

    Rows are grouped by (annotator, ratio step), at most 200 per annotator. Everything else
    adds up over the steps: "faster than the clip" is exactly "ratio step below 1×"
    (floor(time × 20 / length) < 20 ⟺ time < length), so the unedited submissions of
    the low steps are the fast ones.
    """

    def count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    steps = ratio_steps().label("steps")
    query = (
        sa.select(
            Submission.vendor_id,
            Submission.user_id,
            steps,
            sa.func.count(),
            count_if(_unedited()),
            count_if(sa.and_(_unedited(), _not_fully_heard())),
            sa.func.count(Submission.gold_wer),
            sa.func.sum(Submission.gold_wer),
            sa.func.sum(Submission.gold_cer),
        )
        .join(Clip, Clip.id == Submission.clip_id)
        .where(
            within(Submission.created_at, period), scope.covers(Submission.vendor_id), Clip.duration_ms > 0
        )
        .group_by(Submission.vendor_id, Submission.user_id, steps)
    )
    once = 100 // RATIO_STEP_PERCENT
    result: dict[tuple[int | None, int], Quality] = {}
    for vendor_id, user_id, step, done, unedited, unheard, gold, wer_sum, cer_sum in _rows(query):
        figures = result.get((vendor_id, user_id))
        if figures is None:
            figures = result[(vendor_id, user_id)] = Quality()
        value = int(step) * RATIO_STEP_PERCENT
        figures.time.counts[value] = figures.time.counts.get(value, 0) + done
        stamps = figures.stamps
        stamps.unedited += unedited or 0
        stamps.unheard += unheard or 0
        if step < once:
            stamps.fast += unedited or 0
            stamps.flagged += unedited or 0
        else:
            stamps.flagged += unheard or 0
        if gold:
            figures.gold.scored += gold
            figures.gold.wer_sum += float(wer_sum or 0)
            figures.gold.cer_sum += float(cer_sum or 0)
    return {Key(*key): figures for key, figures in result.items()}


def time_on_task(scope: Scope, period: Period) -> dict[Key, TimeOnTask]:
    """Per annotator, the distribution of time on task over clip length (see `TimeOnTask`)."""
    return {key: figures.time for key, figures in quality(scope, period).items()}


def rubber_stamps(scope: Scope, period: Period) -> dict[Key, RubberStamps]:
    """Per annotator: unedited submissions created in `period`, how many were faster than
    the clip, how many not fully heard, and how many are flagged (either; counted once)."""
    return {key: q.stamps for key, q in quality(scope, period).items() if q.stamps.unedited}


def gold_scores(scope: Scope, period: Period) -> dict[Key, Gold]:
    """Per annotator: gold submissions created in `period` and the sums of their WER and CER."""
    return {key: q.gold for key, q in quality(scope, period).items() if q.gold.scored}


@dataclass(frozen=True)
class FlaggedSubmission:
    """One rubber-stamped submission, with the reasons it was flagged."""

    submission_id: int
    task_id: int
    created_at: datetime
    key: Key
    clip_public_id: str
    clip_ms: int
    time_on_task_ms: int
    heard_share: float
    fully_heard: bool
    status: SubmissionStatus

    @property
    def reasons(self) -> list[str]:
        found = []
        if self.time_on_task_ms < self.clip_ms:
            found.append("faster than the clip")
        if not self.fully_heard:
            found.append("not fully heard")
        return found


def flagged_submissions(
    scope: Scope, period: Period, limit: int | None = None
) -> Iterator[FlaggedSubmission]:
    """Rubber-stamped submissions created in `period`, newest first (all of them if no limit)."""
    query = (
        sa.select(
            Submission.id,
            Submission.task_id,
            Submission.created_at,
            Submission.vendor_id,
            Submission.user_id,
            Clip.public_id,
            Clip.duration_ms,
            Submission.time_on_task_ms,
            Submission.heard_share,
            Submission.fully_heard,
            Submission.status,
        )
        .join(Clip, Clip.id == Submission.clip_id)
        .where(within(Submission.created_at, period), _rubber_stamped(), scope.covers(Submission.vendor_id))
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(limit)
    )
    for row in _rows(query.execution_options(yield_per=2000)):
        yield FlaggedSubmission(
            submission_id=row[0],
            task_id=row[1],
            created_at=row[2],
            key=Key(row[3], row[4]),
            clip_public_id=row[5],
            clip_ms=row[6],
            time_on_task_ms=row[7],
            heard_share=row[8],
            fully_heard=row[9],
            status=row[10],
        )


# --- names -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Display names: annotators' emails and vendors' names, both read under the scope."""

    annotators: dict[int, str]
    vendors: dict[int | None, str]

    def annotator(self, key: Key) -> str:
        return self.annotators.get(key.user_id or 0, f"user {key.user_id}")

    def vendor(self, key: Key) -> str:
        return self.vendors.get(key.vendor_id, INTERNAL)


def names_in(scope: Scope) -> Names:
    """The names a supervisor of `scope` may read: people and vendors of that scope only.

    Someone who has since moved to another vendor keeps their rows (the work was done for
    this vendor) but is shown as "user <id>": their name now belongs to the other vendor.
    """
    annotators = dict(
        db.session.execute(sa.select(User.id, User.email).where(scope.covers(User.vendor_id))).all()
    )
    return Names(annotators, _vendor_names_in(scope))


# --- the page ----------------------------------------------------------------------------------


@dataclass
class Summary:
    """Every period figure for one annotator, one vendor, or everybody."""

    key: Key
    done: int = 0
    active_hours: int = 0
    time: TimeOnTask = field(default_factory=TimeOnTask)
    reviews: Reviews = field(default_factory=Reviews)
    gold: Gold = field(default_factory=Gold)
    leases: Leases = field(default_factory=Leases)
    stamps: RubberStamps = field(default_factory=RubberStamps)
    # Tasks done per bucket of the period (a day or a week, see `Period.buckets`), keyed by
    # the bucket's first day.
    series: dict[date, int] = field(default_factory=dict)

    @property
    def per_active_hour(self) -> float | None:
        return self.done / self.active_hours if self.active_hours else None

    @property
    def flagged_share(self) -> float | None:
        return self.stamps.flagged / self.done if self.done else None

    def add(self, other: Summary) -> None:
        """Add `other`'s figures to these: another part of the period, or an annotator of
        the vendor (or everybody) this summary totals."""
        self.done += other.done
        self.active_hours += other.active_hours
        self.time = self.time + other.time
        self.reviews = self.reviews + other.reviews
        self.gold = self.gold + other.gold
        self.leases = self.leases + other.leases
        self.stamps = self.stamps + other.stamps
        for start, done in other.series.items():
            self.series[start] = self.series.get(start, 0) + done


def summaries(scope: Scope, period: Period, now: datetime) -> dict[Key, Summary]:
    """Every period figure per annotator: the sealed days from the rollup, the rest live.

    Both parts count exactly the same rows in the same way (tests compare them day by
    day), so where the line between them falls never shows on the page.
    """
    sealed = sealed_days()
    stored, live = split_period(period, sealed)
    result: dict[Key, Summary] = {}
    for part in (
        stored_summaries(scope, stored, period.buckets, sealed) if stored and sealed else {},
        live_summaries(scope, live, now, period.buckets) if live else {},
    ):
        for key, summary in part.items():
            if key in result:
                result[key].add(summary)
            else:
                result[key] = summary
    return result


def live_summaries(scope: Scope, period: Period, now: datetime, buckets: Buckets) -> dict[Key, Summary]:
    """Every period figure per annotator, counted from the submissions and leases themselves;
    the series in `buckets` (those of the whole period this part belongs to).

    Four scans of the period: submissions per day (no join), submissions with their clips
    (time on task, rubber stamps, gold), decisions (by `reviewed_at`), leases.
    """
    result: dict[Key, Summary] = {}

    def at(key: Key) -> Summary:
        return result.setdefault(key, Summary(key))

    for row in tasks_done(scope, period, Unit.DAY, By.ANNOTATOR):
        summary = at(row.key)
        summary.done += row.done
        summary.active_hours += row.active_hours
        start = buckets.of(row.bucket.date())
        summary.series[start] = summary.series.get(start, 0) + row.done
    for key, figures in quality(scope, period).items():
        summary = at(key)
        summary.time, summary.stamps, summary.gold = figures.time, figures.stamps, figures.gold
    for key, value in review_outcomes(scope, period).items():
        at(key).reviews = value
    for key, value in expired_leases(scope, period, now).items():
        at(key).leases = value
    return result


def summaries_by(per_annotator: Mapping[Key, Summary], by: By) -> dict[Key, Summary]:
    """Add annotator summaries up to vendors or overall."""
    result: dict[Key, Summary] = {}
    for key, summary in per_annotator.items():
        target = Key(key.vendor_id) if by is By.VENDOR else OVERALL
        result.setdefault(target, Summary(target)).add(summary)
    return result


# --- the sealed days: read from the rollup -------------------------------------------------------


def sealed_days() -> Sealed | None:
    """The days the rollup holds (None before the first refresh)."""
    row = db.session.execute(
        sa.select(DashboardRollup.sealed_from, DashboardRollup.sealed_through).where(
            DashboardRollup.id == ROLLUP_ID
        )
    ).one()
    return Sealed(row.sealed_from, row.sealed_through) if row.sealed_through is not None else None


def split_period(period: Period, sealed: Sealed | None) -> tuple[Period | None, Period | None]:
    """`period` cut at the end of the sealed days: (the part in the rollup, the part after it)."""
    if sealed is None or sealed.last_day < period.first_day:
        return None, period
    if sealed.last_day >= period.last_day:
        return period, None
    return Period(period.first_day, sealed.last_day), Period(
        sealed.last_day + timedelta(days=1), period.last_day
    )


def _planned(
    plan: list[Term], total: Any, daily: Any, keys: tuple[str, ...], figures: tuple[str, ...], scope: Scope
) -> list[Any]:
    """Sum `figures` per `keys` over the terms of a checkpoint plan: each term's rows, signed,
    in one UNION ALL grouped in the database."""

    def signed(table: Any, sign: int, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
        values = (getattr(table, name) for name in figures)
        return sa.select(
            *(getattr(table, name) for name in keys), *(value if sign > 0 else -value for value in values)
        ).where(scope.covers(table.vendor_id), *conditions)

    parts = [
        signed(total, term.sign, total.through == term.checkpoint)
        if term.days is None
        else signed(daily, term.sign, daily.day >= term.days.first_day, daily.day <= term.days.last_day)
        for term in plan
    ]
    if not parts:
        return []
    rows = (sa.union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    query = sa.select(
        *(rows.c[name] for name in keys), *(sa.func.sum(rows.c[name]) for name in figures)
    ).group_by(*(rows.c[name] for name in keys))
    return list(_rows(query).all())


def stored_summaries(scope: Scope, period: Period, buckets: Buckets, sealed: Sealed) -> dict[Key, Summary]:
    """Every period figure per annotator for sealed days, from the rollup tables.

    Three reads: the additive figures and the time-on-task steps per annotator, each as
    two running totals and a few days (`portal.analytics.checkpoints`), and tasks done per
    annotator per bucket (counted in SQL from the day rows).
    """
    plan = checkpoints.plan(period, sealed)
    # Keyed by the plain (vendor, user) tuple while reading: thousands of rows hash a tuple
    # much faster than a Key.
    result: dict[tuple[int | None, int], Summary] = {}
    for row in _planned(plan, DashboardTotal, DashboardDay, ("vendor_id", "user_id"), FIGURES, scope):
        vendor_id, user_id, done, hours, unedited, fast, unheard, flagged, scored, wer, cer = row[:11]
        decided, rejected, taken, expired = row[11:]
        counts = (done, hours, unedited, fast, unheard, flagged, scored, decided, rejected, taken, expired)
        if not any(counts):
            continue  # nothing in the period: the running totals cancel out
        result[(vendor_id, user_id)] = Summary(
            Key(vendor_id, user_id),
            done=int(done),
            active_hours=int(hours),
            reviews=Reviews(int(decided), int(rejected)),
            # Without gold tasks the sums are exactly zero, not what is left of subtracting two.
            gold=Gold(int(scored), float(wer), float(cer)) if scored else Gold(),
            leases=Leases(int(taken), int(expired)),
            stamps=RubberStamps(int(unedited), int(fast), int(unheard), int(flagged)),
        )
    steps = _planned(
        plan, DashboardRatioTotal, DashboardRatio, ("vendor_id", "user_id", "step"), ("done",), scope
    )
    for vendor_id, user_id, step, done in steps:
        if done:
            result[(vendor_id, user_id)].time.counts[int(step) * RATIO_STEP_PERCENT] = int(done)
    days = DashboardDay
    starts = buckets.starts()
    # Counted from the anchor, so that every index is ≥ 0 (integer division of a negative
    # number rounds differently on the two databases).
    index = (days_since(buckets.anchor, days.day, _dialect()) // buckets.size).label("bucket")
    series = (
        sa.select(index, days.vendor_id, days.user_id, sa.func.sum(days.done))
        .where(
            days.day >= period.first_day,
            days.day <= period.last_day,
            days.done > 0,
            scope.covers(days.vendor_id),
        )
        .group_by(index, days.vendor_id, days.user_id)
    )
    for bucket, vendor_id, user_id, done in _rows(series).all():
        result[(vendor_id, user_id)].series[starts[bucket]] = int(done)
    return {summary.key: summary for summary in result.values()}


def hourly_done(scope: Scope, period: Period) -> list[tuple[datetime, int]]:
    """Tasks done in each hour of `period` (hours without any left out), in time order."""
    stored, live = split_period(period, sealed_days())
    result: list[tuple[datetime, int]] = []
    if stored:
        hours = DashboardHour
        query = (
            sa.select(hours.day, hours.hour, sa.func.sum(hours.done))
            .where(hours.day >= stored.first_day, hours.day <= stored.last_day, scope.covers(hours.vendor_id))
            .group_by(hours.day, hours.hour)
            .order_by(hours.day, hours.hour)
        )
        result.extend(
            (datetime.combine(day, time(int(hour)), tzinfo=UTC), int(done))
            for day, hour, done in _rows(query)
        )
    if live:
        result.extend((row.bucket, row.done) for row in tasks_done(scope, live, Unit.HOUR, By.ALL))
    return result


def hour_of_day_done(scope: Scope, period: Period) -> list[int]:
    """Tasks done in `period` per hour of the day (0–23, UTC), sealed days from the rollup."""
    stored, live = split_period(period, sealed_days())
    counts = hourly_profile(scope, live) if live else [0] * 24
    if stored:
        hours = DashboardHour
        query = (
            sa.select(hours.hour, sa.func.sum(hours.done))
            .where(hours.day >= stored.first_day, hours.day <= stored.last_day, scope.covers(hours.vendor_id))
            .group_by(hours.hour)
        )
        for hour, done in _rows(query):
            counts[int(hour)] += int(done)
    return counts


@dataclass
class Dashboard:
    """Everything the supervisor page shows, for one scope and period."""

    scope: Scope
    period: Period
    now: datetime
    queue: list[QueueRow]
    queue_total: QueueRow
    annotators: list[Summary]
    vendors: list[Summary]
    overall: Summary
    series_by_vendor: dict[Key, dict[date, int]]
    hourly: list[tuple[datetime, int]] | None
    hour_of_day: list[int] | None
    flagged: list[FlaggedSubmission]
    names: Names


def dashboard(scope: Scope, period: Period, now: datetime) -> Dashboard:
    """Compute the page: the queue now, and every period figure per annotator, vendor and overall."""
    queue, queue_total = queue_status(scope, now)
    per_annotator = summaries(scope, period, now)
    per_vendor = summaries_by(per_annotator, By.VENDOR)
    overall = summaries_by(per_annotator, By.ALL).get(OVERALL, Summary(OVERALL))
    if period.days <= HOURLY_CHART_MAX_DAYS:
        hourly, hour_of_day = hourly_done(scope, period), None
    else:
        hourly, hour_of_day = None, hour_of_day_done(scope, period)
    flagged = list(flagged_submissions(scope, period, FLAGGED_ON_PAGE))
    names = names_in(scope)
    return Dashboard(
        scope=scope,
        period=period,
        now=now,
        queue=queue,
        queue_total=queue_total,
        annotators=sorted(per_annotator.values(), key=lambda s: (-s.done, names.annotator(s.key))),
        vendors=sorted(per_vendor.values(), key=lambda s: names.vendor(s.key).casefold()),
        overall=overall,
        series_by_vendor={key: summary.series for key, summary in per_vendor.items()},
        hourly=hourly,
        hour_of_day=hour_of_day,
        flagged=flagged,
        names=names,
    )
