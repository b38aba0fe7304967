"""Clip ingest, reading, erasure, retention and integrity checks.

Each operation records its audit event in the caller's transaction and flushes; the view
or CLI command commits once. Audio objects follow the transaction they belong to: an
object stored by an ingest that then rolls back is deleted (no file without its row),
and the objects of erased clips are deleted only after the erasure commits (an erasure
that rolls back leaves its clips whole). Crypto-shredding does not depend on the object
deletion: once the wrapped key is gone, no copy of the object can be decrypted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from portal.audit.models import Outcome
from portal.audit.services import Actor, record_event
from portal.auth.models import Vendor
from portal.clips import audio, crypto, redaction
from portal.clips.metadata import ClipMetadata, parse_metadata
from portal.clips.models import LIVE_STATUSES, Clip, ClipRedaction, ClipStatus, VendorIngestPolicy
from portal.clips.pseudonyms import device_pseudonym, idempotency_digest, subject_pseudonym
from portal.clips.refusals import IngestRefused
from portal.clips.storage import Storage, StorageError, clip_storage, new_object_name
from portal.exceptions import PortalError
from portal.extensions import db
from portal.keys import portal_keys
from portal.review.services import withdraw_clip_work
from portal.tasks.models import OPEN_STATUSES, ClipVendor, Task, TaskStatus

logger = logging.getLogger(__name__)

DISCARD_ON_ROLLBACK = "portal.clips.discard_on_rollback"
DELETE_AFTER_COMMIT = "portal.clips.delete_after_commit"


# --- objects that follow the transaction ----------------------------------------------


def _discard_on_rollback(storage: Storage, name: str) -> None:
    db.session.info.setdefault(DISCARD_ON_ROLLBACK, []).append((storage, name))


def _delete_after_commit(storage: Storage, name: str) -> None:
    db.session.info.setdefault(DELETE_AFTER_COMMIT, []).append((storage, name))


def _delete_objects(objects: Sequence[tuple[Storage, str]], why: str) -> None:
    for storage, name in objects:
        try:
            storage.delete(name)
        except Exception:
            logger.exception(
                "could not delete clip object %s (%s); it is undecryptable but present", name, why
            )


@event.listens_for(db.session, "after_commit")
def _after_commit(session: Session) -> None:
    session.info.pop(DISCARD_ON_ROLLBACK, None)
    _delete_objects(session.info.pop(DELETE_AFTER_COMMIT, []), "erased")


@event.listens_for(db.session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """Runs after a commit too; by then `_after_commit` has emptied both lists."""
    if transaction.parent is not None:
        return
    session.info.pop(DELETE_AFTER_COMMIT, None)
    _delete_objects(session.info.pop(DISCARD_ON_ROLLBACK, []), "ingest rolled back")


# --- ingest -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    """What the API answers for an ingested (or replayed) clip."""

    clip: Clip
    tasks: int
    redactions: dict[str, int]
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"clip_id": self.clip.public_id, "tasks": self.tasks, "redactions": self.redactions}


def _vendors(names: Sequence[str]) -> list[Vendor]:
    vendors = []
    for name in names:
        vendor = db.session.scalar(sa.select(Vendor).where(sa.func.lower(Vendor.name) == name.lower()))
        if vendor is None:
            raise IngestRefused("vendor_unknown", f"There is no vendor named {name!r}.")
        if not vendor.active:
            raise IngestRefused("vendor_inactive", f"Vendor {vendor.name!r} is not active.")
        vendors.append(vendor)
    return vendors


def tone_wanted(vendors: Sequence[Vendor]) -> bool:
    """Tone over redacted words unless every allowed vendor has turned it off."""
    default = current_app.config["TONE_OVER_REDACTIONS"]
    policies = dict(
        db.session.execute(
            sa.select(VendorIngestPolicy.vendor_id, VendorIngestPolicy.tone_over_redactions).where(
                VendorIngestPolicy.vendor_id.in_([vendor.id for vendor in vendors])
            )
        ).all()
    )
    return any(policies.get(vendor.id, default) for vendor in vendors)


def _audio_size(stream: BinaryIO) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _replay(clip: Clip, subject: str, actor: Actor) -> IngestResult:
    if clip.subject_pseudonym != subject:
        raise IngestRefused(
            "idempotency_key_conflict", "This idempotency key was already used for another clip."
        )
    tasks = db.session.scalar(sa.select(sa.func.count(Task.id)).where(Task.clip_id == clip.id)) or 0
    record_event(
        actor, "clips.ingest_replayed", target=f"clip:{clip.public_id}", details={"subject": subject}
    )
    return IngestResult(clip=clip, tasks=tasks, redactions=redaction_counts(clip), replayed=True)


def redaction_counts(clip: Clip) -> dict[str, int]:
    """The clip's findings per kind, as ingest reported them."""
    rows = db.session.execute(
        sa.select(ClipRedaction.kind, ClipRedaction.count)
        .where(ClipRedaction.clip_id == clip.id)
        .order_by(ClipRedaction.kind)
    )
    return {kind: count for kind, count in rows}


def ingest_clip(audio_stream: BinaryIO, raw_metadata: object, actor: Actor, now: datetime) -> IngestResult:
    """Take one clip: consent, pseudonyms, audio and transcript de-identified, encrypted, stored.

    Order matters: the consent record is checked before anything else (before the audio
    is even opened); the raw source user and device ids are turned into pseudonyms and go
    no further. A clip whose idempotency key was seen before is not ingested again: the
    first answer is returned. Raises IngestRefused (a PortalError) with a stable code;
    whatever fails, nothing of the clip remains once the transaction rolls back.
    """
    metadata = parse_metadata(raw_metadata, now)
    subject = subject_pseudonym(metadata.source_user_id)
    digest = idempotency_digest(metadata.idempotency_key) if metadata.idempotency_key else None
    if digest:
        existing = db.session.scalar(sa.select(Clip).where(Clip.idempotency_digest == digest))
        if existing is not None:
            return _replay(existing, subject, actor)
    vendors = _vendors(metadata.vendors)
    config = current_app.config
    size = _audio_size(audio_stream)
    if size == 0:
        raise IngestRefused("audio_empty", "The audio file is empty.")
    if size > config["MAX_CLIP_BYTES"]:
        raise IngestRefused("audio_too_large", f"Clips may be at most {config['MAX_CLIP_BYTES']} bytes.")
    decoded = audio.decode(audio_stream, config["MAX_CLIP_SECONDS"])
    return _store_clip(metadata, decoded, vendors, subject, digest, actor, now)


def _store_clip(
    metadata: ClipMetadata,
    decoded: audio.DecodedAudio,
    vendors: Sequence[Vendor],
    subject: str,
    digest: str | None,
    actor: Actor,
    now: datetime,
) -> IngestResult:
    transcript = redaction.redact_text(metadata.transcript)
    # A gold transcript is redacted like the machine one, so both carry the same placeholders.
    gold = redaction.redact_text(metadata.gold_transcript).text if metadata.gold_transcript else None
    words = redaction.redact_words(metadata.words) if metadata.words is not None else None
    toned = 0
    if words is not None and words.spans and tone_wanted(vendors):
        toned = audio.tone_over(decoded.samples, words.spans)
    public_id, object_name = secrets.token_hex(16), new_object_name()
    sealed = crypto.seal(audio.encode_flac(decoded.samples), public_id, portal_keys().master_key)
    clip = Clip(
        public_id=public_id,
        subject_pseudonym=subject,
        device_pseudonym=device_pseudonym(metadata.device_id),
        locale=metadata.locale,
        duration_ms=round(decoded.duration_seconds * 1000),
        consent_opt_in=metadata.consent.opt_in,
        consent_recorded_at=metadata.consent.recorded_at,
        consent_scope=metadata.consent.scope_text,
        transcript=transcript.text,
        words=json.dumps(words.words, separators=(",", ":")) if words is not None else None,
        toned_spans=toned,
        passes=metadata.passes,
        storage_name=object_name,
        wrapped_key=sealed.wrapped_key,
        status=ClipStatus.ACTIVE,
        idempotency_digest=digest,
        ingested_at=now,
        retain_until=now + timedelta(days=current_app.config["RETENTION_DAYS"]),
    )
    try:
        with db.session.begin_nested():
            db.session.add(clip)
            db.session.flush()
    except sa.exc.IntegrityError:
        # A concurrent request with the same idempotency key committed first.
        if digest is None:
            raise
        existing = db.session.scalar(sa.select(Clip).where(Clip.idempotency_digest == digest))
        if existing is None:
            raise
        return _replay(existing, subject, actor)
    storage = clip_storage()
    _discard_on_rollback(storage, object_name)
    storage.save(object_name, sealed.blob)
    for kind, count in sorted(transcript.counts.items()):
        db.session.add(ClipRedaction(clip_id=clip.id, kind=kind, count=count))
    for vendor in vendors:
        db.session.add(ClipVendor(clip_id=clip.id, vendor_id=vendor.id))
    for pass_number in range(1, metadata.passes + 1):
        db.session.add(
            Task(
                clip_id=clip.id,
                pass_number=pass_number,
                priority=metadata.priority,
                status=TaskStatus.QUEUED,
                created_at=now,
                is_gold=gold is not None,
                gold_transcript=gold,
            )
        )
    db.session.flush()
    record_event(
        actor,
        "clips.ingested",
        target=f"clip:{public_id}",
        details={
            "subject": subject,
            "device": clip.device_pseudonym,
            "format": decoded.source_format,
            "duration_ms": clip.duration_ms,
            "tasks": metadata.passes,
            "vendors": [vendor.name for vendor in vendors],
            "redactions": transcript.counts,
            "toned_spans": toned,
        },
    )
    return IngestResult(clip=clip, tasks=metadata.passes, redactions=dict(sorted(transcript.counts.items())))


def record_refusal(actor: Actor, refusal: PortalError, raw_metadata: object) -> None:
    """Audit a refused clip: its code and, when readable, the subject's pseudonym only.

    The refusal's message is not recorded: it may quote what the client sent.
    """
    source = raw_metadata.get("source_user_id") if isinstance(raw_metadata, dict) else None
    subject = subject_pseudonym(source) if isinstance(source, str) and source.strip() else None
    record_event(
        actor,
        "clips.ingest_refused",
        outcome=Outcome.DENIED,
        details={"code": refusal.code, "subject": subject},
    )


# --- reading and integrity ------------------------------------------------------------


class ClipUnavailable(PortalError):
    """The clip's audio no longer exists (erased, expired) or is quarantined."""

    def __init__(self) -> None:
        super().__init__("clip_unavailable", "This clip's audio is not available.", 410)


def read_clip_audio(clip: Clip) -> bytes:
    """Decrypt an active clip's audio (16 kHz mono FLAC).

    Raises ClipUnavailable for a clip that is not active, StorageError if the object is
    missing and crypto.IntegrityError if it or its key was altered: a tampered clip is
    refused, never served.
    """
    if clip.status is not ClipStatus.ACTIVE or clip.wrapped_key is None or clip.storage_name is None:
        raise ClipUnavailable()
    with clip_storage().open(clip.storage_name) as handle:
        blob = handle.read()
    return crypto.open_sealed(blob, clip.public_id, clip.wrapped_key, portal_keys().master_key)


def quarantine_clip(clip: Clip, reason: str, actor: Actor, now: datetime) -> None:
    """Take a clip out of service (its audio failed a check); its open tasks are cancelled."""
    clip.status = ClipStatus.QUARANTINED
    cancelled = _cancel_open_tasks(clip, now)
    record_event(
        actor,
        "clips.quarantined",
        outcome=Outcome.FAILED,
        target=f"clip:{clip.public_id}",
        details={"reason": reason, "tasks_cancelled": cancelled},
    )


@dataclass
class VerifyReport:
    """What `verify_clips` found."""

    checked: int = 0
    quarantined: list[str] = field(default_factory=list)


def verify_clips(actor: Actor, now: datetime) -> VerifyReport:
    """Decrypt every active clip; quarantine those whose object is missing or altered."""
    report = VerifyReport()
    ids = db.session.scalars(sa.select(Clip.id).where(Clip.status == ClipStatus.ACTIVE).order_by(Clip.id))
    for clip_id in ids.all():
        clip = db.session.get_one(Clip, clip_id)
        report.checked += 1
        try:
            read_clip_audio(clip)
        except crypto.IntegrityError:
            quarantine_clip(clip, "integrity", actor, now)
            report.quarantined.append(clip.public_id)
        except StorageError:
            quarantine_clip(clip, "missing", actor, now)
            report.quarantined.append(clip.public_id)
    return report


# --- erasure and retention -----------------------------------------------------------


def _cancel_open_tasks(clip: Clip, now: datetime) -> int:
    result = db.session.execute(
        sa.update(Task)
        .where(Task.clip_id == clip.id, Task.status.in_(OPEN_STATUSES))
        .values(status=TaskStatus.CANCELLED, cancelled_at=now)
    )
    return result.rowcount


def _shred(clip: Clip, status: ClipStatus, now: datetime, actor: Actor, action: str) -> None:
    """Destroy a clip's key, transcript and object; cancel its open tasks; audit it."""
    if clip.storage_name is not None:
        _delete_after_commit(clip_storage(), clip.storage_name)
    clip.wrapped_key = None
    clip.storage_name = None
    clip.transcript = ""
    clip.words = None
    clip.device_pseudonym = None
    clip.status = status
    clip.erased_at = now
    cancelled = _cancel_open_tasks(clip, now)
    withdraw_clip_work(clip, now)
    record_event(
        actor,
        action,
        target=f"clip:{clip.public_id}",
        details={"subject": clip.subject_pseudonym, "tasks_cancelled": cancelled},
    )


def erase_clip(clip: Clip, actor: Actor, now: datetime) -> None:
    """Erase one clip (an admin's decision on a reported clip), exactly as a subject's erasure does."""
    _shred(clip, ClipStatus.ERASED, now, actor, "clips.erased")


def erase_subject(source_user_id: str, actor: Actor, now: datetime) -> int:
    """Erase every clip of the person with `source_user_id`; return how many.

    The clips are found through the pseudonym, so the id is needed here and nowhere else.
    The request is recorded even when the person has no clips: the record holds the
    pseudonym, never the id.
    """
    if not source_user_id.strip():
        raise PortalError("source_user_id_required", "Give the source user id to erase.")
    subject = subject_pseudonym(source_user_id)
    clips = db.session.scalars(
        sa.select(Clip)
        .where(Clip.subject_pseudonym == subject, Clip.status.in_(LIVE_STATUSES))
        .order_by(Clip.id)
        .with_for_update()
    ).all()
    for clip in clips:
        _shred(clip, ClipStatus.ERASED, now, actor, "clips.erased")
    record_event(actor, "subjects.erased", target=f"subject:{subject}", details={"clips": len(clips)})
    return len(clips)


def purge_expired(now: datetime, actor: Actor, limit: int = 500) -> int:
    """Shred up to `limit` clips whose retention ended; return how many (0: none left)."""
    clips = db.session.scalars(
        sa.select(Clip)
        .where(Clip.status.in_(LIVE_STATUSES), Clip.retain_until <= now)
        .order_by(Clip.retain_until, Clip.id)
        .limit(limit)
        .with_for_update()
    ).all()
    for clip in clips:
        _shred(clip, ClipStatus.EXPIRED, now, actor, "clips.expired")
    if clips:
        record_event(actor, "clips.purged", details={"clips": len(clips)})
    return len(clips)


def set_vendor_tone(vendor: Vendor, enabled: bool, actor: Actor, now: datetime) -> None:
    """Turn toning over redacted words on or off for clips allowed to `vendor` only."""
    policy = db.session.get(VendorIngestPolicy, vendor.id)
    if policy is None:
        policy = VendorIngestPolicy(vendor_id=vendor.id, tone_over_redactions=enabled, updated_at=now)
        db.session.add(policy)
    policy.tone_over_redactions = enabled
    policy.updated_at = now
    db.session.flush()
    record_event(
        actor,
        "clips.vendor_tone_set",
        target=f"vendor:{vendor.id}",
        details={"tone_over_redactions": enabled},
    )


# --- inventory ------------------------------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    """Counts for the admin inventory page: no audio, no transcripts, no ids of people."""

    by_status: list[tuple[str, int, int]]
    by_scope: list[tuple[str, int]]
    redactions: list[tuple[str, int, int]]
    tasks: list[tuple[str, int]]
    expiring: list[tuple[str, int]]
    next_expiry: datetime | None
    recent: list[tuple[Clip, dict[str, int]]]


def clip_inventory(now: datetime, recent: int = 20) -> Inventory:
    """Aggregate the clip store for the admin page."""
    session = db.session
    by_status = [
        (str(status), count, int(duration or 0))
        for status, count, duration in session.execute(
            sa.select(Clip.status, sa.func.count(Clip.id), sa.func.sum(Clip.duration_ms))
            .group_by(Clip.status)
            .order_by(Clip.status)
        )
    ]
    live = Clip.status.in_(LIVE_STATUSES)
    by_scope = [
        (scope, count)
        for scope, count in session.execute(
            sa.select(Clip.consent_scope, sa.func.count(Clip.id))
            .where(live)
            .group_by(Clip.consent_scope)
            .order_by(sa.func.count(Clip.id).desc(), Clip.consent_scope)
        )
    ]
    redactions = [
        (kind, clips, int(total))
        for kind, clips, total in session.execute(
            sa.select(
                ClipRedaction.kind, sa.func.count(ClipRedaction.clip_id), sa.func.sum(ClipRedaction.count)
            )
            .join(Clip, Clip.id == ClipRedaction.clip_id)
            .where(live)
            .group_by(ClipRedaction.kind)
            .order_by(ClipRedaction.kind)
        )
    ]
    tasks = [
        (str(status), count)
        for status, count in session.execute(
            sa.select(Task.status, sa.func.count(Task.id)).group_by(Task.status).order_by(Task.status)
        )
    ]
    expiring = []
    for label, days in (("within 7 days", 7), ("within 30 days", 30), ("within 90 days", 90)):
        count = session.scalar(
            sa.select(sa.func.count(Clip.id)).where(live, Clip.retain_until <= now + timedelta(days=days))
        )
        expiring.append((label, count or 0))
    next_expiry = session.scalar(sa.select(sa.func.min(Clip.retain_until)).where(live))
    latest = session.scalars(sa.select(Clip).order_by(Clip.id.desc()).limit(recent)).all()
    counts: dict[int, dict[str, int]] = {clip.id: {} for clip in latest}
    for clip_id, kind, count in session.execute(
        sa.select(ClipRedaction.clip_id, ClipRedaction.kind, ClipRedaction.count).where(
            ClipRedaction.clip_id.in_(counts)
        )
    ):
        counts[clip_id][kind] = count
    return Inventory(
        by_status=by_status,
        by_scope=by_scope,
        redactions=redactions,
        tasks=tasks,
        expiring=expiring,
        next_expiry=next_expiry,
        recent=[(clip, counts[clip.id]) for clip in latest],
    )
