"""A realistic work history, generated fast: the dashboard's browser test, screenshots and benchmark.

Vendors with their annotators, each annotator working most weekdays inside their vendor's
shift (UTC), a number of tasks a day on clips of 3–30 s; every task leaves what the real
work loop leaves: a clip and its vendor pool, a task, a lease, a submission (WER against
the machine transcript, time on task, listening, the review outcome or gold score). Some
leases run out unrenewed; a few annotators rubber-stamp; a backlog of queued tasks and a
few live leases make the queue. Everything is seeded, so the same spec gives the same rows.

Rows are written with the driver's bulk paths (PostgreSQL COPY, SQLite executemany in one
transaction), not through the ORM: a year for 200 annotators is about 1.5 million tasks.
Users here are annotators that never sign in (their password hash is a placeholder).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from portal.auth.models import User, UserSession, Vendor
from portal.clips.models import Clip
from portal.tasks.models import ClipVendor, Submission, Task, TaskLease

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
CHUNK = 20_000
# (vendor, annotators, shift start hour UTC): shifts in several time zones.
VENDORS = (
    ("Acme Transcription", 60, 7),
    ("Globex Voice", 50, 13),
    ("Initech Audio", 40, 1),
    ("Umbrella Lingua", 30, 9),
    ("Stark Scribes", 20, 15),
)
MACHINE = "okay so I was thinking we could meet at the usual place around seven"


@dataclass
class HistorySpec:
    """What to generate."""

    end: datetime
    days: int = 365
    vendors: tuple[tuple[str, int, int], ...] = VENDORS
    tasks_per_day: int = 20
    backlog: int = 4000
    seed: int = 5
    # Who decided the reviewed submissions (a supervisor's user id); None leaves them undecided.
    reviewer_id: int | None = None


@dataclass
class HistoryStats:
    """What was generated."""

    annotators: int = 0
    tasks: int = 0
    submissions: int = 0
    leases: int = 0
    vendor_ids: dict[str, int] = field(default_factory=dict)
    annotator_ids: dict[str, list[int]] = field(default_factory=dict)


class BulkWriter:
    """Append rows to tables in the fastest way the backend offers."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.pending: dict[sa.Table, list[dict[str, Any]]] = {}

    def add(self, table: sa.Table, row: dict[str, Any]) -> None:
        rows = self.pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Write everything pending, tables in the order first seen (referenced tables first,
        since foreign keys are checked row by row)."""
        for table in list(self.pending):
            self._flush(table)

    def _flush(self, table: sa.Table) -> None:
        rows = self.pending.get(table)
        if not rows:
            return
        names = [column.name for column in table.columns]
        raw = self.connection.connection.dbapi_connection
        assert raw is not None
        if self.dialect == "postgresql":
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row([_naive(row.get(name)) for name in names])
        else:
            placeholders = ", ".join("?" for _ in names)
            cursor = raw.cursor()
            cursor.executemany(
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({placeholders})",
                ([_sqlite(row.get(name)) for name in names] for row in rows),
            )
            cursor.close()
        rows.clear()


def _naive(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(SQLITE_TIME)
    if isinstance(value, bool):
        return int(value)
    return value


@dataclass
class Annotator:
    """One generated person and their habits."""

    id: int
    vendor_id: int
    session_id: int
    shift_start: int
    speed: float
    accuracy: float
    expiry_rate: float
    rubber_stamper: bool
    workdays: float


class Ids:
    """Next free id per table, starting after what the database already holds."""

    def __init__(self, connection: sa.Connection) -> None:
        self.next: dict[str, int] = {}
        for table in (User, UserSession, Vendor, Clip, Task, TaskLease, Submission):
            top = connection.execute(sa.select(sa.func.max(table.id))).scalar() or 0
            self.next[table.__tablename__] = top + 1

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def generate_history(connection: sa.Connection, spec: HistorySpec) -> HistoryStats:
    """Write the history of `spec` through `connection` (the caller commits)."""
    rng = random.Random(spec.seed)
    ids = Ids(connection)
    writer = BulkWriter(connection)
    stats = HistoryStats()
    start = spec.end - timedelta(days=spec.days)
    annotators = _people(connection, writer, ids, spec, rng, stats, start)
    writer.flush()
    state = _Counter(ids, writer, rng, spec, stats)
    for day in range(spec.days + 1):
        midnight = (start + timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
        for person in annotators:
            if rng.random() > (person.workdays if midnight.weekday() < 5 else 0.08):
                continue
            for moment in _work_moments(person, midnight, spec, rng):
                if moment < start or moment > spec.end - timedelta(minutes=2):
                    continue
                state.task_done(person, moment)
    state.backlog(annotators)
    writer.flush()
    return stats


def _people(
    connection: sa.Connection,
    writer: BulkWriter,
    ids: Ids,
    spec: HistorySpec,
    rng: random.Random,
    stats: HistoryStats,
    start: datetime,
) -> list[Annotator]:
    people: list[Annotator] = []
    for name, count, shift in spec.vendors:
        vendor_id = connection.execute(sa.select(Vendor.id).where(Vendor.name == name)).scalar()
        if vendor_id is None:
            vendor_id = ids.take("vendors")
            writer.add(Vendor.__table__, {"id": vendor_id, "name": name, "active": True, "created_at": start})
        stats.vendor_ids[name] = vendor_id
        slug = name.split()[0].lower()
        for number in range(1, count + 1):
            user_id = ids.take("users")
            writer.add(
                User.__table__,
                {
                    "id": user_id,
                    "email": f"{_first_name(rng)}.{number}@{slug}.example",
                    "full_name": "",
                    "role": "annotator",
                    "vendor_id": vendor_id,
                    "password_hash": "!generated-history-never-signs-in",
                    "active": True,
                    "failed_attempts": 0,
                    "created_at": start,
                },
            )
            session_id = ids.take("user_sessions")
            writer.add(
                UserSession.__table__,
                {
                    "id": session_id,
                    "token_hash": f"{session_id:064x}",
                    "ref": f"{session_id:032x}",
                    "user_id": user_id,
                    "created_at": start,
                    "last_seen_at": start,
                    "expires_at": start,
                    "ended_at": start,
                    "end_reason": "absolute_timeout",
                },
            )
            people.append(
                Annotator(
                    id=user_id,
                    vendor_id=vendor_id,
                    session_id=session_id,
                    shift_start=shift,
                    speed=rng.uniform(1.2, 2.6),
                    accuracy=rng.uniform(0.02, 0.14),
                    expiry_rate=rng.uniform(0.005, 0.05),
                    rubber_stamper=rng.random() < 0.04,
                    workdays=rng.uniform(0.75, 0.98),
                )
            )
            stats.annotator_ids.setdefault(name, []).append(user_id)
        stats.annotators += count
    return people


FIRST_NAMES = [
    "amara",
    "ben",
    "chloe",
    "dev",
    "elena",
    "farid",
    "greta",
    "hiro",
    "ines",
    "jonas",
    "kofi",
    "lena",
    "mateo",
    "nadia",
    "omar",
    "priya",
    "quinn",
    "rosa",
    "sami",
    "tara",
    "uma",
    "vik",
    "wren",
    "xian",
    "yara",
    "zane",
]


def _first_name(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)


def _work_moments(
    person: Annotator, midnight: datetime, spec: HistorySpec, rng: random.Random
) -> list[datetime]:
    count = max(0, round(rng.gauss(spec.tasks_per_day, spec.tasks_per_day * 0.2)))
    shift = midnight + timedelta(hours=person.shift_start)
    return sorted(shift + timedelta(seconds=rng.uniform(0, 8 * 3600)) for _ in range(count))


class _Counter:
    """Writes one task's rows at a time."""

    def __init__(
        self, ids: Ids, writer: BulkWriter, rng: random.Random, spec: HistorySpec, stats: HistoryStats
    ):
        self.ids = ids
        self.writer = writer
        self.rng = rng
        self.spec = spec
        self.stats = stats

    def _clip(self, vendor_id: int, created: datetime, status: str = "active") -> tuple[int, int]:
        clip_id = self.ids.take("clips")
        duration = self.rng.randint(3000, 30000)
        old = created < self.spec.end - timedelta(days=90)
        self.writer.add(
            Clip.__table__,
            {
                "id": clip_id,
                "public_id": f"{clip_id:032x}",
                "subject_pseudonym": f"{clip_id * 7919 % 1_000_003:064x}",
                "locale": "en-US",
                "duration_ms": duration,
                "consent_opt_in": True,
                "consent_recorded_at": created,
                "consent_scope": "human_review",
                "transcript": "" if old else MACHINE,
                "toned_spans": 0,
                "passes": 1,
                "status": "expired" if old else status,
                "ingested_at": created,
                "retain_until": created + timedelta(days=90),
                "erased_at": created + timedelta(days=90) if old else None,
            },
        )
        self.writer.add(ClipVendor.__table__, {"clip_id": clip_id, "vendor_id": vendor_id})
        return clip_id, duration

    def _task(self, clip_id: int, created: datetime, status: str, gold: bool = False, **extra: Any) -> int:
        task_id = self.ids.take("tasks")
        self.writer.add(
            Task.__table__,
            {
                "id": task_id,
                "clip_id": clip_id,
                "pass_number": 1,
                "priority": 0,
                "status": status,
                "created_at": created,
                "is_gold": gold,
                "gold_transcript": MACHINE if gold else None,
                "rejections": 0,
                **extra,
            },
        )
        self.stats.tasks += 1
        return task_id

    def _lease(self, person: Annotator, task_id: int, clip_id: int, leased: datetime, **extra: Any) -> int:
        lease_id = self.ids.take("task_leases")
        self.writer.add(
            TaskLease.__table__,
            {
                "id": lease_id,
                "task_id": task_id,
                "clip_id": clip_id,
                "user_id": person.id,
                "vendor_id": person.vendor_id,
                "session_id": person.session_id,
                "leased_at": leased,
                "heard_intervals": "[]",
                "served_ranges": "[]",
                **extra,
            },
        )
        self.stats.leases += 1
        return lease_id

    def task_done(self, person: Annotator, leased: datetime) -> None:
        rng, end = self.rng, self.spec.end
        created = leased - timedelta(hours=rng.uniform(0.2, 30))
        if rng.random() < person.expiry_rate:
            clip_id, _ = self._clip(person.vendor_id, created)
            task_id = self._task(
                clip_id, created, "cancelled" if leased < end - timedelta(days=1) else "queued"
            )
            expires = leased + timedelta(minutes=10)
            noticed = expires + timedelta(minutes=rng.uniform(1, 120))
            self._lease(
                person,
                task_id,
                clip_id,
                leased,
                expires_at=expires,
                ended_at=noticed if noticed < end else None,
                end_reason="expired" if noticed < end else None,
            )
            return
        clip_id, duration = self._clip(person.vendor_id, created)
        stamp = person.rubber_stamper and rng.random() < 0.3
        ratio = (
            rng.uniform(0.35, 0.95) if stamp else max(0.6, rng.lognormvariate(math.log(person.speed), 0.35))
        )
        time_on_task = int(duration * ratio)
        submitted = leased + timedelta(milliseconds=time_on_task)
        gold = rng.random() < 0.03
        unedited = stamp or rng.random() < 0.22
        wer = 0.0 if unedited else round(rng.uniform(0.04, 0.45), 4)
        recent = submitted > end - timedelta(hours=20)
        reviewed_at: datetime | None = None
        rejected = False
        if gold:
            status, task_status = "scored", "scored"
        elif rng.random() < 0.25:
            if recent:
                status, task_status = "pending_review", "submitted"
            else:
                rejected = rng.random() < (0.04 + person.accuracy * (3 if stamp else 0.6))
                status, task_status = ("rejected", "accepted") if rejected else ("accepted", "accepted")
                reviewed_at = min(submitted + timedelta(hours=rng.uniform(0.5, 20)), end)
        else:
            status, task_status = "auto_accepted", "accepted"
            reviewed_at = submitted
        task_id = self._task(clip_id, created, task_status, gold=gold, rejections=int(rejected))
        lease_id = self._lease(
            person,
            task_id,
            clip_id,
            leased,
            expires_at=max(leased + timedelta(minutes=10), submitted + timedelta(minutes=rng.uniform(0, 9))),
            ended_at=submitted,
            end_reason="submitted",
        )
        gold_wer = round(max(0.0, rng.gauss(person.accuracy, 0.03)), 4) if gold else None
        self.writer.add(
            Submission.__table__,
            {
                "id": self.ids.take("submissions"),
                "task_id": task_id,
                "lease_id": lease_id,
                "clip_id": clip_id,
                "user_id": person.id,
                "vendor_id": person.vendor_id,
                "transcript": MACHINE,
                "wer": wer,
                "cer": round(wer * 0.55, 4),
                "edit_distance": int(wer * 60),
                "time_on_task_ms": time_on_task,
                "heard_share": 1.0 if stamp else round(rng.uniform(0.97, 1.0), 4),
                "fully_heard": True,
                "status": status,
                "gold_wer": gold_wer,
                "gold_cer": None if gold_wer is None else round(gold_wer * 0.5, 4),
                "created_at": submitted,
                "reviewer_id": self.spec.reviewer_id if status in ("accepted", "rejected") else None,
                "reviewed_at": reviewed_at,
            },
        )
        self.stats.submissions += 1

    def backlog(self, annotators: list[Annotator]) -> None:
        """Queued tasks from the last day and a half, and a few live leases."""
        rng, end = self.rng, self.spec.end
        for number in range(self.spec.backlog):
            person = annotators[number % len(annotators)]
            created = end - timedelta(hours=rng.uniform(0.1, 36))
            clip_id, _ = self._clip(person.vendor_id, created)
            self._task(clip_id, created, "queued")
        for person in annotators[:: max(1, len(annotators) // 12)]:
            created = end - timedelta(hours=rng.uniform(0.1, 6))
            clip_id, _ = self._clip(person.vendor_id, created)
            leased = end - timedelta(minutes=rng.uniform(0.5, 8))
            task_id = self.ids.next["tasks"]
            lease_id = self.ids.next["task_leases"]
            self._task(
                clip_id,
                created,
                "leased",
                lease_expires_at=leased + timedelta(minutes=10),
                current_lease_id=lease_id,
            )
            self._lease(person, task_id, clip_id, leased, expires_at=leased + timedelta(minutes=10))


def reset_sequences(connection: sa.Connection) -> None:
    """PostgreSQL: move each id sequence past the ids written here (SQLite needs nothing)."""
    if connection.dialect.name != "postgresql":
        return
    for table in (User, UserSession, Vendor, Clip, Task, TaskLease, Submission):
        name = table.__tablename__
        connection.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
        )
