"""Leases: renewal, expiry, release, and every refusal of someone who is not the live holder.

Refusals are 403s recorded as `access.denied` with the reason, as loudly as granted actions.
"""

from __future__ import annotations

from portal.auth.models import Role
from portal.tasks.models import LeaseEnd, TaskStatus
from tests.auth.helpers import audit_events, details
from tests.tasks.helpers import denied_reasons, leases, submissions, task_row

HOLDER_ACTIONS = ("work", "renew", "draft", "skip", "report", "submit", "playback", "progress")


def _act(worker, action: str, task_id: int, lease_id: int):
    """One holder-only request, the way the page makes it."""
    return {
        "work": lambda: worker.client.get(f"/tasks/{task_id}"),
        "renew": lambda: worker.renew(task_id),
        "draft": lambda: worker.draft(task_id, "not mine"),
        "skip": lambda: worker.skip(task_id),
        "report": lambda: worker.report(task_id),
        "submit": lambda: worker.submit(task_id, "not mine", lease_id),
        "playback": lambda: worker.json(f"/tasks/{task_id}/playback"),
        "progress": lambda: worker.json(f"/tasks/{task_id}/progress", {"heard": [[0, 1]], "final": True}),
    }[action]()


def _assert_refused_everything(app, worker, task_id: int, lease_id: int, reason: str) -> None:
    before = len(audit_events(app, "access.denied"))
    for action in HOLDER_ACTIONS:
        response = _act(worker, action, task_id, lease_id)
        assert response.status_code == 403, (action, response.status_code)
    refused = denied_reasons(app, before)
    assert len(refused) == len(HOLDER_ACTIONS)
    assert all(actor == worker.person.id and reason in why for actor, _, why in refused), refused
    assert submissions(app) == []


def test_renewal_extends_from_now(app, worker, ingest, clock):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    clock.advance(minutes=8)
    response = annotator.renew(task_id)
    assert response.status_code == 200
    assert response.get_json()["expires_in"] == 600
    (lease,) = leases(app)
    assert (lease.expires_at - clock.now).total_seconds() == 600
    assert task_row(app, task_id).lease_expires_at == lease.expires_at
    clock.advance(minutes=9)
    assert annotator.client.get(f"/tasks/{task_id}").status_code == 200
    assert len(audit_events(app, "task.lease_renewed")) == 1


def test_expired_lease_cuts_the_holder_off_even_before_anyone_claims(app, worker, ingest, clock):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    lease_id = annotator.lease_id(task_id)
    annotator.listen(task_id)
    clock.advance(minutes=10, seconds=1)
    _assert_refused_everything(app, annotator, task_id, lease_id, "expired")


def test_expired_lease_is_claimable_and_the_old_holder_is_cut_off(app, worker, ingest, clock):
    ingest()
    first = worker()
    task_id = first.claim()
    old_lease = first.lease_id(task_id)
    first.listen(task_id)
    first.draft(task_id, "half done")
    clock.advance(minutes=11)

    second = worker()
    assert second.claim() == task_id
    old, new = leases(app)
    assert (old.id, old.ended_at, old.end_reason) == (old_lease, clock.now, LeaseEnd.EXPIRED.value)
    assert (new.user_id, new.ended_at) == (second.person.id, None)
    assert task_row(app, task_id).current_lease_id == new.id
    (expired,) = audit_events(app, "task.lease_expired")
    assert details(expired)["lease"] == old.id and details(expired)["holder"] == first.person.id
    assert expired.actor_id == second.person.id

    _assert_refused_everything(app, first, task_id, old_lease, f"lease {old_lease} has ended (expired)")
    # The new holder starts from the machine transcript, not the previous holder's draft.
    page = second.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "half done" not in page


def test_live_lease_is_not_claimable_by_others(worker, ingest, clock):
    ingest()
    first = worker()
    second = worker()
    first.claim()
    clock.advance(minutes=9, seconds=59)
    assert second.claim() is None
    clock.advance(seconds=1)
    assert second.claim() is not None


def test_another_annotator_and_another_vendor_are_refused(app, worker, ingest):
    ingest()
    holder = worker()
    task_id = holder.claim()
    lease_id = holder.lease_id(task_id)
    _assert_refused_everything(app, worker(), task_id, lease_id, "not the holder")
    _assert_refused_everything(app, worker(vendor="Other Vendor"), task_id, lease_id, "not the holder")
    assert task_row(app, task_id).status is TaskStatus.LEASED


def test_the_holder_in_another_session_is_refused(app, worker, ingest):
    ingest()
    holder = worker()
    task_id = holder.claim()
    lease_id = holder.lease_id(task_id)
    elsewhere = worker(person=holder.person)
    _assert_refused_everything(app, elsewhere, task_id, lease_id, "held in another session")
    assert holder.client.get(f"/tasks/{task_id}").status_code == 200


def test_unknown_task_is_refused_like_anyone_elses(app, worker):
    annotator = worker()
    assert annotator.client.get("/tasks/999999").status_code == 403
    assert denied_reasons(app)[-1] == (annotator.person.id, "/tasks/999999", "no such task")


def test_skip_records_the_reason_and_requeues(app, worker, ingest):
    reasons = ["know_speaker", "cannot_hear", "wrong_language", "other"]
    for _ in reasons:
        ingest()
    annotator = worker()
    for reason in reasons:
        task_id = annotator.claim()
        response = annotator.skip(task_id, reason)
        assert response.status_code == 303 and response.headers["Location"] == "/tasks"
        lease = leases(app, task_id=task_id)[0]
        assert (lease.end_reason, lease.skip_reason) == ("skipped", reason)
        task = task_row(app, task_id)
        assert (task.status, task.current_lease_id, task.lease_expires_at) == (TaskStatus.QUEUED, None, None)
    assert [details(event)["reason"] for event in audit_events(app, "task.skipped")] == reasons


def test_skip_without_a_known_reason_keeps_the_lease(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    for data in ({}, {"reason": "bored"}):
        response = annotator.form(f"/tasks/{task_id}/skip", data)
        assert response.status_code == 303 and response.headers["Location"] == f"/tasks/{task_id}"
    assert leases(app)[0].ended_at is None
    assert task_row(app, task_id).status is TaskStatus.LEASED


def test_draft_is_saved_on_the_lease_and_shown_again(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    response = annotator.draft(task_id, "call me at [PHONE] tomorrow")
    assert response.status_code == 200 and "saved_at" in response.get_json()
    assert leases(app)[0].draft == "call me at [PHONE] tomorrow"
    page = annotator.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "call me at [PHONE] tomorrow</textarea>" in page
    assert annotator.json(f"/tasks/{task_id}/draft", {"text": "wrong key"}).status_code == 400
    assert annotator.draft(task_id, "x" * 20_001).status_code == 400
    assert leases(app)[0].draft == "call me at [PHONE] tomorrow"


def test_requests_without_csrf_token_are_refused(app, worker, ingest):
    ingest()
    annotator = worker()
    assert annotator.form("/tasks/claim", csrf=False).status_code == 400
    assert leases(app) == []
    task_id = annotator.claim()
    annotator.listen(task_id)
    assert annotator.draft(task_id, "forged", csrf=False).status_code == 400
    assert annotator.json(f"/tasks/{task_id}/lease", csrf=False).status_code == 400
    assert annotator.submit(task_id, "forged", csrf=False).status_code == 400
    assert leases(app)[0].draft is None
    assert submissions(app) == []
    assert len(audit_events(app, "access.csrf_rejected")) == 4


def test_other_roles_are_refused(app, worker, ingest):
    ingest()
    holder = worker()
    task_id = holder.claim()
    lease_id = holder.lease_id(task_id)
    for role in (Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN):
        other = worker(role)
        before = len(audit_events(app, "access.denied"))
        assert other.client.get("/tasks").status_code == 403
        assert other.form("/tasks/claim").status_code == 403
        for action in HOLDER_ACTIONS[:6]:
            assert _act(other, action, task_id, lease_id).status_code == 403, (role, action)
        assert len(audit_events(app, "access.denied")) - before == 8
    assert len(leases(app)) == 1 and leases(app)[0].ended_at is None


def test_supervisor_release_requeues_and_cuts_the_holder_off(app, worker, ingest):
    ingest()
    holder = worker()
    task_id = holder.claim()
    lease_id = holder.lease_id(task_id)
    supervisor = worker(Role.SUPERVISOR)
    response = supervisor.form(f"/supervisor/leases/{lease_id}/release")
    assert response.status_code == 303
    (lease,) = leases(app)
    assert lease.end_reason == LeaseEnd.RELEASED.value
    assert task_row(app, task_id).status is TaskStatus.QUEUED
    (event,) = audit_events(app, "task.lease_released")
    assert (event.actor_id, details(event)["holder"]) == (supervisor.person.id, holder.person.id)
    _assert_refused_everything(app, holder, task_id, lease_id, "has ended (released)")
    assert holder.claim() is None
    assert worker().claim() == task_id
