"""CSV downloads of the dashboard's tables: same filters, same scope, safe to open in a spreadsheet.

Each table is computed by the same service functions as the page and streamed a few
hundred rows at a time (a year of hourly rows per annotator is never held in memory).

Spreadsheet formula injection: a text cell that begins with `=`, `+`, `-`, `@`, a tab or a
carriage return (or their full-width forms, or any of these after leading spaces) is
written with a leading apostrophe, which makes spreadsheets show it as text instead of
evaluating it (OWASP "CSV Injection"). Numbers are written as numbers: the portal produces
them, so they cannot carry a formula, and a negative number must stay a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.analytics import services
from portal.analytics.services import By, Names, Period, Scope, Summary
from portal.analytics.sql import Unit

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
ROWS_PER_CHUNK = 500


def safe_cell(value: Any) -> str | int | float:
    """One cell as written to the CSV: numbers as they are, text defused, times in ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS) or text.lstrip(" ").startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_chunks(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The CSV text (header first), a chunk of `ROWS_PER_CHUNK` rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in header])
    for number, row in enumerate(rows, start=1):
        writer.writerow([safe_cell(value) for value in row])
        if number % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@dataclass(frozen=True)
class Table:
    """One downloadable table: its columns and how to compute its rows."""

    title: str
    header: tuple[str, ...]
    rows: Callable[[Scope, Period, datetime], Iterator[list[Any]]]


def _hours(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment).total_seconds() / 3600


def _queue_rows(scope: Scope, period: Period, now: datetime) -> Iterator[list[Any]]:
    per_vendor, total = services.queue_status(scope, now)
    rows = per_vendor if scope.vendor_id is not None else [*per_vendor, total]
    for row in rows:
        yield [
            row.vendor,
            row.queued,
            row.oldest_queued_at,
            _hours(row.oldest_queued_at, now),
            row.in_progress,
            row.awaiting_review,
        ]


SUMMARY_COLUMNS = (
    "done",
    "active_hours",
    "done_per_active_hour",
    "median_time_over_clip_length",
    "p90_time_over_clip_length",
    "decided_by_supervisor",
    "rejected",
    "rejection_rate",
    "gold_scored",
    "gold_wer",
    "gold_cer",
    "leases_taken",
    "leases_expired",
    "unedited",
    "unedited_faster_than_clip",
    "unedited_not_fully_heard",
    "rubber_stamp_flags",
)


def _summary_values(summary: Summary) -> list[Any]:
    return [
        summary.done,
        summary.active_hours,
        summary.per_active_hour,
        summary.time.median,
        summary.time.p90,
        summary.reviews.decided,
        summary.reviews.rejected,
        summary.reviews.rejection_rate,
        summary.gold.scored,
        summary.gold.wer,
        summary.gold.cer,
        summary.leases.taken,
        summary.leases.expired,
        summary.stamps.unedited,
        summary.stamps.fast,
        summary.stamps.unheard,
        summary.stamps.flagged,
    ]


def _annotator_rows(scope: Scope, period: Period, now: datetime) -> Iterator[list[Any]]:
    names = services.names_in(scope)
    rows = services.summaries(scope, period, now).values()
    for summary in sorted(rows, key=lambda s: (names.vendor(s.key), names.annotator(s.key))):
        yield [names.annotator(summary.key), names.vendor(summary.key), *_summary_values(summary)]


def _vendor_rows(scope: Scope, period: Period, now: datetime) -> Iterator[list[Any]]:
    names = services.names_in(scope)
    per_vendor = services.summaries_by(services.summaries(scope, period, now), By.VENDOR)
    for summary in sorted(per_vendor.values(), key=lambda s: names.vendor(s.key)):
        yield [names.vendor(summary.key), *_summary_values(summary)]


def _done_rows(unit: Unit, by: By) -> Callable[[Scope, Period, datetime], Iterator[list[Any]]]:
    def rows(scope: Scope, period: Period, now: datetime) -> Iterator[list[Any]]:
        names: Names = services.names_in(scope)
        for row in services.tasks_done(scope, period, unit, by):
            bucket = row.bucket.date().isoformat() if unit is Unit.DAY else row.bucket.isoformat()
            people = [names.annotator(row.key)] if by is By.ANNOTATOR else []
            yield [bucket, names.vendor(row.key), *people, row.done]

    return rows


def _time_on_task_rows(scope: Scope, period: Period, now: datetime) -> Iterator[list[Any]]:
    """The page's histogram: from the rollup for sealed days, like every other figure."""
    overall = services.summaries_by(services.summaries(scope, period, now), By.ALL)
    time = overall[services.OVERALL].time if overall else services.TimeOnTask()
    for low, high, count in time.histogram():
        yield [low / 100, None if high is None else high / 100, count]


def _rubber_stamp_rows(scope: Scope, period: Period, now: datetime) -> Iterator[list[Any]]:
    names = services.names_in(scope)
    for row in services.flagged_submissions(scope, period):
        yield [
            row.created_at,
            row.submission_id,
            row.task_id,
            names.annotator(row.key),
            names.vendor(row.key),
            row.clip_public_id,
            row.clip_ms / 1000,
            row.time_on_task_ms / 1000,
            row.heard_share,
            row.fully_heard,
            "; ".join(row.reasons),
            row.status.value,
        ]


TABLES: dict[str, Table] = {
    "queue": Table(
        "Queue now",
        (
            "vendor",
            "queued",
            "oldest_queued_at",
            "oldest_queued_age_hours",
            "in_progress",
            "awaiting_review",
        ),
        _queue_rows,
    ),
    "vendors": Table("Vendors", ("vendor", *SUMMARY_COLUMNS), _vendor_rows),
    "annotators": Table("Annotators", ("annotator", "vendor", *SUMMARY_COLUMNS), _annotator_rows),
    "done-per-day-by-vendor": Table(
        "Tasks done per day, by vendor", ("day", "vendor", "done"), _done_rows(Unit.DAY, By.VENDOR)
    ),
    "done-per-day-by-annotator": Table(
        "Tasks done per day, by annotator",
        ("day", "vendor", "annotator", "done"),
        _done_rows(Unit.DAY, By.ANNOTATOR),
    ),
    "done-per-hour-by-vendor": Table(
        "Tasks done per hour, by vendor", ("hour", "vendor", "done"), _done_rows(Unit.HOUR, By.VENDOR)
    ),
    "done-per-hour-by-annotator": Table(
        "Tasks done per hour, by annotator",
        ("hour", "vendor", "annotator", "done"),
        _done_rows(Unit.HOUR, By.ANNOTATOR),
    ),
    "time-on-task": Table(
        "Time on task over clip length",
        ("from_times_clip_length", "to_times_clip_length", "submissions"),
        _time_on_task_rows,
    ),
    "rubber-stamps": Table(
        "Rubber-stamp flags",
        (
            "submitted_at",
            "submission",
            "task",
            "annotator",
            "vendor",
            "clip",
            "clip_seconds",
            "time_on_task_seconds",
            "heard_share",
            "fully_heard",
            "reasons",
            "status",
        ),
        _rubber_stamp_rows,
    ),
}


def stream_table(name: str, scope: Scope, period: Period, now: datetime) -> Iterator[str]:
    """The CSV text of table `name` for `scope` and `period`, in chunks."""
    table = TABLES[name]
    return csv_chunks(table.header, table.rows(scope, period, now))
