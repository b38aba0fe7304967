"""Appending accepted corrections to the outbox, reading them back by cursor, withdrawing them.

Appenders serialise on the single `outbox_head` row (`SELECT ... FOR UPDATE` on
PostgreSQL, the write lock BEGIN IMMEDIATE takes on SQLite), the same pattern as the
audit head: the head stays locked until the appending transaction commits, so positions
are handed out in commit order. A reader that has seen position N can therefore never
later find a newly committed entry below N (at-least-once with a cursor, no gaps to
miss), and a transaction that rolls back leaves no hole: the next appender takes the
same number.

Lock order: the outbox head, then the audit head. Every transaction that appends also
records an audit event, and the audit head is the last lock every transaction takes, at
commit (`portal.audit.services`): a transaction holding it waits for no other lock, so
the two heads cannot deadlock. The audit head is therefore not taken here: taken early,
it would serialise every audited request of every annotator behind the rest of this
transaction instead of behind its commit alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.clips.models import Clip, ClipStatus
from portal.db import UTCDateTime
from portal.extensions import db
from portal.keys import keyed_digest, portal_keys
from portal.outbox.models import OutboxEntry, OutboxHead
from portal.tasks.models import Submission

LOCK_HEAD = sa.select(OutboxHead.position).where(OutboxHead.id == 1).with_for_update()
MOVE_HEAD = (
    sa.update(OutboxHead.__table__)
    .where(OutboxHead.__table__.c.id == 1)
    .values(position=sa.bindparam("new_position"))
)
INSERT_ENTRY = sa.insert(OutboxEntry.__table__)
# On PostgreSQL one statement moves (and so locks) the head and stores the entry at the
# head's new position: one round trip instead of three, on every accepted submission.
APPEND_POSTGRESQL = (
    sa.text(
        """
    WITH head AS (
        UPDATE outbox_head SET position = outbox_head.position + 1 WHERE outbox_head.id = 1
        RETURNING outbox_head.position
    )
    INSERT INTO outbox_entries (position, submission_id, clip_id, clip_public_id, locale, transcript,
                                machine_transcript, wer, cer, passes, annotator, time_on_task_ms,
                                accepted_at)
    SELECT position, :submission_id, :clip_id, :clip_public_id, :locale, :transcript,
           :machine_transcript, :wer, :cer, :passes, :annotator, :time_on_task_ms, :accepted_at
    FROM head
    RETURNING position
    """
    )
    .bindparams(sa.bindparam("accepted_at", type_=UTCDateTime))
    .columns(position=sa.BigInteger)
)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def annotator_pseudonym(user_id: int) -> str:
    """The speech team's name for an annotator: an HMAC of the user id, domain `annotator`.

    Stable (the same person keeps the same pseudonym across corrections, so quality can be
    tracked) but not reversible without the pseudonym key, which never leaves the portal.
    """
    return keyed_digest(portal_keys().pseudonym_key, b"annotator", str(user_id)).hex()


def append_correction(submission: Submission, now: datetime) -> int:
    """Add an accepted submission to the outbox in the current transaction; return its position.

    The caller's pending changes are flushed first, so that the submission row exists. The
    head stays locked until the caller commits (see the lock order above).
    """
    db.session.flush()
    clip = db.session.get_one(Clip, submission.clip_id)
    entry = {
        "submission_id": submission.id,
        "clip_id": clip.id,
        "clip_public_id": clip.public_id,
        "locale": clip.locale,
        "transcript": submission.transcript,
        "machine_transcript": clip.transcript,
        "wer": submission.wer,
        "cer": submission.cer,
        "passes": clip.passes,
        "annotator": annotator_pseudonym(submission.user_id),
        "time_on_task_ms": submission.time_on_task_ms,
        "accepted_at": now,
    }
    if db.session.get_bind().dialect.name == "postgresql":
        return db.session.execute(APPEND_POSTGRESQL, entry).scalar_one()
    # On SQLite the write lock is already held since BEGIN IMMEDIATE: no round trips.
    position = db.session.execute(LOCK_HEAD).scalar_one() + 1
    db.session.execute(INSERT_ENTRY, {**entry, "position": position})
    db.session.execute(MOVE_HEAD, {"new_position": position})
    return position


def withdraw_clip_corrections(clip: Clip, now: datetime) -> int:
    """Withdraw and empty the clip's outbox entries (erasure, expiry); return how many.

    The texts are what the erased person said: they are emptied, like the clip's own
    transcript. The row stays, with `withdrawn_at`, so positions keep no holes and the
    record shows when the portal stopped offering the correction.
    """
    result = db.session.execute(
        sa.update(OutboxEntry)
        .where(OutboxEntry.clip_id == clip.id, OutboxEntry.withdrawn_at.is_(None))
        .values(withdrawn_at=now, transcript="", machine_transcript="")
    )
    return result.rowcount


def _visible() -> sa.Select[tuple[OutboxEntry]]:
    # Entries of erased or expired clips never leave the portal, withdrawn or not: the
    # clip status join covers an erasure whose withdrawal somehow did not happen.
    return (
        sa.select(OutboxEntry)
        .join(Clip, Clip.id == OutboxEntry.clip_id)
        .where(
            OutboxEntry.withdrawn_at.is_(None), Clip.status.not_in((ClipStatus.ERASED, ClipStatus.EXPIRED))
        )
    )


def corrections_after(after: int, limit: int) -> list[OutboxEntry]:
    """Up to `limit` visible entries with a position above `after`, in position order."""
    return list(
        db.session.scalars(
            _visible().where(OutboxEntry.position > after).order_by(OutboxEntry.position).limit(limit)
        )
    )


def iter_corrections(since: int, batch: int = 500) -> Iterator[OutboxEntry]:
    """Every visible entry after `since`, in position order, read in batches."""
    after = since
    while True:
        entries = corrections_after(after, batch)
        yield from entries
        if len(entries) < batch:
            return
        after = entries[-1].position


def as_item(entry: OutboxEntry) -> dict[str, Any]:
    """The entry as the speech team receives it (API item and JSONL line)."""
    return {
        "cursor": entry.position,
        "clip_id": entry.clip_public_id,
        "locale": entry.locale,
        "transcript": entry.transcript,
        "machine_transcript": entry.machine_transcript,
        "wer": entry.wer,
        "cer": entry.cer,
        "passes": entry.passes,
        "accepted_at": entry.accepted_at.isoformat().replace("+00:00", "Z"),
        "annotator": entry.annotator,
        "time_on_task_s": round(entry.time_on_task_ms / 1000, 3),
    }
