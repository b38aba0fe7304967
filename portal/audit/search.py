"""Searching the access log: filters, the SQL condition they make, keyset pages.

One `Filters` value serves the search page, the per-clip and per-user links, filtered
exports (web and CLI) and the export's signed selection, so that what an auditor searched
is exactly what they export. Pages are keyset-paginated on the sequence number, newest
first: a page costs the same at the end of a year of history as at its start, and events
appended meanwhile never shift a page.

Filters and what they match:

* `since` / `until`: occurred at or after `since`, before `until` (UTC).
* `user`: the actor. A number is a user id; an email is the user with that address
  (matched on the actor's user id), or, if no account has it, the address as typed at a
  failed sign-in.
* `vendor`, `action`, `outcome`: exact. An action ending in `.` or `*` is a prefix
  (`playback.` matches every playback event).
* `clip`: the clip's public id (its pseudonym in every log): events whose target is it.
* `task`: events whose target is the task, and playback events of its clip that name it
  in their details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from portal.audit import chain
from portal.audit.models import AuditEvent, Outcome
from portal.auth.models import User
from portal.clips.models import Clip
from portal.extensions import db
from portal.tasks.models import Task

PAGE_SIZE = 50
FILTER_FIELDS = ("user", "vendor", "action", "outcome", "clip", "task")
OUTCOMES = tuple(str(outcome) for outcome in Outcome)
CLIP_ID = re.compile(r"^[0-9a-f]{32}$")
ACTION = re.compile(r"^[a-z0-9_.]{1,64}\*?$")
EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_ID = 2**31 - 1  # user and task ids are 32-bit integer columns
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
# The columns a page or a report shows (everything but the hashes' own bookkeeping).
EVENT_COLUMNS = tuple(AuditEvent.__table__.columns)


class FilterError(ValueError):
    """A filter value that cannot be used; `field` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Filters:
    """What to look for; every field is optional and they combine with AND."""

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    vendor: str | None = None
    action: str | None = None
    outcome: str | None = None
    clip: str | None = None
    task: int | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def as_dict(self) -> dict[str, Any]:
        """The filters set, in the form an export's selection records and signs."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = chain.format_time(value) if isinstance(value, datetime) else value
        return out

    def query_args(self) -> dict[str, str]:
        """The filters as URL query arguments (what `parse_filters` reads back)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, datetime):
                out[f.name] = value.strftime("%Y-%m-%dT%H:%M:%S" if value.second else "%Y-%m-%dT%H:%M")
            else:
                out[f.name] = str(value)
        return out


def _time(name: str, raw: str) -> datetime:
    text = raw.strip().removesuffix("Z")
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(name, "Use a date and time such as 2026-11-30T09:00 (UTC).") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= MAX_ID


def parse_filters(args: Mapping[str, str | None]) -> Filters:
    """Read filters from query arguments or CLI options; empty values are absent.

    Raises FilterError naming the first unusable field.
    """

    def value(name: str) -> str | None:
        raw = args.get(name)
        return raw.strip() if raw and raw.strip() else None

    since = value("since")
    until = value("until")
    filters: dict[str, Any] = {
        "since": _time("since", since) if since else None,
        "until": _time("until", until) if until else None,
    }
    if filters["since"] and filters["until"] and filters["since"] >= filters["until"]:
        raise FilterError("until", "The end of the time range must come after its start.")
    user = value("user")
    if user is not None:
        user = user.removeprefix("#")
        if not (_is_id(user) or EMAIL_LIKE.match(user)) or len(user) > 254:
            raise FilterError("user", "Give an email address or a user id.")
        filters["user"] = user.lower()
    vendor = value("vendor")
    if vendor is not None and len(vendor) > 120:
        raise FilterError("vendor", "Vendor names are at most 120 characters.")
    filters["vendor"] = vendor
    action = value("action")
    if action is not None and not ACTION.match(action):
        raise FilterError("action", "Actions look like playback.range; end with . or * for a prefix.")
    filters["action"] = action
    outcome = value("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise FilterError("outcome", "The outcome is allowed, denied or failed.")
    filters["outcome"] = outcome
    clip = value("clip")
    if clip is not None:
        clip = clip.removeprefix("clip:").lower()
        if not CLIP_ID.match(clip):
            raise FilterError("clip", "A clip pseudonym is 32 hexadecimal characters.")
    filters["clip"] = clip
    task = value("task")
    if task is not None:
        task = task.removeprefix("task:").removeprefix("#")
        if not _is_id(task):
            raise FilterError("task", "A task is given by its number.")
    filters["task"] = int(task) if task else None
    return Filters(**filters)


def _detail_number(key: str, number: int) -> sa.ColumnElement[bool]:
    """Details (canonical JSON: sorted keys, no spaces) hold `"key":number` at some level.

    Matching the text keeps the query portable and never fails on a damaged row; the
    canonical encoding makes it exact (a number is followed by `,` or `}`).
    """
    details = AuditEvent.__table__.c.details
    token = f'"{key}":{number}'
    return sa.or_(details.like(f"%{token},%"), details.like(f"%{token}}}%"))


def condition(filters: Filters) -> sa.ColumnElement[bool]:
    """The SQL condition an event must meet, built so that the indexes can serve it.

    Looks up the user (by email) and the task's clip, hence needs the session.
    """
    c = AuditEvent.__table__.c
    parts: list[sa.ColumnElement[bool]] = []
    if filters.since is not None:
        parts.append(c.occurred_at >= filters.since)
    if filters.until is not None:
        parts.append(c.occurred_at < filters.until)
    if filters.user is not None:
        if _is_id(filters.user):
            parts.append(c.actor_id == int(filters.user))
        else:
            user_id = db.session.scalar(sa.select(User.id).where(User.email == filters.user))
            parts.append(c.actor == filters.user if user_id is None else c.actor_id == user_id)
    if filters.vendor is not None:
        parts.append(c.vendor == filters.vendor)
    if filters.action is not None:
        if filters.action.endswith(("*", ".")):
            parts.append(c.action.startswith(filters.action.rstrip("*"), autoescape=True))
        else:
            parts.append(c.action == filters.action)
    if filters.outcome is not None:
        parts.append(c.outcome == filters.outcome)
    if filters.clip is not None:
        parts.append(c.target == f"clip:{filters.clip}")
    if filters.task is not None:
        parts.append(_task_condition(filters.task))
    return sa.and_(sa.true(), *parts)


def _task_condition(task_id: int) -> sa.ColumnElement[bool]:
    c = AuditEvent.__table__.c
    clip = db.session.scalar(
        sa.select(Clip.public_id).join(Task, Task.clip_id == Clip.id).where(Task.id == task_id)
    )
    own = c.target == f"task:{task_id}"
    if clip is None:
        return own
    # Both alternatives name the target, so the target index narrows the scan first.
    return sa.and_(
        c.target.in_([f"task:{task_id}", f"clip:{clip}"]),
        sa.or_(own, _detail_number("task", task_id)),
    )


@dataclass(frozen=True)
class Page:
    """One page of events, newest first, with the cursors of its neighbours."""

    events: list[Any]
    newer: int | None
    older: int | None


def search(
    filters: Filters, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> Page:
    """A page of matching events, newest first.

    `before` (a sequence number) pages towards older events, `after` towards newer ones;
    with neither, the newest page. `newer`/`older` are the cursors to pass back as `after`
    and `before`, or None at either end.
    """
    c = AuditEvent.__table__.c
    query = sa.select(*EVENT_COLUMNS).where(condition(filters))
    if after is not None:
        rows = db.session.execute(query.where(c.seq > after).order_by(c.seq).limit(size + 1)).all()
        more = len(rows) > size
        rows = list(reversed(rows[:size]))
        return Page(
            events=rows,
            newer=rows[0].seq if more and rows else None,
            older=rows[-1].seq if rows else after + 1,
        )
    if before is not None:
        query = query.where(c.seq < before)
    rows = db.session.execute(query.order_by(c.seq.desc()).limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    return Page(
        events=rows,
        newer=(rows[0].seq if rows else before - 1) if before is not None else None,
        older=rows[-1].seq if more else None,
    )


def recent_actions(window: int = 20_000) -> list[str]:
    """Actions seen among the latest events, for the search form's suggestions."""
    latest = (
        sa.select(AuditEvent.__table__.c.action)
        .order_by(AuditEvent.__table__.c.seq.desc())
        .limit(window)
        .subquery()
    )
    return list(db.session.scalars(sa.select(latest.c.action).distinct().order_by(latest.c.action)))
