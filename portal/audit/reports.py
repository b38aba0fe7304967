"""What the access log says about a clip, a person, and what looks wrong.

Everything here is read from the audit log (plus, for what a player reported as heard,
the leases the log's events name), so it holds for erased clips and departed users too.

Playback in the log, as `portal.playback.services` writes it (target `clip:<public id>`):
`playback.granted` (grant, task, lease or submission), `playback.range` (grant, first,
last, length, size: the bytes served), `playback.progress` (lease, position, speed, heard
share, and the heard intervals when the player sends them), `playback.denied`.

Definitions the reports and the anomaly rules share:

* **bytes served** under a grant: the sum of its ranges' lengths; **coverage**: the share
  of the file's distinct bytes among them.
* **full play**: a grant whose ranges cover at least 97 % of the file counts as
  `bytes served // file size` plays (at least one): the player fetches the whole file once
  per play, so a second full fetch under one grant, or another grant, is a replay.
  Listening again from memory within one page does not reach the server and is not seen.
* **servings** of a clip by a person: bytes served / file size, summed over their grants.
* **seconds served** are byte ranges mapped linearly onto the clip's duration (FLAC is
  close to constant bit rate, so this is approximate); **seconds heard** are what the
  player reported (progress events' intervals, else the lease's merged intervals).

Anomaly rules, over a time window, with thresholds from the configuration:

* `streaming_beyond_tasks`: servings ≥ PORTAL_AUDIT_STREAMS_MIN and more than
  PORTAL_AUDIT_STREAMS_PER_TASK × the tasks the person worked on in the window
  (`task.claimed`, plus the submissions a supervisor was granted playback to review).
* `repeated_full_replays`: ≥ PORTAL_AUDIT_FULL_REPLAYS full plays of one clip by one person.
* `outside_working_hours`: ≥ PORTAL_AUDIT_OFF_HOURS_EVENTS events by a person whose
  vendor declared working hours, outside them (in the vendor's time zone).
* `denied_attempts`: ≥ PORTAL_AUDIT_DENIED_ATTEMPTS denied or failed events by one person
  (or, signed out, from one IP address).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from portal.audit.models import AuditEvent, Outcome
from portal.audit.search import EVENT_COLUMNS
from portal.auth.models import User, Vendor
from portal.clips.models import Clip
from portal.extensions import db
from portal.tasks.models import TaskLease

FULL_PLAY_SHARE = 0.97
TIMELINE_LIMIT = 500
RECENT_LIMIT = 20
PLAYBACK_ACTIONS = ("playback.granted", "playback.range", "playback.progress", "playback.denied")
_E = AuditEvent.__table__.c


@dataclass(frozen=True)
class Thresholds:
    """When an anomaly rule fires; see the module docstring."""

    streams_per_task: int = 3
    streams_min: int = 5
    full_replays: int = 3
    denied_attempts: int = 10
    off_hours_events: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        return cls(
            streams_per_task=config["AUDIT_STREAMS_PER_TASK"],
            streams_min=config["AUDIT_STREAMS_MIN"],
            full_replays=config["AUDIT_FULL_REPLAYS"],
            denied_attempts=config["AUDIT_DENIED_ATTEMPTS"],
            off_hours_events=config["AUDIT_OFF_HOURS_EVENTS"],
        )


def merge(intervals: Iterable[Sequence[float]]) -> list[list[float]]:
    """Sort and merge [start, end) intervals."""
    merged: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _details(row: Any) -> dict[str, Any]:
    try:
        value = json.loads(row.details)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class GrantUse:
    """The byte ranges served under one playback grant."""

    size: int = 0
    served: int = 0
    ranges: list[list[float]] = field(default_factory=list)

    def add(self, details: Mapping[str, Any]) -> None:
        first, last, size = _int(details.get("first")), _int(details.get("last")), _int(details.get("size"))
        length = _int(details.get("length"))
        if first is None or last is None or size is None or size <= 0:
            return
        self.size = size
        self.served += length if length is not None else last - first + 1
        self.ranges.append([first, last + 1])

    @property
    def coverage(self) -> float:
        if self.size <= 0:
            return 0.0
        return sum(end - start for start, end in merge(self.ranges)) / self.size

    @property
    def full_plays(self) -> int:
        if self.coverage < FULL_PLAY_SHARE:
            return 0
        return max(1, self.served // self.size)

    @property
    def servings(self) -> float:
        return self.served / self.size if self.size else 0.0


@dataclass
class Listener:
    """One person's use of one clip, as the log records it."""

    actor_id: int | None
    actor: str | None
    role: str | None = None
    vendor: str | None = None
    first_at: datetime | None = None
    last_at: datetime | None = None
    grants: dict[Any, GrantUse] = field(default_factory=dict)
    granted: int = 0
    denied: int = 0
    sessions: set[str] = field(default_factory=set)
    leases: set[int] = field(default_factory=set)
    tasks: set[int] = field(default_factory=set)
    reported_heard: list[list[float]] = field(default_factory=list)
    heard_share: float | None = None
    heard_seconds: list[list[float]] = field(default_factory=list)

    def see(self, row: Any) -> None:
        self.role, self.vendor = row.role or self.role, row.vendor or self.vendor
        self.first_at = self.first_at or row.occurred_at
        self.last_at = row.occurred_at
        if row.session_ref:
            self.sessions.add(row.session_ref)

    @property
    def bytes_served(self) -> int:
        return sum(use.served for use in self.grants.values())

    @property
    def full_plays(self) -> int:
        return sum(use.full_plays for use in self.grants.values())

    @property
    def servings(self) -> float:
        return sum(use.servings for use in self.grants.values())

    @property
    def size(self) -> int | None:
        sizes = [use.size for use in self.grants.values() if use.size]
        return max(sizes) if sizes else None

    def served_seconds(self, duration: float) -> list[list[float]]:
        """The byte ranges served, over all grants, as (approximate) seconds of the clip."""
        size = self.size
        if not size or duration <= 0:
            return []
        ranges = merge(r for use in self.grants.values() for r in use.ranges)
        return [[round(start / size * duration, 1), round(end / size * duration, 1)] for start, end in ranges]


def _listener_key(row: Any) -> tuple[int | None, str | None]:
    return (row.actor_id, None if row.actor_id is not None else row.actor)


def _follow_playback(listeners: dict[Any, Listener], row: Any) -> None:
    """Account one playback event of a clip to the person who caused it."""
    key = _listener_key(row)
    listener = listeners.get(key) or listeners.setdefault(key, Listener(row.actor_id, row.actor))
    listener.see(row)
    details = _details(row)
    lease, task = _int(details.get("lease")), _int(details.get("task"))
    if lease is not None:
        listener.leases.add(lease)
    if task is not None:
        listener.tasks.add(task)
    if row.action == "playback.denied" or row.outcome != Outcome.ALLOWED:
        listener.denied += 1
    elif row.action == "playback.granted":
        listener.granted += 1
    elif row.action == "playback.range":
        grant = details.get("grant")
        listener.grants.setdefault(grant if isinstance(grant, int) else row.seq, GrantUse()).add(details)
    elif row.action == "playback.progress":
        share = details.get("heard_share")
        if isinstance(share, int | float):
            listener.heard_share = max(listener.heard_share or 0.0, float(share))
        heard = details.get("heard")
        if isinstance(heard, list):
            listener.reported_heard.extend(
                pair
                for pair in heard
                if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int | float) for x in pair)
            )


def _lease_heard(lease_ids: Iterable[int]) -> dict[int, list[list[float]]]:
    """What each lease's player reported as heard (merged intervals, seconds)."""
    ids = sorted(set(lease_ids))
    if not ids:
        return {}
    rows = db.session.execute(sa.select(TaskLease.id, TaskLease.heard_intervals).where(TaskLease.id.in_(ids)))
    heard = {}
    for lease_id, text in rows:
        try:
            heard[lease_id] = [[float(s), float(e)] for s, e in json.loads(text or "[]")]
        except (ValueError, TypeError):
            heard[lease_id] = []
    return heard


@dataclass
class ClipReport:
    """Who heard a clip, when, which seconds, how often."""

    public_id: str
    clip: Clip | None
    listeners: list[Listener]
    timeline: list[Any]
    total_events: int

    @property
    def duration(self) -> float:
        return self.clip.duration_ms / 1000 if self.clip is not None else 0.0


def clip_report(public_id: str) -> ClipReport | None:
    """The report for one clip, or None if neither the clip nor any event about it exists."""
    clip = db.session.scalar(sa.select(Clip).where(Clip.public_id == public_id))
    rows = db.session.execute(
        sa.select(*EVENT_COLUMNS).where(_E.target == f"clip:{public_id}").order_by(_E.seq)
    ).all()
    if clip is None and not rows:
        return None
    listeners: dict[Any, Listener] = {}
    for row in rows:
        if row.action in PLAYBACK_ACTIONS:
            _follow_playback(listeners, row)
    heard_by_lease = _lease_heard(lease for listener in listeners.values() for lease in listener.leases)
    for listener in listeners.values():
        reported = listener.reported_heard or [
            pair for lease in listener.leases for pair in heard_by_lease.get(lease, [])
        ]
        listener.heard_seconds = [[round(s, 1), round(e, 1)] for s, e in merge(reported)]
    ordered = sorted(listeners.values(), key=lambda item: item.first_at or datetime.min)
    return ClipReport(
        public_id=public_id,
        clip=clip,
        listeners=ordered,
        timeline=list(reversed(rows[-TIMELINE_LIMIT:])),
        total_events=len(rows),
    )


# --- anomalies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One anomaly: which rule, who, how much against which threshold, and where to look."""

    rule: str
    actor_id: int | None
    actor: str | None
    vendor: str | None
    value: float
    threshold: float
    summary: str
    first_at: datetime | None = None
    last_at: datetime | None = None
    evidence: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return RULE_TITLES[self.rule]


RULE_TITLES = {
    "streaming_beyond_tasks": "Streaming far more than claimed tasks",
    "repeated_full_replays": "Repeated full replays of one clip",
    "outside_working_hours": "Access outside the vendor's working hours",
    "denied_attempts": "Many denied attempts",
}


def _window(query: sa.Select[Any], since: datetime, until: datetime, user_id: int | None) -> sa.Select[Any]:
    query = query.where(_E.occurred_at >= since, _E.occurred_at < until)
    return query if user_id is None else query.where(_E.actor_id == user_id)


def _evidence(since: datetime, until: datetime, **args: str) -> dict[str, str]:
    return {
        "since": since.strftime("%Y-%m-%dT%H:%M"),
        "until": until.strftime("%Y-%m-%dT%H:%M"),
        **args,
    }


def _playback_flags(
    since: datetime, until: datetime, thresholds: Thresholds, user_id: int | None
) -> list[Flag]:
    listeners: dict[tuple[Any, str], Listener] = {}
    rows = db.session.execute(
        _window(
            sa.select(*EVENT_COLUMNS).where(
                _E.action.in_(("playback.range", "playback.granted")), _E.actor_id.is_not(None)
            ),
            since,
            until,
            user_id,
        ).order_by(_E.seq)
    )
    reviews: dict[int, set[int]] = defaultdict(set)
    for row in rows:
        details = _details(row)
        submission = _int(details.get("submission"))
        if row.action == "playback.granted" and submission is not None:
            reviews[row.actor_id].add(submission)
        key = (row.actor_id, row.target or "")
        listener = listeners.get(key) or listeners.setdefault(key, Listener(row.actor_id, row.actor))
        listener.see(row)
        if row.action == "playback.range" and row.outcome == Outcome.ALLOWED:
            grant = details.get("grant")
            listener.grants.setdefault(grant if isinstance(grant, int) else row.seq, GrantUse()).add(details)
    claims = dict(
        db.session.execute(
            _window(
                sa.select(_E.actor_id, sa.func.count()).where(
                    _E.action == "task.claimed", _E.outcome == Outcome.ALLOWED
                ),
                since,
                until,
                user_id,
            ).group_by(_E.actor_id)
        ).all()
    )
    flags = []
    people: dict[int, list[Listener]] = defaultdict(list)
    for (actor_id, target), listener in listeners.items():
        people[actor_id].append(listener)
        if listener.full_plays >= thresholds.full_replays:
            clip = target.removeprefix("clip:")
            flags.append(
                Flag(
                    "repeated_full_replays",
                    actor_id,
                    listener.actor,
                    listener.vendor,
                    listener.full_plays,
                    thresholds.full_replays,
                    f"{listener.full_plays} full plays of clip {clip[:12]}… in the window",
                    listener.first_at,
                    listener.last_at,
                    _evidence(since, until, user=str(actor_id), clip=clip, action="playback."),
                )
            )
    for actor_id, clips in people.items():
        servings = sum(listener.servings for listener in clips)
        worked = claims.get(actor_id, 0) + len(reviews.get(actor_id, ()))
        if servings >= thresholds.streams_min and servings > thresholds.streams_per_task * max(worked, 1):
            first = min((c.first_at for c in clips if c.first_at), default=None)
            last = max((c.last_at for c in clips if c.last_at), default=None)
            flags.append(
                Flag(
                    "streaming_beyond_tasks",
                    actor_id,
                    clips[0].actor,
                    clips[0].vendor,
                    round(servings, 1),
                    thresholds.streams_per_task * max(worked, 1),
                    f"{servings:.1f} clips' worth of audio streamed from {len(clips)} clip(s) "
                    f"for {worked} task(s) worked",
                    first,
                    last,
                    _evidence(since, until, user=str(actor_id), action="playback.range"),
                )
            )
    return flags


def _denied_flags(
    since: datetime, until: datetime, thresholds: Thresholds, user_id: int | None
) -> list[Flag]:
    who = sa.case((_E.actor_id.is_(None), _E.ip), else_=None)
    rows = db.session.execute(
        _window(
            sa.select(
                _E.actor_id,
                who.label("ip"),
                sa.func.max(_E.actor).label("actor"),
                sa.func.max(_E.vendor).label("vendor"),
                sa.func.count().label("attempts"),
                sa.func.min(_E.occurred_at).label("first_at"),
                sa.func.max(_E.occurred_at).label("last_at"),
            ).where(_E.outcome.in_((Outcome.DENIED, Outcome.FAILED))),
            since,
            until,
            user_id,
        )
        .group_by(_E.actor_id, who)
        .having(sa.func.count() >= thresholds.denied_attempts)
    ).all()
    flags = []
    for row in rows:
        if row.actor_id is not None:
            label, evidence = row.actor, {"user": str(row.actor_id)}
        else:
            label, evidence = f"signed out, from {row.ip or 'an unknown address'}", {}
        flags.append(
            Flag(
                "denied_attempts",
                row.actor_id,
                label,
                row.vendor,
                row.attempts,
                thresholds.denied_attempts,
                f"{row.attempts} denied or failed attempts",
                row.first_at,
                row.last_at,
                _evidence(since, until, outcome="denied", **evidence),
            )
        )
    return flags


@dataclass(frozen=True)
class WorkingHours:
    """A vendor's declared working hours; `start > end` spans midnight."""

    start: time
    end: time
    zone: ZoneInfo

    def covers(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def describe(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M} {self.zone.key}"


def working_hours(vendor: Vendor) -> WorkingHours | None:
    """The vendor's working hours, or None if it declared none (or an unknown time zone)."""
    if vendor.work_start is None or vendor.work_end is None or not vendor.work_timezone:
        return None
    try:
        zone = ZoneInfo(vendor.work_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return WorkingHours(vendor.work_start, vendor.work_end, zone)


def _off_hours_flags(
    since: datetime, until: datetime, thresholds: Thresholds, user_id: int | None
) -> list[Flag]:
    hours = {
        vendor.name: declared
        for vendor in db.session.scalars(sa.select(Vendor))
        if (declared := working_hours(vendor)) is not None
    }
    if not hours:
        return []
    rows = db.session.execute(
        _window(
            sa.select(_E.actor_id, _E.actor, _E.vendor, _E.occurred_at).where(
                _E.vendor.in_(list(hours)), _E.actor_id.is_not(None)
            ),
            since,
            until,
            user_id,
        ).order_by(_E.seq)
    )
    outside: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        if not hours[row.vendor].covers(row.occurred_at):
            outside[row.actor_id].append(row)
    flags = []
    for actor_id, events in outside.items():
        if len(events) < thresholds.off_hours_events:
            continue
        declared = hours[events[0].vendor]
        flags.append(
            Flag(
                "outside_working_hours",
                actor_id,
                events[0].actor,
                events[0].vendor,
                len(events),
                thresholds.off_hours_events,
                f"{len(events)} event(s) outside {declared.describe()}",
                events[0].occurred_at,
                events[-1].occurred_at,
                _evidence(since, until, user=str(actor_id)),
            )
        )
    return flags


def find_anomalies(
    since: datetime, until: datetime, thresholds: Thresholds, user_id: int | None = None
) -> list[Flag]:
    """Every anomaly in [since, until), optionally for one person, most severe first."""
    flags = [
        *_playback_flags(since, until, thresholds, user_id),
        *_off_hours_flags(since, until, thresholds, user_id),
        *_denied_flags(since, until, thresholds, user_id),
    ]
    return sorted(flags, key=lambda flag: (-(flag.value / (flag.threshold or 1)), flag.rule))


# --- one person -----------------------------------------------------------------------------


@dataclass
class ClipAccess:
    """One clip a person streamed, summed over their grants in the window."""

    public_id: str
    listener: Listener


@dataclass
class UserReport:
    """What one person did in a window, and what looks wrong about it."""

    user: User
    since: datetime
    until: datetime
    counts: list[tuple[str, str, int]]
    clips: list[ClipAccess]
    tasks_claimed: int
    denied: int
    hours: WorkingHours | None
    flags: list[Flag]
    recent: list[Any]


def user_report(user: User, since: datetime, until: datetime, thresholds: Thresholds) -> UserReport:
    """The per-user report for [since, until)."""
    counts = [
        (action, outcome, count)
        for action, outcome, count in db.session.execute(
            _window(sa.select(_E.action, _E.outcome, sa.func.count()), since, until, user.id)
            .group_by(_E.action, _E.outcome)
            .order_by(sa.func.count().desc(), _E.action)
        )
    ]
    rows = db.session.execute(
        _window(sa.select(*EVENT_COLUMNS).where(_E.action.in_(PLAYBACK_ACTIONS)), since, until, user.id)
        .where(_E.target.startswith("clip:"))
        .order_by(_E.seq)
    )
    by_clip: dict[str, dict[Any, Listener]] = defaultdict(dict)
    for row in rows:
        _follow_playback(by_clip[row.target.removeprefix("clip:")], row)
    clips = [
        ClipAccess(public_id, listener)
        for public_id, per_clip in by_clip.items()
        for listener in per_clip.values()
    ]
    clips.sort(key=lambda access: access.listener.last_at or since, reverse=True)
    recent = db.session.execute(
        sa.select(*EVENT_COLUMNS).where(_E.actor_id == user.id).order_by(_E.seq.desc()).limit(RECENT_LIMIT)
    ).all()
    return UserReport(
        user=user,
        since=since,
        until=until,
        counts=counts,
        clips=clips,
        tasks_claimed=sum(
            n for action, outcome, n in counts if action == "task.claimed" and outcome == "allowed"
        ),
        denied=sum(n for _, outcome, n in counts if outcome in (Outcome.DENIED, Outcome.FAILED)),
        hours=working_hours(user.vendor) if user.vendor is not None else None,
        flags=find_anomalies(since, until, thresholds, user.id),
        recent=recent,
    )


def default_window(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The last `days` days up to the next minute."""
    until = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return until - timedelta(days=days), until
