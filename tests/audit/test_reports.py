"""Per-clip and per-user reports, the anomaly rules and their thresholds, working hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from portal.audit import reports
from portal.audit.models import Outcome
from portal.audit.services import Actor, record_event
from portal.auth.models import Role, User, UserSession, Vendor
from portal.clips.models import Clip, ClipStatus
from portal.extensions import db
from portal.tasks.models import Task, TaskLease, TaskStatus
from tests.audit.conftest import stored_events
from tests.conftest import post_form

CLIP = "c" * 32
OTHER = "d" * 32
SIZE = 1000  # bytes of the clip's file; the clip lasts 10 s


@pytest.fixture
def app_env(app_env):
    app_env.update({"PORTAL_AUDIT_DENIED_ATTEMPTS": "3", "PORTAL_AUDIT_ANOMALY_DAYS": "7"})
    return app_env


@pytest.fixture
def emit(app, clock):
    """emit(actor, action, target, outcome=..., at=None, **details): record one event now (or at `at`)."""

    def factory(
        actor: Actor,
        action: str,
        target: str | None = None,
        outcome: Outcome = Outcome.ALLOWED,
        at: datetime | None = None,
        **details: Any,
    ) -> dict[str, Any]:
        if at is not None:
            clock.advance(seconds=(at - clock.now).total_seconds())
        else:
            clock.advance(seconds=1)
        with app.app_context():
            event = record_event(actor, action, outcome=outcome, target=target, details=details)
            db.session.commit()
        return event

    return factory


def _actor(
    person, role: str = "annotator", vendor: str | None = "Acme Transcription", ip: str = "10.0.0.1"
) -> Actor:
    return Actor(user_id=person.id, label=person.email, role=role, vendor=vendor, ip=ip, session_ref="s" * 32)


def play(emit, actor: Actor, grant: int, ranges: list[tuple[int, int]], clip: str = CLIP, **ids: Any) -> None:
    """A grant and the byte ranges served under it, as playback.services records them."""
    emit(actor, "playback.granted", f"clip:{clip}", grant=grant, expires_in=60, **ids)
    for first, last in ranges:
        emit(
            actor,
            "playback.range",
            f"clip:{clip}",
            grant=grant,
            first=first,
            last=last,
            length=last - first + 1,
            size=SIZE,
            **ids,
        )


@pytest.fixture
def clip_row(app, clock):
    with app.app_context():
        clip = Clip(
            public_id=CLIP,
            subject_pseudonym="s" * 64,
            locale="en-US",
            duration_ms=10_000,
            consent_opt_in=True,
            consent_recorded_at=clock.now,
            consent_scope="human_review",
            transcript="",
            passes=1,
            status=ClipStatus.ACTIVE,
            ingested_at=clock.now,
            retain_until=clock.now + timedelta(days=90),
        )
        db.session.add(clip)
        db.session.commit()
        return clip.id


def test_the_clip_report_says_who_heard_which_seconds_how_often(app, clip_row, create_user, emit):
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    sam = create_user(Role.SUPERVISOR, email="sam@acme.example")
    ada_actor, sam_actor = _actor(ada), _actor(sam, role="supervisor")
    play(emit, ada_actor, 1, [(0, 499), (500, 999)], task=1, lease=11)
    emit(
        ada_actor,
        "playback.progress",
        f"clip:{CLIP}",
        task=1,
        lease=11,
        heard_share=0.8,
        heard=[[0, 4.0], [6.0, 10.0]],
    )
    play(emit, ada_actor, 2, [(0, 999), (0, 999)], task=1, lease=11)  # fetched twice: a replay
    play(emit, sam_actor, 3, [(0, 299)], task=1, submission=5)
    emit(sam_actor, "playback.denied", f"clip:{CLIP}", outcome=Outcome.DENIED, reason="expired")
    emit(ada_actor, "task.claimed", "task:1", clip=CLIP)  # about the task, not the clip: not counted
    with app.app_context():
        report = reports.clip_report(CLIP)
    assert report is not None and report.duration == 10.0 and report.total_events == 10
    first, second = report.listeners
    assert (first.actor, first.granted, first.full_plays, round(first.servings, 2)) == (
        "ada@acme.example",
        2,
        3,
        3.0,
    )
    assert first.served_seconds(10.0) == [[0.0, 10.0]]
    assert first.heard_seconds == [[0.0, 4.0], [6.0, 10.0]] and first.heard_share == 0.8
    assert (second.actor, second.granted, second.full_plays, second.denied) == ("sam@acme.example", 1, 0, 1)
    assert second.served_seconds(10.0) == [[0.0, 3.0]] and second.heard_seconds == []
    assert reports.clip_report("e" * 32) is None


def test_heard_seconds_come_from_the_lease_when_progress_events_carry_none(
    app, clip_row, create_user, emit, clock
):
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    with app.app_context():
        task = Task(clip_id=clip_row, pass_number=1, status=TaskStatus.LEASED, created_at=clock.now)
        session = UserSession(
            token_hash="t" * 64,
            ref="r" * 32,
            user_id=ada.id,
            created_at=clock.now,
            last_seen_at=clock.now,
            expires_at=clock.now + timedelta(hours=1),
        )
        db.session.add_all([task, session])
        db.session.flush()
        lease = TaskLease(
            task_id=task.id,
            clip_id=clip_row,
            user_id=ada.id,
            session_id=session.id,
            leased_at=clock.now,
            expires_at=clock.now + timedelta(minutes=10),
            heard_intervals="[[1.5,7.25]]",
            served_ranges="[]",
        )
        db.session.add(lease)
        db.session.commit()
        lease_id, task_id = lease.id, task.id
    play(emit, _actor(ada), 1, [(0, 999)], task=task_id, lease=lease_id)
    emit(_actor(ada), "playback.progress", f"clip:{CLIP}", task=task_id, lease=lease_id, heard_share=0.58)
    with app.app_context():
        [listener] = reports.clip_report(CLIP).listeners
    assert listener.heard_seconds == [[1.5, 7.2]]


def test_the_clip_report_page(app, clip_row, create_user, emit, login_as, client):
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    play(emit, _actor(ada), 1, [(0, 499)], task=1, lease=1)
    auditor = create_user(Role.AUDITOR)
    login_as(client, auditor)
    page = client.get(f"/audit/clips/{CLIP}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "ada@acme.example" in html and "served 0.0–5.0" in html
    assert '<rect class="served" x="0.0" y="0" width="500.0" height="16">' in html
    assert client.get("/audit/clips/" + "e" * 32).status_code == 404


def _flags(app, since: datetime, until: datetime, **thresholds: int) -> list[reports.Flag]:
    with app.app_context():
        return reports.find_anomalies(since, until, reports.Thresholds(**thresholds))


def test_streaming_far_more_than_claimed_tasks(app, create_user, emit, clock):
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    start = clock.now
    emit(_actor(ada), "task.claimed", "task:1", clip=CLIP)
    for grant in range(1, 5):
        play(emit, _actor(ada), grant, [(0, 999)], clip=f"{grant:032x}", task=1, lease=1)
    assert [f.rule for f in _flags(app, start, clock.now + timedelta(seconds=1))] == []  # 4 servings < 5
    play(emit, _actor(ada), 5, [(0, 999)], clip=f"{5:032x}", task=1, lease=1)
    [flag] = _flags(app, start, clock.now + timedelta(seconds=1))
    assert (flag.rule, flag.actor_id, flag.value, flag.threshold) == (
        "streaming_beyond_tasks",
        ada.id,
        5.0,
        3,
    )
    assert "for 1 task(s) worked" in flag.summary
    # A second claimed task raises the allowance to 6: no flag; lowering the ratio brings it back.
    emit(_actor(ada), "task.claimed", "task:2", clip=CLIP)
    assert _flags(app, start, clock.now + timedelta(seconds=1)) == []
    assert [f.rule for f in _flags(app, start, clock.now + timedelta(seconds=1), streams_per_task=2)] == [
        "streaming_beyond_tasks"
    ]


def test_repeated_full_replays_of_one_clip(app, create_user, emit, clock):
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    start = clock.now
    emit(_actor(ada), "task.claimed", "task:1", clip=CLIP)
    play(emit, _actor(ada), 1, [(0, 999), (0, 999)], task=1, lease=1)
    play(emit, _actor(ada), 2, [(0, 600)], task=1, lease=1)  # a partial fetch is no full play
    assert _flags(app, start, clock.now + timedelta(seconds=1), streams_min=99) == []
    play(emit, _actor(ada), 3, [(0, 499), (500, 999)], task=1, lease=1)
    [flag] = _flags(app, start, clock.now + timedelta(seconds=1), streams_min=99)
    assert (flag.rule, flag.value, flag.evidence["clip"]) == ("repeated_full_replays", 3, CLIP)
    # Only the window counts.
    assert _flags(app, clock.now + timedelta(seconds=1), clock.now + timedelta(hours=1)) == []


def _set_hours(app, vendor: str, start: time, end: time, zone: str) -> None:
    with app.app_context():
        row = db.session.scalar(sa.select(Vendor).where(Vendor.name == vendor))
        row.work_start, row.work_end, row.work_timezone = start, end, zone
        db.session.commit()


def test_access_outside_declared_working_hours(app, create_user, emit, clock):
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    kiran = create_user(Role.ANNOTATOR, vendor="Night Owls", email="kiran@owls.example")
    bo = create_user(Role.ANNOTATOR, vendor="No Hours Declared", email="bo@none.example")
    _set_hours(app, "Acme Transcription", time(9), time(17), "Europe/Berlin")  # UTC+1 in winter
    _set_hours(app, "Night Owls", time(22), time(6), "Asia/Kolkata")  # UTC+5:30, over midnight
    day = datetime(2026, 12, 1, tzinfo=UTC)
    events = [
        (ada, "Acme Transcription", day.replace(hour=7, minute=59)),  # 08:59 Berlin: outside
        (ada, "Acme Transcription", day.replace(hour=8, minute=0)),  # 09:00 Berlin: inside
        (ada, "Acme Transcription", day.replace(hour=15, minute=59)),  # 16:59 Berlin: inside
        (ada, "Acme Transcription", day.replace(hour=16, minute=0)),  # 17:00 Berlin: outside
        (kiran, "Night Owls", day.replace(hour=17, minute=0)),  # 22:30 Kolkata: inside
        (kiran, "Night Owls", day.replace(hour=20, minute=0)),  # 01:30 Kolkata: inside
        (kiran, "Night Owls", day.replace(hour=23, minute=0)),  # 04:30 Kolkata: inside
        (bo, "No Hours Declared", day.replace(hour=23, minute=30)),  # no hours: never flagged
    ]
    for person, vendor, moment in events:
        emit(_actor(person, vendor=vendor), "auth.sign_in", f"user:{person.id}", at=moment)
    flags = _flags(app, day, day + timedelta(days=1))
    assert [(f.rule, f.actor_id, f.value) for f in flags] == [("outside_working_hours", ada.id, 2)]
    assert "outside 09:00–17:00 Europe/Berlin" in flags[0].summary
    assert flags[0].first_at == day.replace(hour=7, minute=59)
    assert _flags(app, day, day + timedelta(days=1), off_hours_events=3) == []


def test_many_denied_attempts_by_a_person_or_from_an_address(app, create_user, emit):
    mallory = create_user(Role.ANNOTATOR, email="mallory@acme.example")
    for _ in range(2):
        emit(_actor(mallory), "access.denied", outcome=Outcome.DENIED, path="/admin/")
    stranger = Actor(label="guess@acme.example", ip="198.51.100.7")
    for _ in range(3):
        emit(stranger, "auth.sign_in", outcome=Outcome.FAILED, reason="unknown_account")
    with app.app_context():
        config = dict(app.config)
    thresholds = reports.Thresholds.from_config(config)
    assert thresholds.denied_attempts == 3
    since = datetime(2026, 1, 1, tzinfo=UTC)
    until = datetime(2027, 1, 1, tzinfo=UTC)
    with app.app_context():
        flags = reports.find_anomalies(since, until, thresholds)
    assert [(f.rule, f.actor_id, f.actor, f.value) for f in flags] == [
        ("denied_attempts", None, "signed out, from 198.51.100.7", 3)
    ]
    emit(_actor(mallory), "playback.denied", f"clip:{CLIP}", outcome=Outcome.DENIED, reason="other_user")
    with app.app_context():
        flags = reports.find_anomalies(since, until, thresholds)
    assert {(f.actor_id, f.value) for f in flags} == {(None, 3), (mallory.id, 3)}


def test_the_anomalies_page_and_the_user_report(app, create_user, emit, login_as, client, clock):
    mallory = create_user(Role.ANNOTATOR, email="mallory@acme.example")
    for _ in range(3):
        emit(_actor(mallory), "access.denied", outcome=Outcome.DENIED, path="/admin/")
    play(emit, _actor(mallory), 1, [(0, 999)], task=1, lease=1)
    auditor = create_user(Role.AUDITOR)
    login_as(client, auditor)
    html = client.get("/audit/anomalies").get_data(as_text=True)
    assert "Many denied attempts" in html and "mallory@acme.example" in html
    assert re.search(rf'href="/audit/users/{mallory.id}\?since=[^"]+"', html)
    assert "3 / 3" in html
    report = client.get(f"/audit/users/{mallory.id}")
    assert report.status_code == 200
    text = report.get_data(as_text=True)
    assert "Many denied attempts" in text and "access.denied" in text and f"clip:{CLIP[:12]}" in text
    assert client.get("/audit/users/999999").status_code == 404
    assert client.get(f"/audit/users/{mallory.id}?since=2026-12-02&until=2026-12-01").status_code == 400
    assert client.get("/audit/anomalies?since=nonsense").status_code == 400
    empty = client.get("/audit/anomalies?since=2020-01-01T00:00&until=2020-01-02T00:00")
    assert "Nothing stands out in this window." in empty.get_data(as_text=True)


def test_admins_declare_a_vendors_working_hours(app, create_user, login_as, client):
    annotator = create_user(Role.ANNOTATOR)
    admin = create_user(Role.ADMIN)
    login_as(client, admin)
    with app.app_context():
        vendor_id = db.session.get(User, annotator.id).vendor_id
    page = f"/admin/vendors/{vendor_id}"
    assert client.get("/admin/").get_data(as_text=True).count(f'href="{page}"') == 1
    assert client.get(page).status_code == 200
    partial = post_form(client, page, {"work_start": "09:00", "work_end": "", "work_timezone": ""})
    assert partial.status_code == 400 and "or none of them" in partial.get_data(as_text=True)
    unknown = post_form(
        client, page, {"work_start": "09:00", "work_end": "17:00", "work_timezone": "Mars/Olympus"}
    )
    assert unknown.status_code == 400 and "not a time zone name" in unknown.get_data(as_text=True)
    saved = post_form(
        client, page, {"work_start": "22:00", "work_end": "06:00", "work_timezone": "Asia/Kolkata"}
    )
    assert saved.status_code == 303
    with app.app_context():
        vendor = db.session.get(Vendor, vendor_id)
        assert (vendor.work_start, vendor.work_end, vendor.work_timezone) == (
            time(22),
            time(6),
            "Asia/Kolkata",
        )
        assert reports.working_hours(vendor).describe() == "22:00–06:00 Asia/Kolkata"
    cleared = post_form(client, page, {"work_start": "", "work_end": "", "work_timezone": ""})
    assert cleared.status_code == 303
    changes = [e for e in stored_events(app) if e["action"] == "admin.vendor_hours_set"]
    assert [e["details"] for e in changes] == [
        {"start": "22:00", "end": "06:00", "timezone": "Asia/Kolkata"},
        {"start": None, "end": None, "timezone": None},
    ]
    assert all(e["actor"] == admin.email and e["target"] == f"vendor:{vendor_id}" for e in changes)
