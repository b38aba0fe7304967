"""Queue fixtures: real clips through ingest, and people signed in on their own clients."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.admin.services import create_vendor, find_vendor
from portal.auth.models import Role
from portal.clips.services import ingest_clip
from portal.clock import utcnow
from portal.extensions import db
from portal.tasks.models import Task
from tests.clips.helpers import ACME, metadata, vendor, wav
from tests.conftest import TEST_ACTOR, Person
from tests.tasks.helpers import Worker

__all__ = ["vendor"]

MACHINE = "email me at jordan.lee@example.com or call 415 555 0134"


@dataclass(frozen=True)
class Ingested:
    """A clip and its tasks (ids in pass order)."""

    public_id: str
    task_ids: list[int]


@pytest.fixture
def ingest(app: Flask, vendor: str) -> Callable[..., Ingested]:
    """ingest(priority=0, passes=1, vendors=(ACME,), transcript=MACHINE, seconds=1.0) → Ingested."""
    counter = iter(range(1, 10_000))

    def factory(
        priority: int = 0,
        passes: int = 1,
        vendors: tuple[str, ...] = (ACME,),
        transcript: str = MACHINE,
        seconds: float = 1.0,
    ) -> Ingested:
        with app.app_context():
            for name in vendors:
                if find_vendor(name) is None:
                    create_vendor(name, TEST_ACTOR)
            meta = metadata(
                passes=passes,
                priority=priority,
                vendors=list(vendors),
                transcript=transcript,
                source_user_id=f"subject-{next(counter)}",
            )
            result = ingest_clip(io.BytesIO(wav(seconds)), meta, TEST_ACTOR, utcnow())
            db.session.commit()
            tasks = db.session.scalars(
                sa.select(Task.id).where(Task.clip_id == result.clip.id).order_by(Task.pass_number)
            ).all()
            return Ingested(result.clip.public_id, list(tasks))

    return factory


@pytest.fixture
def worker(
    app: Flask, create_user: Callable[..., Person], login_as: Callable[..., FlaskClient], publish
) -> Callable[..., Worker]:
    """worker(role=ANNOTATOR, vendor=ACME, person=None) → a person signed in on a new client.

    An NDA is published first, so that every person passes the whole gate chain.
    """
    published: list[int] = []

    def factory(
        role: Role = Role.ANNOTATOR, vendor: str | None = ACME, person: Person | None = None
    ) -> Worker:
        if not published:
            published.append(publish())
        person = person or create_user(role, vendor)
        client = app.test_client()
        login_as(client, person)
        return Worker(app, client, person)

    return factory
