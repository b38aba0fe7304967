"""SQL that means the same on SQLite and PostgreSQL: time buckets for GROUP BY.

Timestamps are stored as naive UTC (see `portal.db.UTCDateTime`): a PostgreSQL
`timestamp without time zone`, and on SQLite the text `YYYY-MM-DD HH:MM:SS.ffffff`.
`time_bucket(column, unit, dialect)` truncates such a column in the database, so that grouping
happens there and only one row per bucket crosses to Python:

* PostgreSQL: `date_trunc('hour' | 'day', column)`, or `extract(hour from column)`;
* SQLite: a prefix of the stored text (`substr`, cheaper than `strftime` on a million
  rows and equal to it for this fixed format), or the hour digits as an integer.

The database hands buckets back in its own type; `bucket_start` turns them into aware
UTC datetimes (and `HOUR_OF_DAY` into an int), whatever the backend. The dialect is passed
in (`db.engine.dialect.name`) rather than compiled per backend, so statements stay plain
SQLAlchemy constructs that cache normally.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa


class Unit(enum.StrEnum):
    """How finely time is grouped."""

    HOUR = "hour"
    DAY = "day"
    HOUR_OF_DAY = "hour_of_day"


# Length of the stored SQLite text that identifies the bucket: "2026-11-30 09" / "2026-11-30".
SQLITE_PREFIX = {Unit.HOUR: 13, Unit.DAY: 10}


def _inline(number: int) -> sa.ColumnElement[Any]:
    return sa.literal_column(str(int(number)))


def time_bucket(column: sa.ColumnElement[Any], unit: Unit, dialect: str) -> sa.ColumnElement[Any]:
    """The start of the hour or day `column` falls in (or its hour, 0–23), computed in SQL.

    Constants are rendered inline, not bound: PostgreSQL only recognises the SELECT and the
    GROUP BY expressions as the same when they are textually equal, and two bind
    parameters would not be.
    """
    if dialect == "postgresql":
        if unit is Unit.HOUR_OF_DAY:
            return sa.cast(sa.extract("hour", column), sa.Integer)
        return sa.func.date_trunc(sa.literal_column(f"'{unit.value}'"), column)
    if dialect == "sqlite":
        if unit is Unit.HOUR_OF_DAY:
            return sa.cast(sa.func.substr(column, _inline(12), _inline(2)), sa.Integer)
        return sa.func.substr(column, _inline(1), _inline(SQLITE_PREFIX[unit]))
    raise NotImplementedError(f"no time buckets for the {dialect} dialect")


def day_of(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """The UTC day `column` falls in, as the database stores a `Date` (for INSERT … SELECT
    into the rollup): a cast on PostgreSQL, the `YYYY-MM-DD` prefix on SQLite."""
    if dialect == "postgresql":
        return sa.cast(column, sa.Date)
    if dialect == "sqlite":
        return sa.func.substr(column, _inline(1), _inline(SQLITE_PREFIX[Unit.DAY]), type_=sa.Date)
    raise NotImplementedError(f"no days for the {dialect} dialect")


def days_since(start: date, column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[int]:
    """Whole days from `start` to the `Date` in `column`, computed in SQL.

    `start` is rendered inline (see `time_bucket`): the expression is also a GROUP BY key.
    """
    if dialect == "postgresql":
        return sa.type_coerce(column - sa.literal_column(f"DATE '{start.isoformat()}'"), sa.Integer)
    if dialect == "sqlite":
        start_day = sa.func.julianday(sa.literal_column(f"'{start.isoformat()}'"))
        return sa.cast(sa.func.julianday(column) - start_day, sa.Integer)
    raise NotImplementedError(f"no day arithmetic for the {dialect} dialect")


def bucket_start(value: Any, unit: Unit) -> Any:
    """The bucket as Python sees it: an aware UTC datetime, or the hour (0–23) for HOUR_OF_DAY."""
    if unit is Unit.HOUR_OF_DAY:
        return int(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    text = str(value)
    if unit is Unit.HOUR:
        return datetime.strptime(text[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
    return datetime.strptime(text[:10], "%Y-%m-%d").replace(tzinfo=UTC)
