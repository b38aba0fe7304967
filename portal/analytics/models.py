"""The dashboard's daily rollup: the figures of days that can no longer change, added up once.

A year of history is about a million submissions; summing them on every page view takes
seconds. Once a day is over (and every lease taken that day has ended or run out), none
of its figures can change any more: each counts rows by a moment that is already past
(`created_at`, `reviewed_at`, `leased_at`) and columns that are never updated afterwards.
`portal.analytics.rollup` adds such days up into these tables, and the dashboard reads
them for the sealed part of a range and the submissions themselves only for the days
after it (normally just today).

* `DashboardDay`: one row per (day, vendor, annotator) with every additive figure;
* `DashboardRatio`: how many submissions of an annotator took each 5 % step of the clip's
  length on a day (the time-on-task distribution);
* `DashboardTotal` / `DashboardRatioTotal`: the same added up from the first sealed day
  through each month's end and through the last sealed day (checkpoints), so that a year
  is read as the difference of two running totals (`portal.analytics.checkpoints`);
* `DashboardHour`: submissions per (day, hour of day, vendor), for the hourly charts;
* `DashboardRollup`: the single row that says which days the tables hold.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime

ROLLUP_ID = 1


class DashboardRollup(Base):
    """The rollup's state (one row, id 1): days from `sealed_from` to `sealed_through` are in
    the tables (there was nothing to count before `sealed_from`).

    Refreshing locks this row, so two refreshes never add the same day twice.
    """

    __tablename__ = "dashboard_rollup"

    id: Mapped[int] = mapped_column(primary_key=True)
    sealed_from: Mapped[date | None] = mapped_column(sa.Date)
    sealed_through: Mapped[date | None] = mapped_column(sa.Date)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The additive figures of one annotator, in the order the rollup reads and writes them.
FIGURES = (
    "done",
    "active_hours",
    "unedited",
    "fast",
    "unheard",
    "flagged",
    "gold_scored",
    "gold_wer_sum",
    "gold_cer_sum",
    "decided",
    "rejected",
    "leases_taken",
    "leases_expired",
)


class AnnotatorFigures:
    """The columns a day's row and a running total share: whose figures, and the figures.

    Each figure is dated by its own moment: submissions by `created_at`, decisions by
    `reviewed_at`, leases by `leased_at` (see `portal.analytics.services`).
    """

    vendor_id: Mapped[int | None]
    user_id: Mapped[int]
    done: Mapped[int]
    active_hours: Mapped[int]
    unedited: Mapped[int]
    fast: Mapped[int]
    unheard: Mapped[int]
    flagged: Mapped[int]
    gold_scored: Mapped[int]
    gold_wer_sum: Mapped[float]
    gold_cer_sum: Mapped[float]
    decided: Mapped[int]
    rejected: Mapped[int]
    leases_taken: Mapped[int]
    leases_expired: Mapped[int]


class DashboardDay(AnnotatorFigures, Base):
    """One annotator's additive figures for one sealed day."""

    __tablename__ = "dashboard_days"
    __table_args__ = (sa.Index("ix_dashboard_days_day", "day", "vendor_id", "user_id", "done"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)


class DashboardTotal(AnnotatorFigures, Base):
    """One annotator's figures added up over every sealed day through `through` (a checkpoint:
    the end of a month, or the last sealed day)."""

    __tablename__ = "dashboard_totals"
    __table_args__ = (sa.Index("ix_dashboard_totals_through", "through", "vendor_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    through: Mapped[date] = mapped_column(sa.Date)


class DashboardRatio(Base):
    """Submissions of one annotator on one sealed day whose time on task fell in one step."""

    __tablename__ = "dashboard_ratios"
    __table_args__ = (sa.Index("ix_dashboard_ratios_day", "day", "vendor_id", "user_id", "step", "done"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)
    vendor_id: Mapped[int | None]
    user_id: Mapped[int]
    step: Mapped[int]
    done: Mapped[int]


class DashboardRatioTotal(Base):
    """`DashboardRatio` added up over every sealed day through `through` (a checkpoint)."""

    __tablename__ = "dashboard_ratio_totals"
    __table_args__ = (
        sa.Index("ix_dashboard_ratio_totals_through", "through", "vendor_id", "user_id", "step", "done"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    through: Mapped[date] = mapped_column(sa.Date)
    vendor_id: Mapped[int | None]
    user_id: Mapped[int]
    step: Mapped[int]
    done: Mapped[int]


class DashboardHour(Base):
    """Submissions of one vendor in one hour (UTC) of one sealed day."""

    __tablename__ = "dashboard_hours"
    __table_args__ = (sa.Index("ix_dashboard_hours_day", "day", "hour", "vendor_id", "done"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)
    hour: Mapped[int]
    vendor_id: Mapped[int | None]
    done: Mapped[int]
