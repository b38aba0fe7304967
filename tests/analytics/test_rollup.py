"""The dashboard rollup: sealed days read from it must give exactly the live figures.

A generated history (tests/analytics/history.py: vendors working shifts, expired leases,
reviews, gold, rubber stamps, a backlog with live leases) is sealed, then every figure is
compared, over many periods and both scopes, with the same figure counted live from the
submissions and leases. Then the rules that keep the rollup true: when a day may be
sealed, what a refresh adds, what erasure does, concurrent refreshes, the CLI.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.analytics import checkpoints, rollup, services
from portal.analytics.checkpoints import Sealed, Term
from portal.analytics.models import DashboardDay, DashboardRatioTotal, DashboardRollup, DashboardTotal
from portal.analytics.services import By, Gold, Key, Period, Scope, Summary
from portal.analytics.sql import Unit
from portal.auth.models import Role
from portal.extensions import db
from portal.tasks.models import Submission, SubmissionStatus, TaskLease
from tests.analytics.history import HistorySpec, HistoryStats, generate_history, reset_sequences

# The clock of tests/conftest.py: Monday 2026-11-30 09:00 UTC.
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
TEAMS = (("Acme Transcription", 4, 7), ("Globex Voice", 3, 13))
FIRST_DAY = date(2026, 9, 20)


def load(
    app, reviewer_id: int | None = None, end: datetime = NOW, days: int = 71, seed: int = 5
) -> HistoryStats:
    with app.app_context():
        assert db.engine is not None
        with db.engine.begin() as connection:
            stats = generate_history(
                connection,
                HistorySpec(
                    end=end,
                    days=days,
                    vendors=TEAMS,
                    tasks_per_day=8,
                    backlog=30,
                    seed=seed,
                    reviewer_id=reviewer_id,
                ),
            )
            reset_sequences(connection)
        return stats


@pytest.fixture
def supervisor(create_user):
    """An internal supervisor: the reviewer of the history, and the one who looks at it."""
    return create_user(Role.SUPERVISOR, vendor=None)


@pytest.fixture
def history(app, clock, supervisor):
    stats = load(app, supervisor.id)
    with app.app_context():
        yield stats


def comparable(figures: dict[Key, Summary]) -> dict[Key, Summary]:
    """The figures with gold sums rounded: the rollup adds the same floats in another order."""
    return {
        key: replace(
            summary,
            gold=Gold(summary.gold.scored, round(summary.gold.wer_sum, 9), round(summary.gold.cer_sum, 9)),
        )
        for key, summary in figures.items()
    }


def live(scope: Scope, period: Period) -> dict[Key, Summary]:
    return comparable(services.live_summaries(scope, period, NOW, period.buckets))


def periods() -> list[Period]:
    """Edges worth checking (whole months, month ends, one day, all of it, today) and random ones."""
    fixed = [
        Period(FIRST_DAY, TODAY),
        Period(date(2026, 10, 1), date(2026, 10, 31)),
        Period(date(2026, 10, 1), date(2026, 11, 29)),
        Period(date(2026, 9, 30), date(2026, 11, 1)),
        Period(date(2026, 10, 15), date(2026, 10, 15)),
        Period(date(2026, 11, 24), TODAY),
        Period(TODAY, TODAY),
        Period(date(2026, 11, 29), TODAY),
        Period(date(2026, 1, 1), TODAY),
    ]
    rng = random.Random(7)
    span = (TODAY - FIRST_DAY).days
    for _ in range(12):
        first = FIRST_DAY + timedelta(days=rng.randrange(span))
        fixed.append(Period(first, first + timedelta(days=rng.randrange((TODAY - first).days + 1))))
    return fixed


def test_sealed_days_give_exactly_the_live_figures(history):
    result = rollup.refresh(NOW)
    db.session.commit()
    assert result.sealed_through == TODAY - timedelta(days=1)
    assert result.added is not None and result.added.first_day <= FIRST_DAY
    acme = Scope(history.vendor_ids["Acme Transcription"], "Acme Transcription", fixed=True)
    for scope in (Scope(None), acme):
        for period in periods():
            figures = comparable(services.summaries(scope, period, NOW))
            assert figures == live(scope, period), (scope, period)
            assert services.hourly_done(scope, period) == [
                (row.bucket, row.done) for row in services.tasks_done(scope, period, Unit.HOUR, By.ALL)
            ]
            assert services.hour_of_day_done(scope, period) == services.hourly_profile(scope, period)
    # Not vacuous: the history has every kind of figure, and most of it is sealed.
    overall = services.summaries_by(services.summaries(Scope(None), Period(FIRST_DAY, TODAY), NOW), By.ALL)
    total = overall[services.OVERALL]
    assert total.done > 2000
    assert total.reviews.decided and total.reviews.rejected and total.gold.scored
    assert total.leases.expired and total.stamps.flagged
    sealed_done = db.session.scalar(sa.select(sa.func.sum(DashboardDay.done)))
    assert sealed_done == db.session.scalar(
        sa.select(sa.func.count()).where(
            Submission.created_at < datetime.combine(TODAY, datetime.min.time(), UTC)
        )
    )


def test_long_periods_count_weeks(history):
    rollup.refresh(NOW)
    period = Period(FIRST_DAY, TODAY)
    assert period.buckets.size == 7
    figures = services.summaries(Scope(None), period, NOW)
    for summary in figures.values():
        assert set(summary.series) <= set(period.buckets.starts())
        assert sum(summary.series.values()) == summary.done
    short = Period(date(2026, 11, 1), TODAY)
    assert short.buckets.size == 1 and short.buckets.starts() == short.day_list()


def test_buckets():
    # 90 days: 12 whole weeks ending on the last day, and 6 days before them.
    buckets = Period(date(2026, 1, 1), date(2026, 3, 31)).buckets
    starts = buckets.starts()
    assert (buckets.size, len(starts)) == (7, 13)
    assert starts[:3] == [date(2026, 1, 1), date(2026, 1, 7), date(2026, 1, 14)]
    assert starts[-1] == date(2026, 3, 25)
    assert [buckets.of(day) for day in (date(2026, 1, 6), date(2026, 1, 7), date(2026, 3, 31))] == [
        date(2026, 1, 1),
        date(2026, 1, 7),
        date(2026, 3, 25),
    ]
    # A whole number of weeks: every run is whole.
    even = Period(date(2026, 1, 1), date(2026, 3, 25)).buckets
    assert even.starts()[0:2] == [date(2026, 1, 1), date(2026, 1, 8)] and even.anchor == date(2026, 1, 1)
    day = Period(date(2026, 3, 1), date(2026, 3, 3)).buckets
    assert (day.size, day.starts(), day.of(date(2026, 3, 2))) == (
        1,
        [date(2026, 3, d) for d in (1, 2, 3)],
        date(2026, 3, 2),
    )


def coverage(terms: list[Term], sealed: Sealed, days: list[date]) -> list[int]:
    """How many times each of `days` is counted by the signed terms of a plan."""
    counted = []
    for day in days:
        total = 0
        for term in terms:
            if term.checkpoint is not None:
                assert sealed.has_checkpoint(term.checkpoint) and not sealed.is_empty(term.checkpoint)
                total += term.sign * (sealed.first_day <= day <= term.checkpoint)
            else:
                assert term.days is not None
                total += term.sign * (term.days.first_day <= day <= term.days.last_day)
        counted.append(total)
    return counted


def test_a_plan_counts_each_day_of_the_period_once_and_nothing_else():
    rng = random.Random(3)
    for _ in range(300):
        first = date(2025, 1, 1) + timedelta(days=rng.randrange(400))
        sealed = Sealed(first, first + timedelta(days=rng.randrange(500)))
        low = sealed.first_day - timedelta(days=40)
        start = low + timedelta(days=rng.randrange((sealed.last_day - low).days + 1))
        period = Period(start, start + timedelta(days=rng.randrange((sealed.last_day - start).days + 1)))
        terms = checkpoints.plan(period, sealed)
        days = [low + timedelta(days=n) for n in range((sealed.last_day - low).days + 1)]
        counted = coverage(terms, sealed, days)
        # Days before the first sealed one hold no rows: whatever a plan says of them is moot.
        assert [count for day, count in zip(days, counted, strict=True) if day >= sealed.first_day] == [
            int(period.first_day <= day <= period.last_day) for day in days if day >= sealed.first_day
        ]


def test_a_year_is_two_checkpoints_and_a_few_days():
    sealed = Sealed(date(2025, 6, 3), date(2026, 11, 29))
    terms = checkpoints.plan(Period(date(2025, 11, 30), date(2026, 11, 29)), sealed)
    assert terms == [
        Term(1, checkpoint=date(2026, 11, 29)),
        Term(-1, checkpoint=date(2025, 11, 30)),
        Term(1, days=Period(date(2025, 11, 30), date(2025, 11, 30))),
    ]
    # A week is cheaper read day by day.
    week = Period(date(2026, 11, 23), date(2026, 11, 29))
    assert checkpoints.plan(week, sealed) == [Term(1, days=week)]
    # From the first sealed day on, one running total is enough.
    assert checkpoints.plan(Period(date(2025, 6, 3), date(2026, 10, 31)), sealed) == [
        Term(1, checkpoint=date(2026, 10, 31))
    ]


def test_a_day_is_sealed_only_after_the_delay(app, clock):
    load(app, days=5)
    with app.app_context():
        just_after_midnight = datetime(2026, 11, 30, 0, 10, tzinfo=UTC)
        # The refresh at 00:10 may not seal Sunday yet: a request stamped 23:59 may still commit.
        db.session.execute(sa.update(TaskLease).where(TaskLease.ended_at.is_(None)).values(ended_at=NOW))
        assert rollup.seal_limit(just_after_midnight) == date(2026, 11, 28)
        assert rollup.seal_limit(just_after_midnight + rollup.SEAL_DELAY) == date(2026, 11, 29)


def test_a_live_lease_holds_back_its_day(history):
    # A lease taken on Friday and still live (renewed by an open work page) at refresh time.
    friday = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    lease = db.session.scalars(sa.select(TaskLease).order_by(TaskLease.id).limit(1)).one()
    lease.leased_at, lease.expires_at, lease.ended_at = friday, NOW + timedelta(minutes=5), None
    db.session.commit()
    assert rollup.refresh(NOW).sealed_through == date(2026, 11, 26)
    db.session.commit()
    # Its outcome is known once it runs out: the next refresh seals Friday and the weekend.
    later = NOW + timedelta(minutes=6)
    result = rollup.refresh(later)
    db.session.commit()
    assert result.added == Period(date(2026, 11, 27), date(2026, 11, 29))
    week = Period(date(2026, 11, 23), date(2026, 11, 29))
    assert comparable(services.summaries(Scope(None), week, later)) == comparable(
        services.live_summaries(Scope(None), week, later, week.buckets)
    )


def checkpoints_stored() -> list[date]:
    return sorted(db.session.scalars(sa.select(DashboardTotal.through).distinct()).all())


def test_refresh_adds_each_day_once_and_keeps_running_totals(history):
    rollup.refresh(datetime(2026, 10, 20, 12, 0, tzinfo=UTC))
    db.session.commit()
    assert checkpoints_stored() == [date(2026, 9, 30), date(2026, 10, 19)]
    rows = db.session.scalar(sa.select(sa.func.count()).select_from(DashboardDay))
    again = rollup.refresh(datetime(2026, 10, 20, 13, 0, tzinfo=UTC))
    assert again.added is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DashboardDay)) == rows
    # Sealing on: month ends stay, the last sealed day moves (the old one was no month end).
    rollup.refresh(NOW)
    db.session.commit()
    assert checkpoints_stored() == [date(2026, 9, 30), date(2026, 10, 31), date(2026, 11, 29)]
    for through in checkpoints_stored():
        end = datetime.combine(through + timedelta(days=1), datetime.min.time(), UTC)
        done = db.session.scalar(sa.select(sa.func.count()).where(Submission.created_at < end))
        assert (
            db.session.scalar(
                sa.select(sa.func.sum(DashboardTotal.done)).where(DashboardTotal.through == through)
            )
            == done
        )
        assert (
            db.session.scalar(
                sa.select(sa.func.sum(DashboardRatioTotal.done)).where(DashboardRatioTotal.through == through)
            )
            == done
        )


def test_erasure_after_sealing_changes_no_figure(history):
    rollup.refresh(NOW)
    db.session.commit()
    period = Period(FIRST_DAY, TODAY)
    before = live(Scope(None), period)
    # What erasing clips does to their submissions: accepted work becomes withdrawn.
    db.session.execute(
        sa.update(Submission)
        .where(Submission.status == SubmissionStatus.ACCEPTED, Submission.reviewer_id.is_not(None))
        .values(status=SubmissionStatus.WITHDRAWN, transcript="")
    )
    db.session.commit()
    assert live(Scope(None), period) == before
    assert comparable(services.summaries(Scope(None), period, NOW)) == before


def test_rows_written_behind_the_portals_back_need_a_rebuild(app, history):
    rollup.refresh(NOW)
    db.session.commit()
    period = Period(FIRST_DAY, TODAY)
    load(app, end=NOW - timedelta(days=3), days=20, seed=11)
    assert comparable(services.summaries(Scope(None), period, NOW)) != live(Scope(None), period)
    result = rollup.rebuild(NOW)
    db.session.commit()
    assert result.sealed_through == TODAY - timedelta(days=1)
    assert comparable(services.summaries(Scope(None), period, NOW)) == live(Scope(None), period)


def test_concurrent_refreshes_add_each_day_once(app, history):
    db.session.remove()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def refresh() -> None:
        try:
            with app.app_context():
                barrier.wait()
                rollup.refresh(NOW)
                db.session.commit()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sealed = db.session.scalar(sa.select(DashboardRollup.sealed_through))
    assert sealed == TODAY - timedelta(days=1)
    duplicates = db.session.execute(
        sa.select(DashboardDay.day, DashboardDay.vendor_id, DashboardDay.user_id)
        .group_by(DashboardDay.day, DashboardDay.vendor_id, DashboardDay.user_id)
        .having(sa.func.count() > 1)
    ).all()
    assert duplicates == []
    period = Period(FIRST_DAY, TODAY)
    assert comparable(services.summaries(Scope(None), period, NOW)) == live(Scope(None), period)


def test_cli_refresh_and_rebuild(app, runner, history):
    result = runner.invoke(args=["dashboard", "refresh"])
    assert result.exit_code == 0, result.output
    assert f"sealed through {(TODAY - timedelta(days=1)).isoformat()}" in result.output
    assert "added " in result.output
    result = runner.invoke(args=["dashboard", "refresh"])
    assert "nothing new to add" in result.output
    result = runner.invoke(args=["dashboard", "refresh", "--rebuild"])
    assert result.exit_code == 0 and "added " in result.output


def test_the_page_seals_days_before_reading(app, client, clock, supervisor, login_as):
    load(app, supervisor.id)
    login_as(client, supervisor)
    response = client.get(f"/supervisor?from={FIRST_DAY.isoformat()}&to={TODAY.isoformat()}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Tasks done per week" in page
    with app.app_context():
        assert db.session.scalar(sa.select(DashboardRollup.sealed_through)) == TODAY - timedelta(days=1)
        done = db.session.scalar(sa.select(sa.func.count()).select_from(Submission))
    assert f"{done:,}" in page
    # The CSVs read the rollup too: the time-on-task histogram counts every submission.
    csv = client.get(f"/supervisor/time-on-task.csv?from={FIRST_DAY.isoformat()}&to={TODAY.isoformat()}")
    assert csv.status_code == 200
    lines = csv.get_data(as_text=True).strip().splitlines()[1:]
    assert sum(int(line.rsplit(",", 1)[1]) for line in lines) == done


def test_a_refresh_with_nothing_new_takes_no_lock(history, database_url):
    """Page views find nothing new almost always; they must not queue behind each other."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time anyway")
    rollup.refresh(NOW)
    db.session.commit()
    engine = sa.create_engine(database_url)
    with engine.connect() as other:
        other.execute(sa.text("SELECT id FROM dashboard_rollup WHERE id = 1 FOR UPDATE"))
        db.session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        assert rollup.refresh(NOW + timedelta(minutes=1)).added is None
        db.session.rollback()
        other.rollback()
    engine.dispose()
