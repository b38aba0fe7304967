"""Playback fixtures: a real clip through ingest, an annotator holding its task, and requests
shaped the way the player sends them (JSON with the CSRF header, media with Fetch Metadata).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.auth.models import Role, User, UserSession
from portal.clips.services import ingest_clip
from portal.clock import utcnow
from portal.extensions import db
from portal.tasks.models import Task, TaskLease
from portal.tasks.services import claim_next_task
from tests.auth.helpers import audit_events, details
from tests.clips.helpers import ACME, clip_row, decrypt_stored, metadata, vendor, wav
from tests.conftest import TEST_ACTOR, Person

__all__ = ["vendor"]

# What Chromium sends with the player's fetch() of a same-origin URL.
FETCH = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}
CLIP_SECONDS = 2.0


def csrf_header(client: FlaskClient) -> dict[str, str]:
    """The X-CSRFToken header, read from the page's <meta name="csrf-token">."""
    page = client.get("/").get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert match, "no csrf-token meta on /"
    return {"X-CSRFToken": match.group(1), "Accept": "application/json"}


def post_json(client: FlaskClient, path: str, body: Any = None, raw: str | None = None):
    """POST JSON the way the page's scripts do (CSRF token in a header)."""
    headers = csrf_header(client)
    if raw is not None:
        return client.post(path, data=raw, content_type="application/json", headers=headers)
    return client.post(path, json=body if body is not None else {}, headers=headers)


def fetch(client: FlaskClient, url: str, range_header: str | None = "bytes=0-", **headers: str | None):
    """GET the media URL like the player's fetch(); a header given as None is left out."""
    sent = {**FETCH, **({"Range": range_header} if range_header else {}), **headers}
    return client.get(url, headers={name: value for name, value in sent.items() if value is not None})


def denials(app: Flask) -> list[dict[str, Any]]:
    """The `playback.denied` events, as their details plus actor and target."""
    return [
        {**details(event), "actor_id": event.actor_id, "target": event.target}
        for event in audit_events(app, "playback.denied")
    ]


def live_session(app: Flask, user_id: int) -> UserSession:
    """The user's newest session that has not ended."""
    with app.app_context():
        row = db.session.scalar(
            sa.select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
            .order_by(UserSession.id.desc())
            .limit(1)
        )
        assert row is not None
        return row


def lease_row(app: Flask, lease_id: int) -> TaskLease:
    with app.app_context():
        return db.session.get_one(TaskLease, lease_id)


@dataclass
class Holding:
    """An annotator signed in on `client` and holding the live lease on the clip's task."""

    app: Flask
    client: FlaskClient
    person: Person
    clip_public_id: str
    task_id: int
    lease_id: int

    def grant(self, client: FlaskClient | None = None) -> str:
        response = post_json(client or self.client, f"/tasks/{self.task_id}/playback")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["url"]

    def progress(self, body: Any, client: FlaskClient | None = None):
        return post_json(client or self.client, f"/tasks/{self.task_id}/progress", body)

    def plain_audio(self) -> bytes:
        return decrypt_stored(self.app, clip_row(self.app, self.clip_public_id))

    def lease(self) -> TaskLease:
        return lease_row(self.app, self.lease_id)

    def served(self) -> dict[str, Any]:
        return json.loads(self.lease().served_ranges)


@pytest.fixture
def ingest(app: Flask, vendor: str) -> Callable[..., str]:
    """ingest(seconds=2.0, passes=1) → the public id of a new clip for Acme's annotators."""
    counter = iter(range(1, 1000))

    def factory(seconds: float = CLIP_SECONDS, passes: int = 1) -> str:
        with app.app_context():
            meta = metadata(
                passes=passes, source_user_id=f"subject-{next(counter)}", transcript="hello there"
            )
            result = ingest_clip(io.BytesIO(wav(seconds)), meta, TEST_ACTOR, utcnow())
            db.session.commit()
            return result.clip.public_id

    return factory


def claim(app: Flask, person: Person) -> tuple[int, int]:
    """Claim the next task for `person` in their newest session; (task id, lease id)."""
    session_id = live_session(app, person.id).id
    with app.app_context():
        user = db.session.get_one(User, person.id)
        lease = claim_next_task(user, db.session.get_one(UserSession, session_id), utcnow())
        assert lease is not None, "nothing to claim"
        db.session.commit()
        return lease.task_id, lease.id


@pytest.fixture
def hold(app: Flask, create_user: Callable[..., Person], login_as, ingest) -> Callable[..., Holding]:
    """hold(client, seconds=2.0) → a new annotator on `client` holding a new clip's task."""

    def factory(client: FlaskClient, seconds: float = CLIP_SECONDS, person: Person | None = None) -> Holding:
        public_id = ingest(seconds)
        person = person or create_user(Role.ANNOTATOR, ACME)
        login_as(client, person)
        task_id, lease_id = claim(app, person)
        with app.app_context():
            assert db.session.get_one(Task, task_id).clip_id == clip_row(app, public_id).id
        return Holding(app, client, person, public_id, task_id, lease_id)

    return factory


@pytest.fixture
def holding(client: FlaskClient, hold: Callable[..., Holding]) -> Holding:
    """The usual case: one annotator, one clip, one live lease."""
    return hold(client)


def listen_fully(holding: Holding, client: FlaskClient | None = None) -> dict[str, Any]:
    """Fetch every byte under a fresh grant and report the whole clip as played."""
    client = client or holding.client
    url = holding.grant(client)
    assert fetch(client, url).status_code == 206
    response = holding.progress(
        {"position": CLIP_SECONDS, "speed": 1, "heard": [[0, 99]], "final": True}, client
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()
