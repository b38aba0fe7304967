"""Queue test helpers: an annotator (or supervisor) driving the portal over HTTP as the
work page does, and readers of what the database then holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.extensions import db
from portal.tasks.models import Submission, Task, TaskLease
from tests.auth.helpers import audit_events, details
from tests.conftest import Person

# What Chromium sends with the player's fetch() of a same-origin URL.
FETCH = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}
TASK_PATH = re.compile(r"^/tasks/(\d+)$")


def page_csrf(client: FlaskClient) -> str:
    """The CSRF token of this client's session, read from a page's <meta name="csrf-token">."""
    page = client.get("/").get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert match, "no csrf-token meta on /"
    return match.group(1)


def clone(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second client with the same cookies: the same browser session in another tab."""
    twin = app.test_client()
    for name in (app.config["AUTH_COOKIE_NAME"], app.config["SESSION_COOKIE_NAME"]):
        cookie = client.get_cookie(name)
        assert cookie is not None, f"no {name} cookie"
        twin.set_cookie(name, cookie.value, path=cookie.path)
    return twin


@dataclass
class Worker:
    """A signed-in person on their own client (browser session)."""

    app: Flask
    client: FlaskClient
    person: Person
    _token: str | None = field(default=None, repr=False)

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = page_csrf(self.client)
        return self._token

    def form(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True) -> TestResponse:
        sent = {**({"csrf_token": self.token} if csrf else {}), **(data or {})}
        return self.client.post(path, data=sent)

    def json(self, path: str, body: Any = None, csrf: bool = True) -> TestResponse:
        headers = {"Accept": "application/json", **({"X-CSRFToken": self.token} if csrf else {})}
        return self.client.post(path, json=body if body is not None else {}, headers=headers)

    def claim(self) -> int | None:
        """POST /tasks/claim; the task id it leads to, or None for an empty queue."""
        response = self.form("/tasks/claim")
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        target = response.headers["Location"]
        match = TASK_PATH.match(target)
        if match:
            return int(match.group(1))
        assert target == "/tasks", target
        return None

    def lease_id(self, task_id: int) -> int:
        """The hidden `lease_id` of the work page (what the browser would submit)."""
        page = self.client.get(f"/tasks/{task_id}")
        assert page.status_code == 200, page.status_code
        match = re.search(r'name="lease_id" type="hidden" value="(\d+)"', page.get_data(as_text=True))
        assert match, "no lease_id on the work page"
        return int(match.group(1))

    def listen(self, task_id: int, heard: list[list[float]] | None = None) -> dict[str, Any]:
        """What the player does: a grant, every byte in one range, then the progress report."""
        grant = self.json(f"/tasks/{task_id}/playback")
        assert grant.status_code == 200, grant.get_data(as_text=True)
        media = self.client.get(grant.get_json()["url"], headers={**FETCH, "Range": "bytes=0-"})
        assert media.status_code == 206, media.status_code
        report = {
            "position": 0.5,
            "speed": 1,
            "heard": heard if heard is not None else [[0, 99]],
            "final": True,
        }
        progress = self.json(f"/tasks/{task_id}/progress", report)
        assert progress.status_code == 200, progress.get_data(as_text=True)
        return progress.get_json()

    def submit(
        self, task_id: int, transcript: str, lease_id: int | None = None, csrf: bool = True
    ) -> TestResponse:
        lease = lease_id if lease_id is not None else self.lease_id(task_id)
        return self.form(f"/tasks/{task_id}/submit", {"transcript": transcript, "lease_id": str(lease)}, csrf)

    def skip(self, task_id: int, reason: str = "other") -> TestResponse:
        return self.form(f"/tasks/{task_id}/skip", {"reason": reason})

    def report(self, task_id: int, kind: str = "pii_missed", note: str = "") -> TestResponse:
        return self.form(f"/tasks/{task_id}/report", {"kind": kind, "note": note})

    def renew(self, task_id: int) -> TestResponse:
        return self.json(f"/tasks/{task_id}/lease")

    def draft(self, task_id: int, text: str, csrf: bool = True) -> TestResponse:
        return self.json(f"/tasks/{task_id}/draft", {"transcript": text}, csrf)


def leases(app: Flask, **where: Any) -> list[TaskLease]:
    with app.app_context():
        query = sa.select(TaskLease).order_by(TaskLease.id)
        for column, value in where.items():
            query = query.where(getattr(TaskLease, column) == value)
        return list(db.session.scalars(query))


def submissions(app: Flask, **where: Any) -> list[Submission]:
    with app.app_context():
        query = sa.select(Submission).order_by(Submission.id)
        for column, value in where.items():
            query = query.where(getattr(Submission, column) == value)
        return list(db.session.scalars(query))


def task_row(app: Flask, task_id: int) -> Task:
    with app.app_context():
        return db.session.get_one(Task, task_id)


def denied_reasons(app: Flask, since: int = 0) -> list[tuple[int | None, str, str]]:
    """(actor id, path, reason) of every `access.denied` event after the first `since`."""
    return [
        (event.actor_id, details(event)["path"], details(event)["reason"])
        for event in audit_events(app, "access.denied")[since:]
    ]
