"""Audit export and offline verification at scale: 1,000,000 events on PostgreSQL.

Steps, all in one run:

1. Build the schema with the Alembic migrations and bulk-load N audit events (default
   1,000,000) with correct hashes through `COPY ... FROM STDIN`: the append-only triggers
   refuse UPDATE and DELETE, not INSERT. Events are computed with `portal.audit.chain`
   (the same digest and link as `record_event`) over a year, for 200 annotators of four
   vendors, with the work loop's mix of actions; a checkpoint is signed every 1,000.
2. PostgreSQL's own `COPY (SELECT <the exported columns> ORDER BY seq) TO STDOUT WITH CSV`
   of the same rows, read through psycopg and thrown away: the reference speed.
3. The portal's CSV export through the code path of `GET /audit/export` and
   `flask audit export` (`plan_export`, the `audit.exported` event committed first, then
   `ExportStream`), written to /dev/null, in a child process whose peak RSS (VmHWM) is
   reported. Steps 2 and 3 alternate for --repeat rounds; the best of each is compared.
4. The same export as JSONL to a file, then `python -m portal.audit.verify FILE
   --public-key PEM` in a fresh interpreter, timed from start to exit.

    .venv/bin/python benchmarks/audit_export.py --wipe \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test_auditui

--wipe is required: the script drops and recreates the database's public schema. Use
`--reuse` to skip step 1 when the database already holds the generated events.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fresh_database import migrate, wipe_postgres
from portal import create_app
from portal.audit import chain
from portal.audit.export import ExportStream, plan_export
from portal.audit.services import Actor, record_event
from portal.config import PROJECT_ROOT
from portal.extensions import db
from portal.keys import portal_keys

COLUMNS = (*chain.EVENT_FIELDS, "prev_hash", "hash")
VENDORS = ("Acme Transcription", "Blue Lagoon Typing", "Cobalt Captions", "Delta Language Services")
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1",
)
CHECKPOINT_EVERY = 1000


def libpq_url(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def app_env(url: str, instance: Path) -> dict[str, str]:
    return {
        "PORTAL_ENV": "development",
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_DATABASE_URL": url,
        "PORTAL_LOG_LEVEL": "WARNING",
    }


def synthetic_events(count: int, start: datetime) -> Iterator[dict[str, object]]:
    """Yield (event dict) in chain order: the work loop's mix over a year."""
    rng = random.Random(5)
    annotators = [
        (n, f"annotator{n}@{VENDORS[n % 4].split()[0].lower()}.example", VENDORS[n % 4])
        for n in range(1, 201)
    ]
    step = timedelta(days=365) / count
    clip, task, grant = 0, 0, 0
    for seq in range(1, count + 1):
        user_id, email, vendor = annotators[rng.randrange(200)]
        roll = rng.random()
        details: dict[str, object]
        outcome = "allowed"
        if roll < 0.55:
            action, size = "playback.range", 400_000 + 37 * (clip % 1000)
            first = rng.randrange(0, size, 65536)
            details = {
                "grant": grant,
                "grant_user": user_id,
                "task": task,
                "lease": task,
                "submission": None,
                "first": first,
                "last": min(size, first + 65536) - 1,
                "length": min(size, first + 65536) - first,
                "size": size,
            }
            target = f"clip:{clip:032x}"
        elif roll < 0.75:
            action, target = "playback.progress", f"clip:{clip:032x}"
            details = {
                "task": task,
                "lease": task,
                "position": round(rng.uniform(0, 30), 2),
                "speed": 1.0,
                "heard_share": round(rng.random(), 4),
                "fully_heard": False,
                "final": False,
            }
        elif roll < 0.85:
            grant += 1
            action, target = "playback.granted", f"clip:{clip:032x}"
            details = {"grant": grant, "task": task, "lease": task, "submission": None, "expires_in": 60}
        elif roll < 0.92:
            clip, task = clip + 1, task + 1
            action, target = "task.claimed", f"task:{task}"
            details = {"lease": task, "clip": f"{clip:032x}", "pass": 1, "priority": 0, "expires_at": "x"}
        elif roll < 0.97:
            action, target = "task.submitted", f"task:{task}"
            details = {"lease": task, "submission": task, "wer": 0.12, "time_on_task_ms": 81234}
        elif roll < 0.99:
            action, target, outcome = "auth.sign_in", f"user:{user_id}", "allowed"
            details = {"step": "password", "next": "totp"}
        else:
            action, target, outcome = "access.denied", None, "denied"
            details = {
                "reason": "role annotator may not use review.queue",
                "method": "GET",
                "path": "/review",
            }
        yield {
            "seq": seq,
            "occurred_at": chain.format_time(start + step * seq),
            "actor_id": user_id,
            "actor": email,
            "role": "annotator",
            "vendor": vendor,
            "session_ref": f"{(user_id * 7919 + seq // 5000):032x}",
            "ip": f"203.0.113.{user_id % 250}",
            "user_agent": AGENTS[user_id % 3],
            "action": action,
            "target": target,
            "outcome": outcome,
            "details": details,
        }


def generate(url: str, count: int, instance: Path) -> tuple[float, int]:
    """Bulk-load `count` hashed events and their checkpoints; return (seconds, bytes)."""
    app = create_app(app_env(url, instance))
    with app.app_context():
        key = portal_keys().audit_signing_key
    key_id = chain.public_key_id(key.public_key())
    started = time.perf_counter()
    previous = chain.GENESIS_HASH
    checkpoints = []
    start = datetime(2025, 12, 1, tzinfo=UTC)
    with psycopg.connect(libpq_url(url)) as connection:
        with connection.cursor().copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for event in synthetic_events(count, start):
                own = chain.event_hash(previous, event)
                copy.write_row(
                    (
                        event["seq"],
                        event["occurred_at"].replace("T", " ").removesuffix("Z"),
                        event["actor_id"],
                        event["actor"],
                        event["role"],
                        event["vendor"],
                        event["session_ref"],
                        event["ip"],
                        event["user_agent"],
                        event["action"],
                        event["target"],
                        event["outcome"],
                        chain.canonical_json(event["details"]),
                        previous,
                        own,
                    )
                )
                previous = own
                if event["seq"] % CHECKPOINT_EVERY == 0:
                    signed_at = event["occurred_at"]
                    signature = chain.sign_checkpoint(key, event["seq"], own, signed_at)
                    checkpoints.append((event["seq"], own, signed_at, key_id, signature))
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO audit_checkpoints (seq, head_hash, signed_at, key_id, signature) "
                "VALUES (%s, %s, %s, %s, %s)",
                checkpoints,
            )
            cursor.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (count, previous))
        connection.commit()
        with connection.cursor() as cursor:
            connection.autocommit = True
            cursor.execute("VACUUM ANALYZE audit_events")
            cursor.execute("SELECT pg_total_relation_size('audit_events')")
            size = cursor.fetchone()[0]  # type: ignore[index]
    return time.perf_counter() - started, size


def copy_reference(url: str) -> tuple[float, int]:
    """PostgreSQL's own CSV of the same rows, read through psycopg; (seconds, bytes)."""
    columns = ", ".join(COLUMNS)  # constants, not input
    query = f"COPY (SELECT {columns} FROM audit_events ORDER BY seq) TO STDOUT WITH CSV"  # noqa: S608
    with psycopg.connect(libpq_url(url)) as connection:
        started = time.perf_counter()
        total = 0
        with open(os.devnull, "wb") as sink, connection.cursor().copy(query) as copy:
            for chunk in copy:
                total += len(chunk)
                sink.write(chunk)
        return time.perf_counter() - started, total


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _export_child(env: dict[str, str], fmt: str, out: str, results: object) -> None:
    app = create_app(env)
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        db.session.commit()
        rss_before = _peak_rss_mib()
        started = time.perf_counter()
        plan = plan_export(portal_keys().audit_signing_key)
        assert plan is not None
        record_event(
            Actor(label="benchmark", role="operator", ip="local"), "audit.exported", details=plan.details(fmt)
        )
        db.session.commit()
        stream = ExportStream(plan, fmt)
        written = 0
        with open(out, "wb") as sink:
            for chunk in stream:
                written += len(chunk)
                sink.write(chunk)
        elapsed = time.perf_counter() - started
    results.put(  # type: ignore[attr-defined]
        {
            "seconds": elapsed,
            "chars": written,
            "events": stream.events,
            "rss_before": rss_before,
            "peak_rss": _peak_rss_mib(),
        }
    )


def portal_export(env: dict[str, str], fmt: str, out: str) -> dict[str, float]:
    """Run one export in a fresh process (so its peak RSS is its own)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_export_child, args=(env, fmt, out, results))
    process.start()
    while True:
        try:
            result = results.get(timeout=1)
            break
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(f"export process failed ({process.exitcode})") from None
    process.join()
    return result


SEARCHES = {
    "newest page, no filter": {},
    "one annotator": {"user": "17"},
    "one vendor": {"vendor": "Cobalt Captions"},
    "denied only": {"outcome": "denied"},
    "action prefix": {"action": "task."},
    "one clip": {"clip": f"{4242:032x}"},
    "one task": {"task": "4242"},
    "a week in March": {"since": "2026-03-02T00:00", "until": "2026-03-09T00:00"},
    "a week in March, one vendor, denied": {
        "since": "2026-03-02T00:00",
        "until": "2026-03-09T00:00",
        "vendor": "Acme Transcription",
        "outcome": "denied",
    },
}


def page_latencies(env: dict[str, str]) -> list[tuple[str, float, int]]:
    """Best of three, in ms, of the search pages, reports and anomaly rules on the big log."""
    from portal.audit import reports
    from portal.audit.search import parse_filters, search
    from portal.auth.models import User

    app = create_app(env)
    timings = []
    with app.app_context():

        def best(label: str, work: Callable[[], int]) -> None:
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                found = work()
                runs.append(time.perf_counter() - started)
                db.session.rollback()
            timings.append((label, min(runs) * 1000, found))

        for label, args in SEARCHES.items():
            best(f"search: {label}", lambda args=args: len(search(parse_filters(args)).events))
        older = search(parse_filters({})).older
        best("search: second page (keyset)", lambda: len(search(parse_filters({}), before=older).events))
        until = datetime(2026, 12, 1, tzinfo=UTC)
        thresholds = reports.Thresholds()
        best(
            "anomalies: last 7 days",
            lambda: len(reports.find_anomalies(until - timedelta(days=7), until, thresholds)),
        )
        best("clip report", lambda: len(reports.clip_report(f"{4242:032x}").timeline))  # type: ignore[union-attr]
        user = User(id=17, email="annotator17@blue.example", role="annotator")
        best(
            "user report: 30 days",
            lambda: len(reports.user_report(user, until - timedelta(days=30), until, thresholds).counts),
        )
    return timings


def offline_verify(path: Path, public_key: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "portal.audit.verify", str(path), "--public-key", str(public_key)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"verification failed: {done.stdout}{done.stderr}")
    return elapsed, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wipe", action="store_true", help="drop and recreate the public schema")
    parser.add_argument("--reuse", action="store_true", help="keep the events already loaded")
    args = parser.parse_args()
    if not args.wipe:
        raise SystemExit("--wipe is required: this benchmark drops and recreates the public schema")
    workdir = Path(tempfile.mkdtemp(prefix="audit-export-"))
    instance = workdir / "instance"
    env = app_env(args.database_url, instance)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"# {platform.node()} · Python {platform.python_version()} · {os.cpu_count()} CPUs · load {load}")
    with psycopg.connect(libpq_url(args.database_url)) as connection:
        print("#", connection.execute("SELECT version()").fetchone()[0])  # type: ignore[index]
    if args.reuse:
        keys_from = Path(os.environ.get("PORTAL_KEYS_DIR", ""))
        if not keys_from.is_dir():
            raise SystemExit("--reuse needs PORTAL_KEYS_DIR pointing at the keys the events were signed with")
        env["PORTAL_KEYS_DIR"] = str(keys_from)
    else:
        wipe_postgres(args.database_url)
        migrate(args.database_url)
        seconds, size = generate(args.database_url, args.events, instance)
        print(f"generated {args.events:,} events in {seconds:.1f} s; table + indexes {size / 2**20:.0f} MiB")
        print(f"(keys in {instance / 'keys'}; rerun with PORTAL_KEYS_DIR={instance / 'keys'} --reuse)")

    copies, exports = [], []
    for round_number in range(1, args.repeat + 1):
        copy_seconds, copy_bytes = copy_reference(args.database_url)
        copies.append(copy_seconds)
        result = portal_export(env, "csv", os.devnull)
        exports.append(result)
        print(
            f"round {round_number}: COPY {copy_seconds:.2f} s ({copy_bytes / 2**20:.0f} MiB) · "
            f"portal CSV {result['seconds']:.2f} s ({result['chars'] / 2**20:.0f} MiB, "
            f"{result['events']:,} events), peak RSS {result['peak_rss']:.0f} MiB "
            f"(before the export {result['rss_before']:.0f} MiB)"
        )
    best_copy, best_export = min(copies), min(exports, key=lambda r: r["seconds"])
    print(
        f"best: COPY {best_copy:.2f} s, portal CSV {best_export['seconds']:.2f} s → "
        f"{best_copy / best_export['seconds']:.2f} of COPY's speed (target ≥ 0.33); "
        f"peak RSS {max(r['peak_rss'] for r in exports):.0f} MiB (target < 150)"
    )

    jsonl = workdir / "audit.jsonl"
    result = portal_export(env, "jsonl", str(jsonl))
    size = jsonl.stat().st_size / 2**20
    print(f"JSONL export: {result['seconds']:.2f} s, {size:.0f} MiB, peak RSS {result['peak_rss']:.0f} MiB")
    app = create_app(env)
    with app.app_context():
        from cryptography.hazmat.primitives import serialization

        pem = (
            portal_keys()
            .audit_signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    public_key = workdir / "audit-public.pem"
    public_key.write_bytes(pem)
    seconds, summary = offline_verify(jsonl, public_key)
    print(f"offline verification: {seconds:.2f} s (target ≤ 15) — {summary}")
    print(json.dumps({"copy": copies, "export": [r["seconds"] for r in exports], "verify": seconds}))
    for label, milliseconds, found in page_latencies(env):
        print(f"{label}: {milliseconds:.1f} ms ({found} rows)")


if __name__ == "__main__":
    main()
