"""Playback grants, serving audio in byte ranges, and what the player reports it played.

A grant is a random 256-bit token (only its SHA-256 is stored) that lets one user, in one
session, fetch one clip for PORTAL_GRANT_SECONDS, while the lease (or the pending review)
it is bound to lasts. Every grant, every byte range served and every refusal is audited.

What "heard" means. The player reports the intervals of the clip it played (seconds); the
server keeps them merged on the lease (`heard_intervals`) next to the byte ranges it
actually streamed under the lease's grants (`served_ranges`, JSON
`{"size": N, "ranges": [[first, end), ...]}`). A clip counts as fully heard when the
intervals cover at least 97 % of it AND every byte of the file was served: a player that
never fetched the audio cannot claim to have played it.

Audio is decrypted for each request and never cached: a clip's plaintext lives only for
the few milliseconds it takes to slice a range out of it (see docs/playback.md for the
measured cost).

Locks, in the order the rest of the work loop takes them: the task and the lease (or the
submission), then the grant row (its byte count), then the audit head (taken by
`record_event`).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from portal.audit.services import Actor, record_event
from portal.auth.models import User, UserSession
from portal.auth.sessions import hash_token
from portal.clips.audio import MEDIA_TYPE
from portal.clips.models import Clip, ClipStatus
from portal.clips.services import read_clip_audio
from portal.exceptions import AccessDenied, PortalError
from portal.extensions import db
from portal.playback.models import PlaybackGrant
from portal.review.services import submission_for_supervisor
from portal.tasks.models import Submission, SubmissionStatus, Task, TaskLease, TaskStatus
from portal.tasks.services import held_task, live_lease

FULLY_HEARD_SHARE = 0.97
# Gaps shorter than this between two heard intervals (a seek of a few milliseconds, the
# rounding of reported times) do not count as unheard.
HEARD_GAP_SECONDS = 0.05
PROGRESS_AUDIT_EVERY = timedelta(seconds=5)
MIN_SPEED, MAX_SPEED = 0.5, 2.0
MAX_HEARD_INTERVALS = 1000
# A grant is for one playback: it may serve the file twice over (one retry), no more.
GRANT_BYTES_FACTOR = 2
RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)


class PlaybackDenied(AccessDenied):
    """A grant or media request refused; audited as `playback.denied` with `reason`.

    `details` names the grant, task, lease or submission involved, never the token.
    """

    def __init__(
        self, reason: str, target: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(reason, target)
        self.details = dict(details or {})


class RangeNotSatisfiable(PortalError):
    """The Range header asks for bytes the file does not have (or for several ranges)."""

    def __init__(self, size: int) -> None:
        super().__init__("range_not_satisfiable", "The requested range is not available.", 416)
        self.size = size


# --- intervals ----------------------------------------------------------------------------


def merge_intervals(intervals: Sequence[Sequence[float]], gap: float = 0.0) -> list[list[float]]:
    """Sort and merge [start, end) intervals; those closer than `gap` become one."""
    merged: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _served(lease: TaskLease) -> tuple[int | None, list[list[int]]]:
    """The lease's file size (None until something was served) and merged byte ranges."""
    data = json.loads(lease.served_ranges or "{}")
    if not isinstance(data, dict) or "size" not in data:
        return None, []
    return int(data["size"]), [[int(s), int(e)] for s, e in data["ranges"]]


def _served_with(lease: TaskLease, first: int, last: int, size: int) -> str:
    """The lease's `served_ranges` once bytes `first`..`last` of `size` are served too."""
    _, ranges = _served(lease)
    merged = merge_intervals([*ranges, [first, last + 1]])
    return json.dumps({"size": size, "ranges": [[int(s), int(e)] for s, e in merged]}, separators=(",", ":"))


def _heard(heard_intervals: str | None) -> list[list[float]]:
    return [[float(s), float(e)] for s, e in json.loads(heard_intervals or "[]")]


# --- listening state ----------------------------------------------------------------------


@dataclass(frozen=True)
class ListeningState:
    """How much of the clip the lease's player played, and whether that counts as all of it."""

    heard_share: float
    fully_heard: bool

    def as_json(self) -> dict[str, Any]:
        return {"heard_share": self.heard_share, "fully_heard": self.fully_heard}


def listening_state(lease: TaskLease, clip: Clip, heard_intervals: str | None = None) -> ListeningState:
    """Whether `clip` was fully heard under `lease`: ≥ 97 % played AND every byte served.

    `heard_intervals` replaces the lease's own when given (a report being recorded).
    """
    duration = clip.duration_ms / 1000
    heard = sum(end - start for start, end in _heard(heard_intervals or lease.heard_intervals))
    share = 1.0 if duration <= 0 else min(1.0, heard / duration)
    size, ranges = _served(lease)
    all_served = size is not None and ranges == [[0, size]]
    return ListeningState(heard_share=round(share, 4), fully_heard=share >= FULLY_HEARD_SHARE and all_served)


# --- grants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedGrant:
    """A fresh grant's token (shown once, to the player; only its hash is kept)."""

    token: str
    expires_in: int
    content_type: str = MEDIA_TYPE


# Every playback asks for a grant: a plain INSERT costs a fraction of an ORM flush, and
# nothing in the request reads the grant back.
ISSUE_GRANT = sa.insert(PlaybackGrant.__table__).returning(PlaybackGrant.__table__.c.id)


def _issue(
    user: User,
    user_session: UserSession,
    clip: Clip,
    task_id: int,
    actor: Actor,
    now: datetime,
    lease_id: int | None = None,
    submission_id: int | None = None,
) -> IssuedGrant:
    seconds = current_app.config["GRANT_SECONDS"]
    token = secrets.token_urlsafe(32)
    grant_id = db.session.execute(
        ISSUE_GRANT,
        {
            "token_hash": hash_token(token),
            "user_id": user.id,
            "session_id": user_session.id,
            "clip_id": clip.id,
            "task_id": task_id,
            "lease_id": lease_id,
            "submission_id": submission_id,
            "created_at": now,
            "expires_at": now + timedelta(seconds=seconds),
            "bytes_served": 0,
        },
    ).scalar_one()
    record_event(
        actor,
        "playback.granted",
        target=f"clip:{clip.public_id}",
        details={
            "grant": grant_id,
            "task": task_id,
            "lease": lease_id,
            "submission": submission_id,
            "expires_in": seconds,
        },
    )
    return IssuedGrant(token=token, expires_in=seconds)


def grant_for_lease(
    task_id: int, user: User, user_session: UserSession, actor: Actor, now: datetime
) -> IssuedGrant:
    """A grant for the live holder of `task_id` in this session (the work page's player).

    Anyone else is refused by `held_task` (AccessDenied, audited `access.denied` like every
    other holder-only action); a clip that is no longer active is refused as
    `playback.denied`.
    """
    holding = held_task(task_id, user, user_session, now)
    lease, clip = holding.lease, holding.clip
    if clip.status is not ClipStatus.ACTIVE:
        raise PlaybackDenied(
            "clip_not_active",
            f"clip:{clip.public_id}",
            {"task": task_id, "lease": lease.id, "clip_status": str(clip.status)},
        )
    return _issue(user, user_session, clip, task_id, actor, now, lease_id=lease.id)


def grant_for_review(
    submission_id: int, supervisor: User, user_session: UserSession, actor: Actor, now: datetime
) -> IssuedGrant:
    """A grant for a supervisor reviewing a pending submission within their scope.

    Scope as on the review pages (`submission_for_supervisor`: 404 if there is no such
    submission, 403 outside the supervisor's vendor). A decided submission or an inactive
    clip is refused as `playback.denied`.
    """
    submission = submission_for_supervisor(supervisor, submission_id)
    clip = db.session.get_one(Clip, submission.clip_id)
    task = db.session.get_one(Task, submission.task_id)
    details = {"task": task.id, "submission": submission.id}
    if clip.status is not ClipStatus.ACTIVE:
        raise PlaybackDenied("clip_not_active", f"clip:{clip.public_id}", details)
    if submission.status is not SubmissionStatus.PENDING_REVIEW or task.status is not TaskStatus.SUBMITTED:
        raise PlaybackDenied("review_decided", f"clip:{clip.public_id}", details)
    return _issue(supervisor, user_session, clip, task.id, actor, now, submission_id=submission.id)


# --- serving --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaRequest:
    """What a request for `/media/<token>` brings besides the token.

    `user`/`user_session` are None without a (live) session cookie; `nda_accepted` says
    whether that user accepted the current NDA (the gate chain's answer for this
    request); `fetch_site` and `fetch_dest` are the browser's `Sec-Fetch-Site` and
    `Sec-Fetch-Dest` headers.
    """

    user: User | None
    user_session: UserSession | None
    nda_accepted: bool
    fetch_site: str | None
    fetch_dest: str | None
    range_header: str | None


@dataclass(frozen=True)
class MediaPiece:
    """The bytes to send: `body` is file[first:last + 1] of a file of `size` bytes."""

    body: bytes
    first: int
    last: int
    size: int
    partial: bool
    content_type: str = MEDIA_TYPE


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte positions a Range header asks for; None: the whole file.

    One range only: `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n bytes). A header in
    another unit is ignored (RFC 9110 §14.2). Raises RangeNotSatisfiable for a range that
    starts past the end, a malformed one, and several ranges at once (multipart answers are
    not served: the player never asks for them).
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    match = RANGE_SPEC.match(spec)
    if match is None or size == 0:
        raise RangeNotSatisfiable(size)
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text or int(last_text) == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - int(last_text)), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(size)
    return first, min(last, size - 1)


# The media endpoint runs these for every range; they are built once. The grant and its
# clip are read in one statement without a lock: nothing waits there, so the clip is as
# fresh as a statement of its own would read it, and a grant never changes but for its
# byte count, which `SPEND_GRANT_BYTES` checks and moves in one locked step. The task
# and the lease are locked in one statement, in that order (PostgreSQL locks a join's
# rows in FROM order).
FIND_GRANT = (
    sa.select(PlaybackGrant, Clip)
    .join(Clip, Clip.id == PlaybackGrant.clip_id)
    .where(PlaybackGrant.token_hash == sa.bindparam("token_hash"))
)
LOCK_TASK_AND_LEASE = (
    sa.select(Task, TaskLease)
    .join(TaskLease, TaskLease.task_id == Task.id)
    .where(Task.id == sa.bindparam("task_id"), TaskLease.id == sa.bindparam("lease_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)

_grants = PlaybackGrant.__table__
# Adds `length` to the grant's bytes unless that passes `budget`: no row updated means the
# grant is used up. Concurrent ranges of one grant queue on the row's lock, and each
# re-checks the budget against the count the one before it left.
SPEND_GRANT_BYTES = (
    sa.update(_grants)
    .where(_grants.c.id == sa.bindparam("grant_id"))
    .where(_grants.c.bytes_served + sa.bindparam("length") <= sa.bindparam("budget"))
    .values(bytes_served=_grants.c.bytes_served + sa.bindparam("length"))
)
# The lease is locked already; plain UPDATEs cost a fraction of an ORM flush. (The ORM
# object keeps its old values: nothing reads them again in the request.)
RECORD_LEASE_RANGES = (
    sa.update(TaskLease.__table__)
    .where(TaskLease.__table__.c.id == sa.bindparam("lease_id"))
    .values(served_ranges=sa.bindparam("served_ranges"))
)
RECORD_LEASE_PROGRESS = (
    sa.update(TaskLease.__table__)
    .where(TaskLease.__table__.c.id == sa.bindparam("lease_id"))
    .values(heard_intervals=sa.bindparam("heard"), last_progress_at=sa.bindparam("progress_at"))
)


def _find_grant(token: str) -> tuple[PlaybackGrant, Clip] | None:
    row = db.session.execute(FIND_GRANT, {"token_hash": hash_token(token)}).one_or_none()
    return None if row is None else (row[0], row[1])


def _check_requester(grant: PlaybackGrant, request: MediaRequest, target: str, ids: dict[str, Any]) -> None:
    """Refuse anything but a same-origin fetch() by the grant's user in the grant's session."""
    site, dest = request.fetch_site, request.fetch_dest
    if site is None or dest is None:
        raise PlaybackDenied("fetch_metadata_missing", target, ids)
    if dest == "document":
        raise PlaybackDenied("opened_as_document", target, ids)
    if dest != "empty":
        raise PlaybackDenied("not_a_fetch", target, {**ids, "fetch_dest": dest[:40]})
    if site != "same-origin":
        raise PlaybackDenied("cross_site", target, {**ids, "fetch_site": site[:40]})
    if request.user is None or request.user_session is None:
        raise PlaybackDenied("no_session", target, ids)
    if request.user.id != grant.user_id:
        raise PlaybackDenied("other_user", target, ids)
    if request.user_session.id != grant.session_id:
        raise PlaybackDenied("other_session", target, ids)
    if not request.user_session.mfa_verified or not request.nda_accepted:
        raise PlaybackDenied("gate_chain_incomplete", target, ids)


def _check_binding(
    grant: PlaybackGrant, clip: Clip, now: datetime, target: str, ids: dict[str, Any]
) -> TaskLease | None:
    """Refuse an expired grant, an inactive clip, an ended lease or a decided review.

    Locks the task and then the lease (the queue's order), or the submission (the review's
    order), before reading them, so a request is served entirely before, or refused
    entirely after, a concurrent submit, release, report or decision.
    """
    if now >= grant.expires_at:
        raise PlaybackDenied("expired", target, ids)
    task = lease = submission = None
    if grant.lease_id is not None:
        task, lease = db.session.execute(
            LOCK_TASK_AND_LEASE, {"task_id": grant.task_id, "lease_id": grant.lease_id}
        ).one()
    else:
        submission = db.session.get_one(
            Submission, grant.submission_id, with_for_update=True, populate_existing=True
        )
    if clip.status is not ClipStatus.ACTIVE:
        raise PlaybackDenied("clip_not_active", target, {**ids, "clip_status": str(clip.status)})
    if task is not None and lease is not None:
        if lease.ended_at is not None or lease.expires_at <= now:
            raise PlaybackDenied("lease_ended", target, {**ids, "end_reason": lease.end_reason or "expired"})
        if task.status is not TaskStatus.LEASED or task.current_lease_id != lease.id:
            raise PlaybackDenied("task_not_leased", target, {**ids, "task_status": str(task.status)})
    elif submission is None or submission.status is not SubmissionStatus.PENDING_REVIEW:
        status = str(submission.status) if submission is not None else None
        raise PlaybackDenied("review_decided", target, {**ids, "submission_status": status})
    return lease


def serve_media(token: str, request: MediaRequest, actor: Actor, now: datetime) -> MediaPiece:
    """Check a media request against its grant, decrypt the clip and cut out the asked range.

    Refusals raise PlaybackDenied (in the order: unknown token, Fetch Metadata, session,
    user, expiry, clip, lease or review, bytes already served). A bad Range raises
    RangeNotSatisfiable (after the checks, so that only the holder learns the size). The
    served range is added to the lease's `served_ranges` and the grant's `bytes_served`
    and audited as `playback.range`.
    """
    found = _find_grant(token)
    if found is None:
        raise PlaybackDenied("unknown_token", None, {"token_ref": hash_token(token)[:16]})
    grant, clip = found
    ids = {
        "grant": grant.id,
        "grant_user": grant.user_id,
        "task": grant.task_id,
        "lease": grant.lease_id,
        "submission": grant.submission_id,
    }
    target = f"clip:{clip.public_id}"
    _check_requester(grant, request, target, ids)
    lease = _check_binding(grant, clip, now, target, ids)
    audio = read_clip_audio(clip)
    size = len(audio)
    wanted = byte_range(request.range_header, size)
    first, last = wanted if wanted is not None else (0, size - 1)
    length = last - first + 1
    spent = db.session.execute(
        SPEND_GRANT_BYTES, {"grant_id": grant.id, "length": length, "budget": GRANT_BYTES_FACTOR * size}
    )
    if spent.rowcount != 1:
        raise PlaybackDenied("grant_used_up", target, {**ids, "bytes_served": grant.bytes_served})
    if lease is not None:
        db.session.execute(
            RECORD_LEASE_RANGES,
            {"lease_id": lease.id, "served_ranges": _served_with(lease, first, last, size)},
        )
    record_event(
        actor,
        "playback.range",
        target=f"clip:{clip.public_id}",
        details={**ids, "first": first, "last": last, "length": length, "size": size},
    )
    return MediaPiece(
        body=audio[first : last + 1], first=first, last=last, size=size, partial=wanted is not None
    )


# --- progress -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressReport:
    """What the player says: where it is, at which speed, what it played (seconds)."""

    position: float
    speed: float
    heard: list[list[float]]
    final: bool


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def parse_progress(payload: object, duration: float) -> ProgressReport:
    """Validate the player's JSON; intervals are clipped to the clip. Raises PortalError (400)."""

    def invalid(what: str) -> PortalError:
        return PortalError("invalid_progress", f"The progress report has an invalid {what}.")

    if not isinstance(payload, dict):
        raise invalid("body")
    position = _number(payload.get("position", 0))
    if position is None or position < 0:
        raise invalid("position")
    speed = _number(payload.get("speed", 1))
    if speed is None or not MIN_SPEED <= speed <= MAX_SPEED:
        raise invalid("speed")
    raw = payload.get("heard", [])
    if not isinstance(raw, list) or len(raw) > MAX_HEARD_INTERVALS:
        raise invalid("heard list")
    heard = []
    for pair in raw:
        if not isinstance(pair, list) or len(pair) != 2:
            raise invalid("heard interval")
        start, end = _number(pair[0]), _number(pair[1])
        if start is None or end is None or start < 0 or end < start:
            raise invalid("heard interval")
        heard.append([min(start, duration), min(end, duration)])
    final = payload.get("final", False)
    if not isinstance(final, bool):
        raise invalid("final flag")
    return ProgressReport(position=min(position, duration), speed=speed, heard=heard, final=final)


def record_progress(
    task_id: int, user: User, user_session: UserSession, payload: object, actor: Actor, now: datetime
) -> ListeningState:
    """Merge what the holder's player played into the lease and say how much is heard now.

    Refused like every holder-only action (`live_lease`). Audited as `playback.progress`
    (position, speed, heard share) at most every 5 s per lease, plus every `final` report
    (pause, end, leaving the page); the intervals are merged on every report.
    """
    lease = live_lease(task_id, user, user_session, now, lock=True)
    clip = db.session.get_one(Clip, lease.clip_id)
    report = parse_progress(payload, clip.duration_ms / 1000)
    heard = json.dumps(
        [
            [round(s, 3), round(e, 3)]
            for s, e in merge_intervals([*_heard(lease.heard_intervals), *report.heard], HEARD_GAP_SECONDS)
        ],
        separators=(",", ":"),
    )
    last = lease.last_progress_at
    audited = report.final or last is None or now - last >= PROGRESS_AUDIT_EVERY
    db.session.execute(
        RECORD_LEASE_PROGRESS,
        {"lease_id": lease.id, "heard": heard, "progress_at": now if audited else last},
    )
    state = listening_state(lease, clip, heard)
    if audited:
        record_event(
            actor,
            "playback.progress",
            target=f"clip:{clip.public_id}",
            details={
                "task": task_id,
                "lease": lease.id,
                "position": round(report.position, 2),
                "speed": report.speed,
                "heard_share": state.heard_share,
                "fully_heard": state.fully_heard,
                "final": report.final,
            },
        )
    return state
