"""Supervisor dashboard render time with a year of history for 200 annotators (target ≤ 300 ms).

Builds a freshly migrated database (Alembic, as `make run` does), creates the vendors, an
internal supervisor and a vendor supervisor through the portal's own services, then bulk
loads a generated history (tests/analytics/history.py: 5 vendors, 200 annotators, ~20 tasks
a working day each, a clip + task + lease + submission per task, expired leases, rubber
stamps, reviews, gold scores, a queued backlog). Both supervisors sign in through the real
forms (password, TOTP, NDA) with the Flask test client; then `GET /supervisor` is timed
(the real view, its real SQL, the template) over the default range (last 7 days) and over
the full year, for each supervisor. The history is written behind the portal's back, so the
dashboard rollup is rebuilt after the load (`flask dashboard refresh --rebuild`, timed), and
the cost of the first page view of a new day (sealing one day) is measured too.
Reported: median, p95, min and max of --runs requests after one warm-up request; the page
size; and the CSV of the annotators table for the year.

    .venv/bin/python benchmarks/dashboard.py                                  # SQLite in a temp dir
    .venv/bin/python benchmarks/dashboard.py --wipe \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test_dash

PostgreSQL runs need --wipe: the script drops and recreates the database's public schema.
`--reuse` skips the load when the database already holds a generated history (same spec).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fresh_database import migrate, wipe_postgres
from portal import create_app
from portal.admin.services import create_user, create_vendor, find_vendor
from portal.analytics import rollup
from portal.audit.services import Actor
from portal.auth import second_factor
from portal.auth.models import Role
from portal.clock import utcnow
from portal.extensions import db
from portal.nda.services import publish_nda
from portal.tasks.models import Submission, TaskLease
from tests.analytics.history import VENDORS, HistorySpec, generate_history, reset_sequences

OPERATOR = Actor(label="benchmark", role="operator", ip="local")
PASSWORD = "dashboard benchmark password"  # noqa: S105 - a throwaway benchmark account


@dataclass
class Supervisor:
    email: str
    secret: str
    label: str
    user_id: int = 0


def make_supervisor(email: str, vendor_name: str | None, label: str) -> Supervisor:
    vendor = None
    if vendor_name:
        vendor = find_vendor(vendor_name) or create_vendor(vendor_name, OPERATOR)
    user = create_user(email, Role.SUPERVISOR, vendor, PASSWORD, OPERATOR, full_name=label)
    secret = second_factor.new_secret()
    user.totp_secret = second_factor.encrypt_secret(user, secret)
    user.totp_confirmed_at = utcnow()
    db.session.flush()
    return Supervisor(email, secret, label, user.id)


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(app: Flask, person: Supervisor) -> FlaskClient:
    """Password, TOTP and the NDA through the real forms, as a person would."""
    client = app.test_client()
    response = client.post(
        "/login", data={"csrf_token": csrf(client, "/login"), "email": person.email, "password": PASSWORD}
    )
    assert response.status_code == 302, response.status_code
    code = pyotp.TOTP(person.secret).now()
    response = client.post("/2fa", data={"csrf_token": csrf(client, "/2fa"), "code": code})
    assert response.status_code == 302, response.status_code
    if not client.get("/").headers.get("Location", "").startswith("/nda"):
        return client
    page = client.get("/nda").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert version
    response = client.post(
        "/nda",
        data={
            "csrf_token": csrf(client, "/nda"),
            "full_name": person.label,
            "accept": "y",
            "version": version.group(1),
        },
    )
    assert response.status_code == 302, response.status_code
    return client


def timed(client: FlaskClient, path: str, runs: int) -> tuple[list[float], int]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
    size = len(response.get_data())
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        response.get_data()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return samples, size


def time_one_day_seal() -> float:
    """Seal everything but yesterday, then time the refresh that seals it (milliseconds): what
    the first page view after midnight adds, a day's rows and the new running totals."""
    rollup.rebuild(utcnow() - timedelta(days=1))
    db.session.commit()
    started = time.perf_counter()
    rollup.refresh(utcnow())
    db.session.commit()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument(
        "--wipe", action="store_true", help="drop and recreate a PostgreSQL database's schema"
    )
    parser.add_argument("--reuse", action="store_true", help="keep a database loaded by an earlier run")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--tasks-per-day", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workdir", help="directory for the SQLite file and instance (default: a temp dir)")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dashboard-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{workdir / 'portal.sqlite3'}"
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    env = {
        "PORTAL_ENV": "testing",
        "PORTAL_INSTANCE_PATH": str(workdir / "instance"),
        "PORTAL_DATABASE_URL": url,
        "PORTAL_ARGON2_TIME_COST": "1",
        "PORTAL_ARGON2_MEMORY_COST": "1024",
        "PORTAL_ARGON2_PARALLELISM": "1",
        "PORTAL_LOG_LEVEL": "WARNING",
    }
    loaded = False
    if args.reuse:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                loaded = bool(connection.execute(sa.select(sa.func.count()).select_from(Submission)).scalar())
        except sa.exc.SQLAlchemyError:
            loaded = False
        engine.dispose()
    if not loaded:
        if backend == "postgresql":
            if not args.wipe:
                sys.exit("PostgreSQL runs need --wipe (the public schema is dropped and recreated).")
            wipe_postgres(url)
        elif Path(url.removeprefix("sqlite:///")).exists():
            Path(url.removeprefix("sqlite:///")).unlink()
        migrate(url)

    app = create_app(env)
    now = datetime.now(UTC)
    with app.app_context():
        if not loaded:
            publish_nda("NDA", "Keep everything you hear confidential.", OPERATOR, utcnow())
            for name, _, _ in VENDORS:
                create_vendor(name, OPERATOR)
            internal = make_supervisor("internal.supervisor@portal.example", None, "Internal Supervisor")
            vendor = make_supervisor("supervisor@acme.example", VENDORS[0][0], "Acme Supervisor")
            db.session.commit()
            (workdir / "supervisors.txt").write_text(
                f"{internal.email} {internal.secret}\n{vendor.email} {vendor.secret}\n", encoding="utf-8"
            )
            started = time.perf_counter()
            assert db.engine is not None
            with db.engine.begin() as connection:
                stats = generate_history(
                    connection,
                    HistorySpec(
                        end=now,
                        days=args.days,
                        tasks_per_day=args.tasks_per_day,
                        reviewer_id=internal.user_id,
                    ),
                )
                reset_sequences(connection)
            load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            rollup.rebuild(utcnow())
            db.session.commit()
            rebuild_seconds = time.perf_counter() - started
            with db.engine.connect() as connection:
                if backend == "postgresql":
                    connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                        "VACUUM ANALYZE"
                    )
                else:
                    connection.exec_driver_sql("ANALYZE")
                    connection.commit()
            print(
                f"loaded {stats.annotators} annotators, {stats.tasks:,} tasks, {stats.leases:,} leases, "
                f"{stats.submissions:,} submissions in {load_seconds:.0f} s; "
                f"rollup rebuilt in {rebuild_seconds:.1f} s",
                flush=True,
            )
        else:
            lines = (workdir / "supervisors.txt").read_text(encoding="utf-8").split("\n")
            internal = Supervisor(*lines[0].split(), "Internal Supervisor")
            vendor = Supervisor(*lines[1].split(), "Acme Supervisor")
        submissions = db.session.scalar(sa.select(sa.func.count()).select_from(Submission))
        leases = db.session.scalar(sa.select(sa.func.count()).select_from(TaskLease))
        db.session.remove()

    year = {"from": (now.date().replace(year=now.year - 1)).isoformat(), "to": now.date().isoformat()}
    year_days = (now.date() - now.date().replace(year=now.year - 1)).days + 1
    if year_days > 366:
        year["from"] = now.date().fromordinal(now.date().toordinal() - 365).isoformat()
    year_query = f"?from={year['from']}&to={year['to']}"

    print(
        f"\n{backend}: {submissions:,} submissions, {leases:,} leases; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print("| database | supervisor | range | median ms | p95 ms | min ms | max ms | page KiB |")
    print("|---|---|---|---|---|---|---|---|")
    for person, label in ((internal, "internal (all vendors)"), (vendor, "vendor (Acme, 60 annotators)")):
        client = sign_in(app, person)
        for path, range_label in (
            ("/supervisor", "default (7 days)"),
            ("/supervisor" + year_query, "full year"),
        ):
            samples, size = timed(client, path, args.runs)
            ordered = sorted(samples)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            print(
                f"| {backend} | {label} | {range_label} | **{statistics.median(samples):.0f}** | {p95:.0f} | "
                f"{ordered[0]:.0f} | {ordered[-1]:.0f} | {size / 1024:.0f} |",
                flush=True,
            )
        started = time.perf_counter()
        response = client.get("/supervisor/annotators.csv" + year_query)
        rows = response.get_data().count(b"\n") - 1
        print(
            f"  annotators.csv for the year: {(time.perf_counter() - started) * 1000:.0f} ms, {rows} rows",
            flush=True,
        )
    # Last: it rewrites the running totals, which would leave the timed reads above
    # scanning dead rows until autovacuum came by.
    with app.app_context():
        one_day_ms = time_one_day_seal()
        db.session.remove()
    print(f"  sealing one more day (the first page view after midnight): {one_day_ms:.0f} ms")
    print(f"\nworkdir: {workdir}")


if __name__ == "__main__":
    main()
