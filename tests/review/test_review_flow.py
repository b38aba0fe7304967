"""Review with the other parts of the loop: the review grant, leases, and a rejection
travelling back through the queue to someone else."""

from __future__ import annotations

import re

import pytest

from portal.auth.models import Role
from portal.tasks.models import LeaseEnd, Submission, SubmissionStatus, Task, TaskLease, TaskStatus
from tests.auth.helpers import audit_events, details
from tests.conftest import csrf_token
from tests.review.helpers import ACME, GLOBEX, row

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}


@pytest.fixture
def people(create_user, publish):
    publish()
    return {
        "acme_annotator": create_user(Role.ANNOTATOR, vendor=ACME),
        "acme_annotator_2": create_user(Role.ANNOTATOR, vendor=ACME),
        "globex_annotator": create_user(Role.ANNOTATOR, vendor=GLOBEX),
        "acme_supervisor": create_user(Role.SUPERVISOR, vendor=ACME),
        "globex_supervisor": create_user(Role.SUPERVISOR, vendor=GLOBEX),
        "internal_supervisor": create_user(Role.SUPERVISOR, vendor=None),
    }


def _meta_token(client, path: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def _grant(client, submission_id: int):
    token = _meta_token(client, "/")
    return client.post(
        f"/review/{submission_id}/playback",
        json={},
        headers={"X-CSRFToken": token, "Accept": "application/json", **SAME_ORIGIN},
    )


def _decide(client, submission_id: int, decision: str, feedback: str = ""):
    token = csrf_token(client, f"/review/{submission_id}")
    return client.post(
        f"/review/{submission_id}", data={"csrf_token": token, "decision": decision, "feedback": feedback}
    )


def test_review_grant_is_scoped_and_ends_with_the_decision(app, client, login_as, people, work):
    clip = work.clip(vendors=(ACME, GLOBEX))
    submission_id = work.submit(clip.task_ids[0], people["acme_annotator"])

    login_as(client, people["globex_supervisor"])
    before = len(audit_events(app, "access.denied"))
    assert _grant(client, submission_id).status_code == 403
    (denied,) = audit_events(app, "access.denied")[before:]
    assert (
        denied.actor_id == people["globex_supervisor"].id and denied.target == f"submission:{submission_id}"
    )

    login_as(client, people["acme_annotator"])
    assert _grant(client, submission_id).status_code == 403

    login_as(client, people["acme_supervisor"])
    response = _grant(client, submission_id)
    assert response.status_code == 200, response.get_data(as_text=True)
    grant = response.get_json()
    assert grant["url"].startswith("/media/") and grant["expires_in"] > 0
    audio = client.get(grant["url"], headers={"Range": "bytes=0-99", **SAME_ORIGIN})
    assert audio.status_code == 206 and audio.data[:4] == b"fLaC"

    assert _decide(client, submission_id, "accept").status_code == 303
    # The page no longer offers the player, and neither a new grant nor the old one plays.
    assert _grant(client, submission_id).status_code == 403
    assert client.get(grant["url"], headers={"Range": "bytes=0-99", **SAME_ORIGIN}).status_code == 403
    reasons = [details(event)["reason"] for event in audit_events(app, "playback.denied")]
    assert "review_decided" in reasons


def test_rejected_work_goes_to_someone_else_with_the_feedback(app, client, login_as, people, work):
    clip = work.clip(vendors=(ACME,))
    (task_id,) = clip.task_ids
    first = people["acme_annotator"]
    submission_id = work.submit(task_id, first, "please call me")

    login_as(client, people["acme_supervisor"])
    assert _decide(client, submission_id, "reject", "Half the sentence is missing.").status_code == 303
    assert row(app, Task, task_id).status is TaskStatus.QUEUED

    # The annotator who was rejected never gets this clip again: the queue is empty for them.
    login_as(client, first)
    response = client.post("/tasks/claim", data={"csrf_token": csrf_token(client, "/tasks")})
    assert response.status_code == 303 and response.headers["Location"] == "/tasks"
    assert "Half the sentence is missing." in client.get("/tasks").get_data(as_text=True)

    # Someone else of the vendor gets it, with the reviewer's feedback on the work page.
    login_as(client, people["acme_annotator_2"])
    response = client.post("/tasks/claim", data={"csrf_token": csrf_token(client, "/tasks")})
    assert response.status_code == 303 and response.headers["Location"] == f"/tasks/{task_id}"
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Half the sentence is missing." in page
    assert row(app, Task, task_id).status is TaskStatus.LEASED
    assert row(app, Submission, submission_id).status is SubmissionStatus.REJECTED


def test_leases_page_is_scoped_and_releases(app, client, login_as, people, work):
    clip = work.clip(vendors=(ACME, GLOBEX), passes=2)
    acme_lease = work.lease(clip.task_ids[0], people["acme_annotator"])
    globex_lease = work.lease(clip.task_ids[1], people["globex_annotator"])

    login_as(client, people["acme_supervisor"])
    page = client.get("/supervisor/leases").get_data(as_text=True)
    assert people["acme_annotator"].email in page and people["globex_annotator"].email not in page
    assert f"/supervisor/leases/{acme_lease}/release" in page

    before = len(audit_events(app, "access.denied"))
    token = csrf_token(client, "/supervisor/leases")
    response = client.post(f"/supervisor/leases/{globex_lease}/release", data={"csrf_token": token})
    assert response.status_code == 403
    (denied,) = audit_events(app, "access.denied")[before:]
    assert denied.target == f"lease:{globex_lease}"
    assert row(app, TaskLease, globex_lease).ended_at is None

    response = client.post(f"/supervisor/leases/{acme_lease}/release", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/supervisor/leases"
    lease = row(app, TaskLease, acme_lease)
    assert lease.ended_at is not None and lease.end_reason == LeaseEnd.RELEASED.value
    assert row(app, Task, clip.task_ids[0]).status is TaskStatus.QUEUED
    (released,) = audit_events(app, "task.lease_released")
    assert released.actor_id == people["acme_supervisor"].id
    page = client.get("/supervisor/leases").get_data(as_text=True)
    assert "already ended" not in page and people["acme_annotator"].email not in page

    response = client.post(f"/supervisor/leases/{acme_lease}/release", data={"csrf_token": token})
    assert response.status_code == 303
    assert "That lease had already ended." in client.get("/supervisor/leases").get_data(as_text=True)

    login_as(client, people["internal_supervisor"])
    page = client.get("/supervisor/leases").get_data(as_text=True)
    assert people["globex_annotator"].email in page and GLOBEX in page
