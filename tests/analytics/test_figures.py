"""Every dashboard figure on the hand-made history of conftest.py, against answers worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest

from portal.analytics import services
from portal.analytics.services import OVERALL, By, Key, Period, Scope
from portal.analytics.sql import Unit
from portal.auth.models import Role
from portal.tasks.models import SubmissionStatus
from tests.analytics.conftest import at

NOW = at(30, 9)
WEEK = Period(date(2026, 11, 24), date(2026, 11, 30))


@pytest.fixture
def ctx(app, figures):
    with app.app_context():
        yield figures


def keys(figures):
    a1 = Key(figures.acme_id, figures.a1.id)
    a2 = Key(figures.acme_id, figures.a2.id)
    g1 = Key(figures.globex_id, figures.g1.id)
    return a1, a2, g1


def test_queue_now(ctx):
    rows, total = services.queue_status(Scope(None), NOW)
    by_vendor = {row.vendor: row for row in rows}
    acme, globex = by_vendor["Acme Transcription"], by_vendor["Globex Voice"]
    # Acme's pool: Q1 and the shared Q2 (the quarantined clip's task is not claimable).
    assert (acme.queued, acme.oldest_queued_at) == (2, at(29, 9))
    # Globex's pool: the shared Q2 and Q3, whose lease ran out at 08:40.
    assert (globex.queued, globex.oldest_queued_at) == (2, at(29, 9))
    assert (acme.in_progress, acme.awaiting_review) == (1, 1)
    assert (globex.in_progress, globex.awaiting_review) == (0, 0)
    # The shared task counts once in the total.
    assert (total.queued, total.oldest_queued_at, total.in_progress, total.awaiting_review) == (
        3,
        at(29, 9),
        1,
        1,
    )


def test_queue_of_one_vendor(ctx):
    rows, total = services.queue_status(Scope(ctx.globex_id, "Globex Voice", fixed=True), NOW)
    assert [row.vendor for row in rows] == ["Globex Voice"]
    assert (total.queued, total.in_progress, total.awaiting_review) == (2, 0, 0)


def test_tasks_done_per_day_and_hour(ctx):
    a1, a2, g1 = keys(ctx)
    per_day = {
        (row.bucket.date().day, row.key): row.done
        for row in services.tasks_done(Scope(None), WEEK, Unit.DAY, By.ANNOTATOR)
    }
    assert per_day == {(24, a1): 2, (25, a1): 1, (26, a2): 2, (27, g1): 2, (29, a1): 2}
    per_vendor = {
        (row.bucket.date().day, row.key): row.done
        for row in services.tasks_done(Scope(None), WEEK, Unit.DAY, By.VENDOR)
    }
    assert per_vendor == {
        (24, Key(ctx.acme_id)): 2,
        (25, Key(ctx.acme_id)): 1,
        (26, Key(ctx.acme_id)): 2,
        (27, Key(ctx.globex_id)): 2,
        (29, Key(ctx.acme_id)): 2,
    }
    per_hour = [
        (row.bucket, row.key, row.done) for row in services.tasks_done(Scope(None), WEEK, Unit.HOUR, By.ALL)
    ]
    assert per_hour == [
        (at(24, 10), OVERALL, 2),
        (at(25, 14), OVERALL, 1),
        (at(26, 11), OVERALL, 2),
        (at(27, 13), OVERALL, 2),
        (at(29, 9), OVERALL, 1),
        (at(29, 10), OVERALL, 1),
    ]
    # Active hours: a1 worked in 10:00 on the 24th, 14:00 on the 25th, 09:00 and 10:00 on the 29th.
    hours = {
        row.bucket.date().day: row.active_hours
        for row in services.tasks_done(Scope(None), WEEK, Unit.DAY, By.ANNOTATOR)
        if row.key == a1
    }
    assert hours == {24: 1, 25: 1, 29: 2}


def test_hour_of_day_profile(ctx):
    profile = services.hourly_profile(Scope(None), WEEK)
    assert len(profile) == 24
    assert {hour: done for hour, done in enumerate(profile) if done} == {9: 1, 10: 3, 11: 2, 13: 2, 14: 1}


def test_time_on_task_relative_to_clip_length(ctx):
    a1, a2, g1 = keys(ctx)
    times = services.time_on_task(Scope(None), WEEK)
    # a1: 1.5, 2.0, 0.5, 1.0, 3.0 → median (3rd of 5) 1.5, p90 (5th of 5) 3.0.
    assert (times[a1].submissions, times[a1].median, times[a1].p90) == (5, 1.5, 3.0)
    # a2: 1.2345 floored to 1.20, and 1.10 → median (1st of 2) 1.1, p90 (2nd of 2) 1.2.
    assert (times[a2].median, times[a2].p90) == (1.1, 1.2)
    assert (times[g1].median, times[g1].p90) == (0.5, 4.0)
    acme = times[a1] + times[a2]
    assert (acme.median, acme.p90) == (1.2, 3.0)
    everyone = acme + times[g1]
    assert (everyone.submissions, everyone.median, everyone.p90) == (9, 1.2, 4.0)
    assert everyone.histogram()[2] == (50, 75, 2)
    assert everyone.histogram()[-1] == (300, None, 2)


def test_rejection_rate(ctx):
    a1, a2, g1 = keys(ctx)
    reviews = services.review_outcomes(Scope(None), WEEK)
    # Automatic acceptances are not decisions; g1-11 was done before the range but decided in it.
    assert (reviews[a1].decided, reviews[a1].rejected, reviews[a1].rejection_rate) == (2, 1, 0.5)
    assert a2 not in reviews
    assert (reviews[g1].decided, reviews[g1].rejected) == (3, 2)
    total = reviews[a1] + reviews[g1]
    assert total.rejection_rate == pytest.approx(0.6)


def test_gold_scores(ctx):
    a1, a2, g1 = keys(ctx)
    gold = services.gold_scores(Scope(None), WEEK)
    assert (gold[a1].scored, gold[a1].wer, gold[a1].cer) == (1, pytest.approx(0.1), pytest.approx(0.05))
    acme = gold[a1] + gold[a2]
    assert (acme.scored, acme.wer, acme.cer) == (2, pytest.approx(0.2), pytest.approx(0.125))
    assert g1 not in gold


def test_leases_expired(ctx):
    a1, a2, g1 = keys(ctx)
    leases = services.expired_leases(Scope(None), WEEK, NOW)
    # a1: five submitted leases and one that ran out (noticed by a claim at 09:00).
    assert (leases[a1].taken, leases[a1].expired) == (6, 1)
    # a2: two submitted, one skipped, one live until 09:05: none ran out.
    assert (leases[a2].taken, leases[a2].expired) == (4, 0)
    # g1: two submitted, one ran out at 08:40 that no claim has noticed yet.
    assert (leases[g1].taken, leases[g1].expired) == (3, 1)
    # Ten minutes later the live lease has run out too.
    later = services.expired_leases(Scope(None), WEEK, at(30, 9, 10))
    assert later[a2].expired == 1


def test_rubber_stamps(ctx):
    a1, a2, g1 = keys(ctx)
    stamps = services.rubber_stamps(Scope(None), WEEK)
    assert (stamps[a1].unedited, stamps[a1].fast, stamps[a1].unheard, stamps[a1].flagged) == (2, 1, 1, 2)
    # Unedited, but slower than the clip and fully heard: not a rubber stamp.
    assert (stamps[a2].unedited, stamps[a2].flagged) == (1, 0)
    assert (stamps[g1].unedited, stamps[g1].fast, stamps[g1].flagged) == (1, 1, 1)
    flagged = list(services.flagged_submissions(Scope(None), WEEK))
    assert [row.submission_id for row in flagged] == [
        ctx.submissions[name] for name in ("a1-4", "g1-8", "a1-3")
    ]
    assert [row.reasons for row in flagged] == [
        ["not fully heard"],
        ["faster than the clip"],
        ["faster than the clip"],
    ]
    assert [row.submission_id for row in services.flagged_submissions(Scope(None), WEEK, limit=1)] == [
        ctx.submissions["a1-4"]
    ]


def test_the_edge_of_the_range(ctx):
    a1, _, _ = keys(ctx)
    day_before = Period(date(2026, 11, 23), date(2026, 11, 23))
    stamps = services.rubber_stamps(Scope(None), day_before)
    # a1-10 at 23:59:59 on the 23rd belongs to the 23rd, not the 24th.
    assert stamps[a1].flagged == 1
    assert [row.done for row in services.tasks_done(Scope(None), day_before, Unit.DAY, By.ALL)] == [1]


def test_page_summaries_add_up(ctx):
    a1, _, _ = keys(ctx)
    board = services.dashboard(Scope(None), WEEK, NOW)
    by_key = {summary.key: summary for summary in board.annotators}
    assert (by_key[a1].done, by_key[a1].active_hours, by_key[a1].per_active_hour) == (5, 4, 1.25)
    assert by_key[a1].series == {date(2026, 11, 24): 2, date(2026, 11, 25): 1, date(2026, 11, 29): 2}
    vendors = {board.names.vendor(summary.key): summary for summary in board.vendors}
    assert vendors["Acme Transcription"].done == 7
    assert vendors["Globex Voice"].done == 2
    total = board.overall
    assert (total.done, total.time.median, total.time.p90) == (9, 1.2, 4.0)
    assert (total.reviews.decided, total.reviews.rejected) == (5, 3)
    assert (total.leases.taken, total.leases.expired) == (13, 2)
    assert (total.stamps.flagged, total.gold.scored) == (3, 2)
    assert total.flagged_share == pytest.approx(3 / 9)
    assert [board.names.annotator(s.key) for s in board.annotators] == [
        "a1@acme.example",
        "a2@acme.example",
        "g1@globex.example",
    ]
    assert board.hourly is not None and board.hour_of_day is None


def test_long_ranges_show_the_hour_of_day_profile(ctx):
    board = services.dashboard(Scope(None), Period(date(2026, 9, 1), date(2026, 11, 30)), NOW)
    assert board.hourly is None
    assert sum(board.hour_of_day or []) == 11


def test_ratios_are_grouped_by_step_in_sql(app, ledger, create_user):
    """Ratios floor to 0.05 in the database: 1.2345× and 1.21× are one group of two."""
    person = create_user(Role.ANNOTATOR, "Acme Transcription", email="steps@acme.example")
    for time_ms in (12_345, 12_100, 12_500):
        ledger.submission(
            person,
            "Acme Transcription",
            at(27, 10),
            time_ms=time_ms,
            wer=0.1,
            status=SubmissionStatus.AUTO_ACCEPTED,
        )
    with app.app_context():
        (figures,) = services.quality(Scope(None), WEEK).values()
    assert figures.time.counts == {120: 2, 125: 1}


def test_every_figure_is_scoped_in_its_query(ctx):
    """Asked for Acme, every figure returns exactly Acme's part of the unscoped answer."""
    acme = Scope(ctx.acme_id, "Acme Transcription", fixed=True)
    everyone = Scope(None)

    def acme_part(values):
        return {key: value for key, value in values.items() if key.vendor_id == ctx.acme_id}

    for figure in (
        services.time_on_task,
        services.review_outcomes,
        services.gold_scores,
        services.rubber_stamps,
    ):
        scoped = figure(acme, WEEK)
        assert scoped and scoped == acme_part(figure(everyone, WEEK)), figure.__name__
    assert services.expired_leases(acme, WEEK, NOW) == acme_part(services.expired_leases(everyone, WEEK, NOW))
    for unit in (Unit.DAY, Unit.HOUR):
        for by in (By.ANNOTATOR, By.VENDOR):
            rows = list(services.tasks_done(acme, WEEK, unit, by))
            assert rows and {row.key.vendor_id for row in rows} == {ctx.acme_id}
            assert rows == [
                row
                for row in services.tasks_done(everyone, WEEK, unit, by)
                if row.key.vendor_id == ctx.acme_id
            ]
    assert sum(services.hourly_profile(acme, WEEK)) == 7
    assert [row.key.vendor_id for row in services.flagged_submissions(acme, WEEK)] == [
        ctx.acme_id,
        ctx.acme_id,
    ]
    rows, total = services.queue_status(acme, NOW)
    assert [row.vendor for row in rows] == ["Acme Transcription"] and total.queued == 2
    names = services.names_in(acme)
    assert sorted(names.annotators.values()) == ["a1@acme.example", "a2@acme.example", "lead@acme.example"]
    assert names.vendors == {ctx.acme_id: "Acme Transcription"}
    board = services.dashboard(acme, WEEK, NOW)
    assert {summary.key.vendor_id for summary in board.annotators} == {ctx.acme_id}
    assert [board.names.vendor(summary.key) for summary in board.vendors] == ["Acme Transcription"]
    assert board.overall.done == 7 and board.overall.reviews.decided == 2
