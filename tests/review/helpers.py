"""Review and outbox test helpers: real clips through ingest, leases and submissions as the
queue stores them, and a way to run calls at the same moment.

Submissions are written the way the queue's `submit_correction` writes them (one lease,
one submission routed by `route_submission`, then `record_routing`), so these tests do not
depend on the player having reported a full listen.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.admin.services import create_vendor, find_vendor
from portal.auth.models import User, UserSession
from portal.auth.sessions import hash_token
from portal.clips.models import Clip
from portal.clips.services import ingest_clip
from portal.clock import utcnow
from portal.extensions import db
from portal.outbox.models import OutboxEntry
from portal.review.services import record_routing, route_submission
from portal.tasks.models import Submission, Task, TaskLease, TaskStatus
from portal.tasks.quality import error_rates
from tests.clips.helpers import metadata, wav
from tests.conftest import TEST_ACTOR, Person

ACME = "Acme Transcription"
GLOBEX = "Globex Voice"
MACHINE = "please call me back at home tomorrow"
T = TypeVar("T")


@dataclass(frozen=True)
class ClipRef:
    id: int
    public_id: str
    task_ids: list[int]


class Work:
    """Builds clips, leases and submissions in `app`'s database; each call commits."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.audio = wav(0.5)
        self.counter = 0

    def clip(
        self,
        vendors: Sequence[str] = (ACME,),
        passes: int = 1,
        transcript: str = MACHINE,
        **overrides: Any,
    ) -> ClipRef:
        self.counter += 1
        with self.app.app_context():
            for name in vendors:
                if find_vendor(name) is None:
                    create_vendor(name, TEST_ACTOR)
            meta = metadata(
                vendors=list(vendors),
                passes=passes,
                transcript=transcript,
                source_user_id=f"subject-{self.counter}",
                **overrides,
            )
            result = ingest_clip(io.BytesIO(self.audio), meta, TEST_ACTOR, utcnow())
            tasks = list(
                db.session.scalars(
                    sa.select(Task.id).where(Task.clip_id == result.clip.id).order_by(Task.pass_number)
                )
            )
            db.session.commit()
            return ClipRef(result.clip.id, result.clip.public_id, tasks)

    def _session(self, user: User) -> UserSession:
        now = utcnow()
        token = secrets.token_urlsafe(16)
        row = UserSession(
            token_hash=hash_token(token),
            ref=hash_token("ref:" + token)[:32],
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=1),
            mfa_verified_at=now,
        )
        db.session.add(row)
        db.session.flush()
        return row

    def lease(self, task_id: int, person: Person, minutes: int = 10) -> int:
        """A live lease of `person` on the task (the task becomes `leased`)."""
        with self.app.app_context():
            user = db.session.get_one(User, person.id)
            task = db.session.get_one(Task, task_id)
            now = utcnow()
            lease = TaskLease(
                task_id=task.id,
                clip_id=task.clip_id,
                user_id=user.id,
                vendor_id=user.vendor_id,
                session_id=self._session(user).id,
                leased_at=now,
                expires_at=now + timedelta(minutes=minutes),
                heard_intervals="[]",
                served_ranges="[]",
            )
            db.session.add(lease)
            db.session.flush()
            task.status = TaskStatus.LEASED
            task.current_lease_id = lease.id
            task.lease_expires_at = lease.expires_at
            db.session.commit()
            return lease.id

    def submit(self, task_id: int, person: Person, transcript: str = "please call me back tomorrow") -> int:
        """Lease, submit and route as the queue does; return the submission id."""
        lease_id = self.lease(task_id, person)
        with self.app.app_context():
            return submit_on_lease(lease_id, transcript)


def submit_on_lease(lease_id: int, transcript: str) -> int:
    """End the lease with a submission and route it; commits. Needs an app context."""
    now = utcnow()
    lease = db.session.get_one(TaskLease, lease_id)
    task = db.session.get_one(Task, lease.task_id)
    clip = db.session.get_one(Clip, task.clip_id)
    rates = error_rates(transcript, clip.transcript)
    lease.ended_at, lease.end_reason = now, "submitted"
    submission = Submission(
        task_id=task.id,
        lease_id=lease.id,
        clip_id=clip.id,
        user_id=lease.user_id,
        vendor_id=lease.vendor_id,
        transcript=transcript,
        wer=rates.wer,
        cer=rates.cer,
        edit_distance=rates.edit_distance,
        time_on_task_ms=int((now - lease.leased_at).total_seconds() * 1000),
        heard_share=1.0,
        fully_heard=True,
        created_at=now,
    )
    route_submission(submission, task, now)
    db.session.add(submission)
    task.current_lease_id = None
    task.lease_expires_at = None
    db.session.flush()
    record_routing(submission, task, TEST_ACTOR, now)
    db.session.commit()
    return submission.id


def row(app: Flask, model: type[T], key: int) -> T:
    with app.app_context():
        return db.session.get_one(model, key)


def outbox_positions(app: Flask) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(OutboxEntry.position).order_by(OutboxEntry.position)))


def run_together(calls: Sequence[Callable[[], T]], timeout: float = 60) -> list[T | BaseException]:
    """Run `calls` in threads released by one barrier; results (or raised errors) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # returned to the test, which decides
            results[index] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a concurrent call hung"
    return results


@pytest.fixture
def work(app: Flask) -> Work:
    return Work(app)


@pytest.fixture
def sample_all(app: Flask) -> None:
    """Every submission goes to review (the default, made explicit).

    Set on the built app: `route_submission` reads the setting at each call, and fixture
    order then does not matter. The setting's parsing is tested on `create_app`.
    """
    app.config["REVIEW_SAMPLE_RATE"] = 1.0


@pytest.fixture
def sample_none(app: Flask) -> None:
    """No submission goes to review: all are accepted into the outbox at once."""
    app.config["REVIEW_SAMPLE_RATE"] = 0.0
