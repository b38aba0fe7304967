"""Dashboard test data: a small, hand-made history whose every figure is known.

Rows go in through the models (clips without audio: the dashboard only reads their length
and status). The clock of tests/conftest.py stands at 2026-11-30 09:00 UTC, so the default
range is 2026-11-24 … 2026-11-30. `KNOWN` in test_figures.py spells out the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from portal.admin.services import create_vendor, find_vendor
from portal.auth.models import Role, UserSession
from portal.clips.models import Clip, ClipStatus
from portal.extensions import db
from portal.tasks.models import ClipVendor, Submission, SubmissionStatus, Task, TaskLease, TaskStatus
from tests.conftest import TEST_ACTOR, Person

ACME = "Acme Transcription"
GLOBEX = "Globex Voice"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


class Ledger:
    """Writes clips, tasks, leases and submissions straight into the database."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.sessions: dict[int, int] = {}
        self.count = 0

    def vendor_id(self, name: str) -> int:
        with self.app.app_context():
            vendor = find_vendor(name) or create_vendor(name, TEST_ACTOR)
            db.session.commit()
            return vendor.id

    def _session(self, person: Person) -> int:
        if person.id not in self.sessions:
            row = UserSession(
                token_hash=f"{person.id:064x}",
                ref=f"{person.id:032x}",
                user_id=person.id,
                created_at=at(1, 0),
                last_seen_at=at(1, 0),
                expires_at=at(1, 12),
            )
            db.session.add(row)
            db.session.flush()
            self.sessions[person.id] = row.id
        return self.sessions[person.id]

    def task(
        self,
        pools: list[str],
        created: datetime,
        status: TaskStatus = TaskStatus.QUEUED,
        duration_ms: int = 10_000,
        clip_status: ClipStatus = ClipStatus.ACTIVE,
        gold: bool = False,
        **extra: Any,
    ) -> tuple[int, int]:
        """A clip (no audio) with its vendor pool and one task; returns (clip id, task id)."""
        vendor_ids = [self.vendor_id(name) for name in pools]
        with self.app.app_context():
            self.count += 1
            clip = Clip(
                public_id=f"{self.count:032x}",
                subject_pseudonym=f"{self.count:064x}",
                locale="en-US",
                duration_ms=duration_ms,
                consent_opt_in=True,
                consent_recorded_at=created,
                consent_scope="human_review",
                transcript="please call me back",
                passes=1,
                status=clip_status,
                ingested_at=created,
                retain_until=created + timedelta(days=90),
            )
            db.session.add(clip)
            db.session.flush()
            for vendor_id in vendor_ids:
                db.session.add(ClipVendor(clip_id=clip.id, vendor_id=vendor_id))
            task = Task(
                clip_id=clip.id,
                pass_number=1,
                status=status,
                created_at=created,
                is_gold=gold,
                gold_transcript="please call me back" if gold else None,
                **extra,
            )
            db.session.add(task)
            db.session.commit()
            return clip.id, task.id

    def lease(
        self,
        person: Person,
        vendor_id: int | None,
        task_id: int,
        clip_id: int,
        leased: datetime,
        expires: datetime | None = None,
        ended: datetime | None = None,
        reason: str | None = None,
    ) -> int:
        with self.app.app_context():
            lease = TaskLease(
                task_id=task_id,
                clip_id=clip_id,
                user_id=person.id,
                vendor_id=vendor_id,
                session_id=self._session(person),
                leased_at=leased,
                expires_at=expires or leased + timedelta(minutes=10),
                ended_at=ended,
                end_reason=reason,
            )
            db.session.add(lease)
            db.session.commit()
            return lease.id

    def submission(
        self,
        person: Person,
        pool: str,
        created: datetime,
        *,
        duration_ms: int = 10_000,
        time_ms: int,
        wer: float,
        status: SubmissionStatus,
        fully_heard: bool = True,
        gold: tuple[float, float] | None = None,
        reviewed: datetime | None = None,
        reviewer: Person | None = None,
    ) -> int:
        """A finished task: clip, task, the lease that ended with the submission, the submission."""
        # A rejected task went back to the queue and was since done again by someone else.
        task_status = {
            SubmissionStatus.PENDING_REVIEW: TaskStatus.SUBMITTED,
            SubmissionStatus.SCORED: TaskStatus.SCORED,
        }.get(status, TaskStatus.ACCEPTED)
        clip_id, task_id = self.task(
            [pool], created - timedelta(hours=1), task_status, duration_ms, gold=gold is not None
        )
        vendor_id = self.vendor_id(pool)
        leased = created - timedelta(milliseconds=time_ms)
        lease_id = self.lease(person, vendor_id, task_id, clip_id, leased, ended=created, reason="submitted")
        with self.app.app_context():
            row = Submission(
                task_id=task_id,
                lease_id=lease_id,
                clip_id=clip_id,
                user_id=person.id,
                vendor_id=vendor_id,
                transcript="please call me back",
                wer=wer,
                cer=wer / 2,
                edit_distance=int(wer * 10),
                time_on_task_ms=time_ms,
                heard_share=1.0 if fully_heard else 0.8,
                fully_heard=fully_heard,
                status=status,
                gold_wer=gold[0] if gold else None,
                gold_cer=gold[1] if gold else None,
                created_at=created,
                reviewer_id=reviewer.id if reviewer else None,
                reviewed_at=reviewed,
            )
            db.session.add(row)
            db.session.commit()
            return row.id


@dataclass
class Figures:
    """The people of the hand-made history and the ids tests need."""

    acme_id: int
    globex_id: int
    a1: Person
    a2: Person
    g1: Person
    acme_supervisor: Person
    globex_supervisor: Person
    internal_supervisor: Person
    submissions: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def ledger(app: Flask) -> Ledger:
    return Ledger(app)


@pytest.fixture
def figures(
    app: Flask, ledger: Ledger, create_user: Callable[..., Person], publish: Callable[..., int], clock: Any
) -> Figures:
    """The history the figure tests know the answers of (see test_figures.KNOWN)."""
    publish()
    a1 = create_user(Role.ANNOTATOR, ACME, email="a1@acme.example")
    a2 = create_user(Role.ANNOTATOR, ACME, email="a2@acme.example")
    g1 = create_user(Role.ANNOTATOR, GLOBEX, email="g1@globex.example")
    sa = create_user(Role.SUPERVISOR, ACME, email="lead@acme.example")
    sg = create_user(Role.SUPERVISOR, GLOBEX, email="lead@globex.example")
    si = create_user(Role.SUPERVISOR, None, email="lead@portal.example")
    data = Figures(ledger.vendor_id(ACME), ledger.vendor_id(GLOBEX), a1, a2, g1, sa, sg, si)
    add = ledger.submission
    ok, auto = SubmissionStatus.ACCEPTED, SubmissionStatus.AUTO_ACCEPTED
    data.submissions = {
        "a1-1": add(
            a1, ACME, at(24, 10, 15), time_ms=15_000, wer=0.2, status=ok, reviewed=at(24, 12), reviewer=sa
        ),
        "a1-2": add(
            a1,
            ACME,
            at(24, 10, 40),
            time_ms=20_000,
            wer=0.1,
            status=SubmissionStatus.REJECTED,
            reviewed=at(25, 8),
            reviewer=sa,
        ),
        # Unedited and faster than its 20 s clip: a rubber stamp.
        "a1-3": add(
            a1,
            ACME,
            at(25, 14, 5),
            duration_ms=20_000,
            time_ms=10_000,
            wer=0.0,
            status=auto,
            reviewed=at(25, 14, 5),
        ),
        # Unedited, as long as the clip (not faster), but not fully heard: a rubber stamp.
        "a1-4": add(
            a1,
            ACME,
            at(29, 9, 30),
            duration_ms=8_000,
            time_ms=8_000,
            wer=0.0,
            status=SubmissionStatus.PENDING_REVIEW,
            fully_heard=False,
        ),
        "a1-5": add(
            a1, ACME, at(29, 10), time_ms=30_000, wer=0.3, status=SubmissionStatus.SCORED, gold=(0.1, 0.05)
        ),
        # Unedited but slower than the clip and fully heard: not flagged. 1.2345× → 1.20×.
        "a2-6": add(a2, ACME, at(26, 11), time_ms=12_345, wer=0.0, status=auto, reviewed=at(26, 11)),
        "a2-7": add(
            a2,
            ACME,
            at(26, 11, 30),
            time_ms=11_000,
            wer=0.05,
            status=SubmissionStatus.SCORED,
            gold=(0.3, 0.2),
        ),
        "g1-8": add(
            g1,
            GLOBEX,
            at(27, 13),
            time_ms=5_000,
            wer=0.0,
            status=SubmissionStatus.REJECTED,
            reviewed=at(28, 9),
            reviewer=sg,
        ),
        "g1-9": add(
            g1, GLOBEX, at(27, 13, 20), time_ms=40_000, wer=0.4, status=ok, reviewed=at(27, 15), reviewer=sg
        ),
        # Before the range: never counted, although it would be a rubber stamp.
        "a1-10": add(
            a1, ACME, at(23, 23, 59, 59), time_ms=1_000, wer=0.0, status=auto, reviewed=at(23, 23, 59, 59)
        ),
        # Done before the range, decided in it: counts for the rejection rate only.
        "g1-11": add(
            g1,
            GLOBEX,
            at(20, 10),
            time_ms=20_000,
            wer=0.2,
            status=SubmissionStatus.REJECTED,
            reviewed=at(24, 9),
            reviewer=sg,
        ),
    }
    # Leases without a submission (their tasks were done by someone else since).
    clip, task = ledger.task([ACME], at(28, 7), TaskStatus.ACCEPTED)
    ledger.lease(a1, data.acme_id, task, clip, at(28, 8), ended=at(28, 9), reason="expired")
    clip, task = ledger.task([ACME], at(25, 9), TaskStatus.QUEUED, clip_status=ClipStatus.QUARANTINED)
    ledger.lease(a2, data.acme_id, task, clip, at(25, 10), ended=at(25, 10, 5), reason="skipped")
    # The queue now: Q1 (Acme), Q2 (both pools, the oldest), Q3 (Globex, leased but run out).
    ledger.task([ACME], at(30, 6), TaskStatus.QUEUED)
    ledger.task([ACME, GLOBEX], at(29, 9), TaskStatus.QUEUED)
    clip, task = ledger.task([GLOBEX], at(30, 7), TaskStatus.LEASED, lease_expires_at=at(30, 8, 40))
    ledger.lease(g1, data.globex_id, task, clip, at(30, 8, 30))
    # Live: a2 holds a task until 09:05.
    clip, task = ledger.task([ACME], at(30, 8), TaskStatus.LEASED, lease_expires_at=at(30, 9, 5))
    lease = ledger.lease(a2, data.acme_id, task, clip, at(30, 8, 55))
    with app.app_context():
        db.session.get_one(Task, task).current_lease_id = lease
        db.session.commit()
    # Not claimable: its clip is quarantined.
    ledger.task([ACME], at(28, 6), TaskStatus.QUEUED, clip_status=ClipStatus.QUARANTINED)
    return data
