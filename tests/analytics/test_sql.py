"""The dialect-aware time buckets: the same bucket on SQLite and PostgreSQL, edges included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from portal.analytics.sql import Unit, bucket_start, time_bucket
from portal.db import UTCDateTime
from portal.extensions import db


@pytest.mark.parametrize(
    ("moment", "unit", "expected"),
    [
        (
            datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
            Unit.DAY,
            datetime(2026, 11, 30, tzinfo=UTC),
        ),
        (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), Unit.DAY, datetime(2026, 12, 1, tzinfo=UTC)),
        (
            datetime(2026, 11, 30, 9, 59, 59, 999999, tzinfo=UTC),
            Unit.HOUR,
            datetime(2026, 11, 30, 9, tzinfo=UTC),
        ),
        (datetime(2026, 11, 30, 10, 0, tzinfo=UTC), Unit.HOUR, datetime(2026, 11, 30, 10, tzinfo=UTC)),
        (datetime(2026, 11, 30, 0, 30, tzinfo=UTC), Unit.HOUR_OF_DAY, 0),
        (datetime(2026, 11, 30, 23, 30, tzinfo=UTC), Unit.HOUR_OF_DAY, 23),
    ],
)
def test_time_bucket(app, moment, unit, expected):
    with app.app_context():
        dialect = db.session.get_bind().dialect.name
        value = sa.literal(moment, UTCDateTime())
        raw = db.session.scalar(sa.select(time_bucket(value, unit, dialect)))
        assert bucket_start(raw, unit) == expected


def test_unknown_dialect():
    with pytest.raises(NotImplementedError):
        time_bucket(sa.column("created_at"), Unit.DAY, "oracle")
