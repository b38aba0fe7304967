"""Audit append throughput: events per second with concurrent writers, SQLite and PostgreSQL.

Every event is appended the way a request appends it: `record_event` (lock the chain
head, hash, insert, move the head, a signed checkpoint every PORTAL_AUDIT_CHECKPOINT_EVERY
events) and its own COMMIT. For each number of writers the script starts from an empty,
freshly migrated schema (Alembic, as `make run` does), appends --events events spread over
the writers, and reports throughput and the latency of one append+commit (p50, p95, p99).
Writers are threads, each with its own app context, session and connection, like a
threaded server; with --mode processes (or both) they are separate processes, like
gunicorn workers, which shows whether the threads were held back by the GIL. At the end
of every run the whole chain is verified (hashes, links, checkpoint signatures, head) and
its length checked against the number of commits.

    .venv/bin/python benchmarks/audit_append.py                      # SQLite (WAL) in a temp dir
    .venv/bin/python benchmarks/audit_append.py --wipe \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test_audit

PostgreSQL runs need --wipe: the script drops and recreates the database's public schema.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fresh_database import migrate, wipe_postgres
from portal import create_app
from portal.audit.export import verify_database
from portal.audit.services import Actor, record_event
from portal.extensions import db
from portal.keys import portal_keys

ACTOR = Actor(
    user_id=42,
    label="annotator42@acme.example",
    role="annotator",
    vendor="Acme Transcription",
    session_ref="3f1c9a0e5b7d4c2a9e8f7a6b5c4d3e2f",
    ip="203.0.113.7",
    user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
)


@dataclass
class Run:
    """One measured configuration."""

    backend: str
    mode: str
    writers: int
    events: int
    seconds: float
    latencies: list[float]
    verified: str

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def app_env(url: str, instance: Path, checkpoint_every: int) -> dict[str, str]:
    return {
        "PORTAL_ENV": "development",
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_DATABASE_URL": url,
        "PORTAL_AUDIT_CHECKPOINT_EVERY": str(checkpoint_every),
        "PORTAL_LOG_LEVEL": "WARNING",
    }


def append_events(count: int, writer: int) -> list[float]:
    """Append `count` events, one transaction each; return each append+commit's seconds."""
    latencies = []
    for number in range(count):
        started = time.perf_counter()
        record_event(
            ACTOR,
            "playback.range_served",
            target=f"clip:{writer}-{number}",
            details={"task_id": number, "bytes": "0-65535", "grant": "c0ffee" * 4},
        )
        db.session.commit()
        latencies.append(time.perf_counter() - started)
    return latencies


def shares(total: int, writers: int) -> list[int]:
    return [total // writers + (1 if n < total % writers else 0) for n in range(writers)]


def run_threads(env: dict[str, str], writers: int, events: int) -> tuple[float, list[float]]:
    app = create_app(env)
    start = threading.Barrier(writers + 1)
    results: list[list[float]] = [[] for _ in range(writers)]

    def writer(number: int, count: int) -> None:
        with app.app_context():
            db.session.execute(sa.text("SELECT 1"))  # connect before the clock starts
            db.session.commit()
            start.wait()
            results[number] = append_events(count, number)

    threads = [threading.Thread(target=writer, args=(n, c)) for n, c in enumerate(shares(events, writers))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    assert db.engine is not None
    db.engine.dispose()
    return elapsed, [latency for latencies in results for latency in latencies]


def _process_writer(env: dict[str, str], number: int, count: int, start: object, out: object) -> None:
    app = create_app(env)
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        db.session.commit()
        start.wait()  # type: ignore[attr-defined]
        began = time.perf_counter()
        latencies = append_events(count, number)
        out.put((began, time.perf_counter(), latencies))  # type: ignore[attr-defined]


def run_processes(env: dict[str, str], writers: int, events: int) -> tuple[float, list[float]]:
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=_process_writer, args=(env, n, c, start, out))
        for n, c in enumerate(shares(events, writers))
    ]
    for process in processes:
        process.start()
    reports = [out.get() for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a writer process failed with exit code {process.exitcode}")
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes.
    elapsed = max(end for _, end, _ in reports) - min(began for began, _, _ in reports)
    return elapsed, [latency for _, _, latencies in reports for latency in latencies]


def verify(env: dict[str, str], expected: int) -> str:
    app = create_app(env)
    with app.app_context():
        result = verify_database(portal_keys().audit_signing_key)
        stored = db.session.scalar(sa.text("SELECT count(*) FROM audit_events"))
    assert db.engine is not None
    db.engine.dispose()
    if not result.ok or stored != expected or result.last_seq != expected:
        raise SystemExit(
            f"chain verification failed: {result.problems or f'{stored} events, {expected} expected'}"
        )
    return f"{result.events} events, {result.checkpoints} checkpoints OK"


def measure(args: argparse.Namespace, writers: int, mode: str, workdir: Path) -> Run:
    instance = workdir / "instance"
    if args.database_url:
        url, backend = args.database_url, sa.engine.make_url(args.database_url).get_backend_name()
        wipe_postgres(url)
    else:
        path = workdir / f"audit-{mode}-{writers}.sqlite3"
        url, backend = f"sqlite:///{path}", "sqlite"
    migrate(url)
    env = app_env(url, instance, args.checkpoint_every)
    runner: Callable[[dict[str, str], int, int], tuple[float, list[float]]]
    runner = run_threads if mode == "threads" else run_processes
    seconds, latencies = runner(env, writers, args.events)
    return Run(backend, mode, writers, args.events, seconds, latencies, verify(env, args.events))


def machine_facts(database_url: str | None) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    facts = [
        f"CPU: {cpu}, {os.cpu_count()} logical CPUs; load average {os.getloadavg()[0]:.2f} at start",
        f"OS: {platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"SQLAlchemy {sa.__version__}",
    ]
    if database_url:
        engine = sa.create_engine(database_url)
        with engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
            settings = {
                name: connection.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("synchronous_commit", "fsync", "shared_buffers")
            }
        engine.dispose()
        facts.append(
            f"PostgreSQL {version} on localhost, " + ", ".join(f"{k}={v}" for k, v in settings.items())
        )
    else:
        import sqlite3

        facts.append(
            f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL, file in {tempfile.gettempdir()}"
        )
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--wipe", action="store_true", help="allow dropping the PostgreSQL public schema")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16], help="writer counts to measure")
    parser.add_argument("--events", type=int, default=3000, help="events appended per run, over all writers")
    parser.add_argument("--mode", choices=["threads", "processes", "both"], default="both")
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="PORTAL_AUDIT_CHECKPOINT_EVERY")
    args = parser.parse_args()
    if args.database_url and not args.wipe:
        parser.error("--wipe is required with --database-url: each run drops and recreates the public schema")
    modes = ["threads", "processes"] if args.mode == "both" else [args.mode]

    for fact in machine_facts(args.database_url):
        print(fact)
    print(f"{args.events} events per run, one transaction each, checkpoint every {args.checkpoint_every}")
    columns = ("events/s", "p50 ms", "p95 ms", "p99 ms")
    print(
        f"{'backend':<10} {'mode':<9} {'writers':>7} " + " ".join(f"{c:>9}" for c in columns) + "  verified"
    )
    for mode in modes:
        for writers in args.writers:
            with tempfile.TemporaryDirectory(prefix="audit-bench-") as workdir:
                run = measure(args, writers, mode, Path(workdir))
            print(
                f"{run.backend:<10} {run.mode:<9} {run.writers:>7} {run.rate:>9.0f} "
                f"{run.percentile(0.50):>9.2f} {run.percentile(0.95):>9.2f} {run.percentile(0.99):>9.2f}  "
                f"{run.verified} (mean {statistics.fmean(run.latencies) * 1000:.2f} ms, {run.seconds:.2f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
