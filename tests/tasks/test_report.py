"""Report a problem → quarantine (nobody streams or claims) → the admin releases or erases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.auth.models import Role
from portal.clips.models import Clip, ClipStatus
from portal.clips.services import quarantine_clip
from portal.clock import utcnow
from portal.extensions import db
from portal.tasks.models import LeaseEnd, ProblemReport, TaskStatus
from tests.auth.helpers import audit_events, details
from tests.clips.helpers import clip_row
from tests.conftest import TEST_ACTOR
from tests.tasks.helpers import FETCH, leases, task_row


def _reports(app) -> list[ProblemReport]:
    with app.app_context():
        return list(db.session.scalars(sa.select(ProblemReport).order_by(ProblemReport.id)))


def _offered(annotator) -> list[int]:
    """Every task the queue offers `annotator`, claiming and skipping until it is empty."""
    offered = []
    while (task_id := annotator.claim()) is not None:
        offered.append(task_id)
        annotator.skip(task_id)
    return offered


@pytest.fixture
def reported(app, worker, ingest):
    """A two-pass clip: `reporter` reports it while `other` holds its second pass."""
    clip = ingest(passes=2, priority=5)
    spare = ingest(priority=0)
    reporter, other, newcomer = worker(), worker(), worker()
    assert reporter.claim() == clip.task_ids[0]
    assert other.claim() == clip.task_ids[1]
    other_grant = other.json(f"/tasks/{clip.task_ids[1]}/playback").get_json()["url"]
    response = reporter.report(clip.task_ids[0], "pii_missed", "The caller says her full name at 0:03.")
    assert response.status_code == 303 and response.headers["Location"] == "/tasks"
    return clip, spare, reporter, other, newcomer, other_grant


def test_report_quarantines_the_clip_and_stops_everyone(app, reported):
    clip, spare, reporter, other, newcomer, other_grant = reported
    assert clip_row(app, clip.public_id).status is ClipStatus.QUARANTINED
    (report,) = _reports(app)
    assert (report.kind.value, report.note, report.user_id) == (
        "pii_missed",
        "The caller says her full name at 0:03.",
        reporter.person.id,
    )
    assert report.resolved_at is None
    by_user = {lease.user_id: lease for lease in leases(app)}
    assert by_user[reporter.person.id].end_reason == LeaseEnd.REPORTED.value
    assert by_user[other.person.id].end_reason == LeaseEnd.CANCELLED.value
    assert {task_row(app, t).status for t in clip.task_ids} == {TaskStatus.QUEUED}

    # Nobody can stream it, not even with a grant taken before the report, nor claim it.
    assert other.client.get(other_grant, headers={**FETCH, "Range": "bytes=0-"}).status_code == 403
    assert other.json(f"/tasks/{clip.task_ids[1]}/playback").status_code == 403
    assert other.renew(clip.task_ids[1]).status_code == 403
    assert _offered(newcomer) == [spare.task_ids[0]]

    (event,) = audit_events(app, "task.problem_reported")
    assert details(event)["kind"] == "pii_missed" and event.actor_id == reporter.person.id
    (quarantined,) = audit_events(app, "clips.quarantined")
    assert quarantined.target == f"clip:{clip.public_id}"
    assert details(quarantined)["leases_ended"] == [by_user[other.person.id].id]


def test_report_needs_a_known_kind(app, worker, ingest):
    clip = ingest()
    annotator = worker()
    task_id = annotator.claim()
    response = annotator.report(task_id, "boring")
    assert response.status_code == 303 and response.headers["Location"] == f"/tasks/{task_id}"
    assert clip_row(app, clip.public_id).status is ClipStatus.ACTIVE
    assert _reports(app) == []


def test_admin_sees_the_report_and_releases_the_clip(app, worker, reported):
    clip, _, reporter, other, newcomer, _ = reported
    admin = worker(Role.ADMIN)
    inventory = admin.client.get("/admin/clips/").get_data(as_text=True)
    assert f"/admin/clips/{clip.public_id}" in inventory
    page = admin.client.get(f"/admin/clips/{clip.public_id}").get_data(as_text=True)
    assert "The caller says her full name at 0:03." in page and reporter.person.email in page

    response = admin.form(f"/admin/clips/{clip.public_id}", {"decision": "release"})
    assert response.status_code == 303
    assert clip_row(app, clip.public_id).status is ClipStatus.ACTIVE
    (report,) = _reports(app)
    assert (report.resolution, report.resolved_by_id) == ("release", admin.person.id)
    (decided,) = audit_events(app, "clips.quarantine_decided")
    assert details(decided) == {"decision": "release", "reports": [report.id]}

    # Back in service: claimable by newcomers, never by those who held it.
    assert set(clip.task_ids).isdisjoint(_offered(reporter) + _offered(other))
    assert newcomer.claim() == clip.task_ids[0]


def test_admin_erases_a_reported_clip(app, worker, reported):
    clip, *_ = reported
    admin = worker(Role.ADMIN)
    unconfirmed = admin.form(f"/admin/clips/{clip.public_id}", {"decision": "erase"})
    assert unconfirmed.status_code == 400
    assert clip_row(app, clip.public_id).status is ClipStatus.QUARANTINED

    response = admin.form(f"/admin/clips/{clip.public_id}", {"decision": "erase", "confirm": "y"})
    assert response.status_code == 303
    row = clip_row(app, clip.public_id)
    assert (row.status, row.wrapped_key, row.transcript) == (ClipStatus.ERASED, None, "")
    assert {task_row(app, t).status for t in clip.task_ids} == {TaskStatus.CANCELLED}
    assert _reports(app)[0].resolution == "erase"
    assert len(audit_events(app, "clips.erased")) == 1
    again = admin.form(f"/admin/clips/{clip.public_id}", {"decision": "release"})
    assert again.status_code == 409


def test_a_clip_quarantined_by_the_integrity_check_can_only_be_erased(app, worker, ingest):
    clip = ingest()
    with app.app_context():
        row = db.session.scalar(sa.select(Clip).where(Clip.public_id == clip.public_id))
        quarantine_clip(row, "integrity", TEST_ACTOR, utcnow())
        db.session.commit()
    assert clip_row(app, clip.public_id).status is ClipStatus.QUARANTINED
    admin = worker(Role.ADMIN)
    response = admin.form(f"/admin/clips/{clip.public_id}", {"decision": "release"})
    assert response.status_code == 409
    assert "can only be erased" in response.get_data(as_text=True)
    assert clip_row(app, clip.public_id).status is ClipStatus.QUARANTINED


def test_only_admins_decide(app, worker, reported):
    clip, *_ = reported
    for role in (Role.SUPERVISOR, Role.AUDITOR, Role.ANNOTATOR):
        person = worker(role)
        assert person.client.get(f"/admin/clips/{clip.public_id}").status_code == 403
        assert person.form(f"/admin/clips/{clip.public_id}", {"decision": "release"}).status_code == 403
    assert clip_row(app, clip.public_id).status is ClipStatus.QUARANTINED
    admin = worker(Role.ADMIN)
    assert admin.client.get("/admin/clips/" + "0" * 32).status_code == 404
