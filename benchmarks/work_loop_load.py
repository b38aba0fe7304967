"""Work-loop load: simulated annotators doing the whole cycle over real HTTP against gunicorn.

The script builds a fresh database (Alembic migrations), creates a vendor, an NDA and N
annotators (password + TOTP) and enough clips through the real services
(`portal.clips.services.ingest_clip`), gathers the planner's statistics (ANALYZE, see
`analyze`), starts gunicorn itself, signs every annotator in through the real forms
(password, TOTP code, NDA), and then runs them concurrently for a fixed time. Each
annotator is one thread with one keep-alive connection (`http.client`: the clients share
the machine with the server, and `requests` cost four times the CPU). One cycle is what
the work page does:

    POST /tasks/claim            (the 303 names the task; the claim latency is this request)
    GET  /tasks/<id>             (the work page: lease id, clip duration)
    POST /tasks/<id>/playback    (a grant)
    GET  /media/<token>          (the audio in byte ranges, as the player fetches it)
    POST /tasks/<id>/progress    (a final report: the whole clip heard)
    POST /tasks/<id>/submit      (the transcript; 303 back to /tasks)

By default an annotator starts its next cycle the moment the last one ended: the server
runs saturated, and every latency is mostly queueing. `--rate R` offers R cycles per
second instead, each annotator on a fixed schedule, to read the latencies at a given load
(cycles that could not start on time are counted as late starts).

Afterwards it checks in the database that no task ever had two overlapping live leases
(double assignments), that every submission a client saw acknowledged exists exactly once
(lost submissions), and that the outbox positions are 1..n without a gap. It reports
cycles per second, claim latency (p50/p95/p99), per-step latencies, errors, and the CPU
time per cycle of the gunicorn workers, of every PostgreSQL backend serving the database
(read from /proc, including the connections the pools open during the run) and of the
clients, and how fast this machine runs plain Python that day (`reference_ms`).

    .venv/bin/python benchmarks/work_loop_load.py                       # SQLite in a temp dir
    .venv/bin/python benchmarks/work_loop_load.py --wipe \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test_review

`--wipe` is required for PostgreSQL: the run drops and recreates the database's `public`
schema. `--record` appends the results, with the command line, to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import platform
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import pyotp
import soundfile
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fresh_database import migrate, wipe_postgres
from portal.config import PROJECT_ROOT as ROOT

PASSWORD = "load test password 2026"  # noqa: S105 (a throwaway account in a throwaway database)
VENDOR = "Load Test Vendor"
MACHINE = "please call me back at home tomorrow about the delivery"
CORRECTION = "Please call me back at home tomorrow about the delivery."
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Work loop under load (issue 4)"


# --- the server side: database, people, clips, gunicorn -----------------------------------


def server_env(database_url: str, instance: Path, sample_rate: float) -> dict[str, str]:
    """What both the setup and gunicorn run with (the same keys directory, the same database)."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("PORTAL_")},
        "PORTAL_ENV": "development",
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_LOG_LEVEL": "WARNING",
        "PORTAL_REVIEW_SAMPLE_RATE": str(sample_rate),
        # 32 people sign in from one address within seconds; the per-IP limit is for attackers.
        "PORTAL_SIGN_IN_RATE_LIMIT_PER_IP": "100000/minute",
    }


def analyze(url: str) -> None:
    """Give the query planner its statistics, as a database in service has them.

    The tables were filled a moment ago; autovacuum analyzes a table only after a tenth
    of it changed, checking once a minute, so a 30-second run would otherwise be planned
    without any statistics (PostgreSQL then took 36 ms instead of 4 ms per claim query).
    """
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def clip_audio(seconds: float) -> bytes:
    rate = 16_000
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    noise = np.random.default_rng(1).standard_normal(len(t))
    samples = (0.15 * voiced + 0.01 * noise).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@dataclass(frozen=True)
class Account:
    email: str
    totp_secret: str


def populate(
    env: dict[str, str], annotators: int, clips: int, passes: int, clip_seconds: float
) -> list[Account]:
    """Vendor, NDA, annotators (enrolled in TOTP) and clips, through the portal's services."""
    from portal import create_app
    from portal.admin.services import create_user, create_vendor
    from portal.audit.services import Actor
    from portal.auth import second_factor
    from portal.auth.models import Role
    from portal.clips.services import ingest_clip
    from portal.clock import utcnow
    from portal.extensions import db
    from portal.nda.services import publish_nda

    actor = Actor(label="benchmark", role="operator", ip="local")
    app = create_app(env)
    accounts = []
    with app.app_context():
        vendor = create_vendor(VENDOR, actor)
        publish_nda("NDA", "Keep everything you hear confidential.", actor, utcnow())
        for n in range(annotators):
            user = create_user(
                f"annotator{n}@load.example", Role.ANNOTATOR, vendor, PASSWORD, actor, full_name="Load"
            )
            secret = second_factor.new_secret()
            user.totp_secret = second_factor.encrypt_secret(user, secret)
            user.totp_confirmed_at = utcnow()
            accounts.append(Account(user.email, secret))
        db.session.commit()
        audio = clip_audio(clip_seconds)
        for n in range(clips):
            metadata = {
                "source_user_id": f"load-subject-{n}",
                "device_id": f"load-device-{n % 50}",
                "consent": {"opt_in": True, "recorded_at": "2026-11-01T10:00:00Z", "scope": ["human_review"]},
                "locale": "en-US",
                "transcript": MACHINE,
                "passes": passes,
                "vendors": [VENDOR],
            }
            ingest_clip(io.BytesIO(audio), metadata, actor, utcnow())
            db.session.commit()
    db.session.remove()
    assert db.engine is not None
    db.engine.dispose()
    return accounts


def cpu_times(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process among `pids`, from /proc (Linux)."""
    times = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `cpu_times` snapshots.

    A process that appeared in between counts from its start: the connection pools open
    most of their PostgreSQL connections while the run warms up, after the first snapshot.
    """
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def worker_pids(arbiter: int) -> list[int]:
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL server processes serving this database (gunicorn's pooled connections)."""
    if not url.startswith("postgresql"):
        return []
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        pids = connection.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ).scalars()
        result = list(pids)
    engine.dispose()
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(
    env: dict[str, str], port: int, workers: int, threads: int, log: Path
) -> subprocess.Popen[bytes]:
    argv = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--bind", f"127.0.0.1:{port}",
        "--backlog", "512",
        "--keep-alive", "30",
        "--log-level", "warning",
        "app:app",
    ]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited early; see {log}")
        probe = Browser("127.0.0.1", port)
        try:
            if probe.request("GET", "/healthz").status == 200:
                return process
        except (OSError, http.client.HTTPException):
            pass
        finally:
            probe.connection.close()
        time.sleep(0.2)
    stop_gunicorn(process)
    raise SystemExit("gunicorn did not answer /healthz within 90 s")


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the arbiter: it stops its workers gracefully, then exits."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# --- the client side: simulated annotators -------------------------------------------------


class Refused(Exception):
    """The server answered something other than what the step expects."""


@dataclass(frozen=True)
class Answer:
    """One HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Browser:
    """One annotator's keep-alive HTTP/1.1 connection and cookie jar.

    The clients share the server's two CPUs, so they are kept lean: `http.client` sends
    the same requests as `requests` did (same methods, paths, headers, forms, JSON and
    cookies) for a fraction of its CPU. Redirects are never followed: each step checks
    the status it expects. The connection reopens by itself after the server closed it.
    """

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"User-Agent": "work-loop-load", "Accept": "*/*", **(headers or {})}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            self.connection.request(method, path, body=body, headers=sent)
            response = self.connection.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        for cookie in response.headers.get_all("Set-Cookie") or []:
            self._keep(cookie)
        return answer

    def _keep(self, header: str) -> None:
        """Store or delete one Set-Cookie (the portal deletes with Max-Age=0)."""
        pair, *attributes = header.split(";")
        name, _, value = pair.strip().partition("=")
        if any(attribute.strip().lower() == "max-age=0" for attribute in attributes):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value


# A paced cycle starting later than this after its scheduled time counts as a late start.
LATE_START = 0.01

# What ends one cycle as a counted error: a refusal, a network failure, an unexpected page.
CYCLE_ERRORS = (Refused, OSError, http.client.HTTPException, KeyError, ValueError, AttributeError)


def _form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    if not match:
        raise Refused("no CSRF token on the page")
    return match.group(1)


def _meta_token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    if not match:
        raise Refused("no csrf-token meta element")
    return match.group(1)


def sign_in(browser: Browser, account: Account) -> str:
    """Password → TOTP → NDA through the real forms; return the CSRF token for the session.

    The replay guard accepts a TOTP step only once per user: each account signs in once.
    """
    page = browser.request("GET", "/login").text
    answer = browser.request(
        "POST", "/login", form={"csrf_token": _form_token(page), "email": account.email, "password": PASSWORD}
    )
    if answer.status != 302:
        raise Refused(f"password step answered {answer.status}")
    page = browser.request("GET", "/2fa").text
    code = pyotp.TOTP(account.totp_secret).now()
    answer = browser.request("POST", "/2fa", form={"csrf_token": _form_token(page), "code": code})
    if answer.status != 302:
        raise Refused(f"second factor answered {answer.status}")
    page = browser.request("GET", "/nda").text
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    if version:
        answer = browser.request(
            "POST",
            "/nda",
            form={
                "csrf_token": _form_token(page),
                "full_name": "Load",
                "accept": "y",
                "version": version.group(1),
            },
        )
        if answer.status != 302:
            raise Refused(f"NDA step answered {answer.status}")
    home = browser.request("GET", "/tasks")
    if home.status != 200:
        raise Refused(f"/tasks answered {home.status} after sign-in")
    return _meta_token(home.text)


@dataclass
class Tally:
    """What one client process measured."""

    cycles: int = 0
    cycles_late: int = 0
    empty: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    acked: list[tuple[int, int]] = field(default_factory=list)
    bytes_fetched: int = 0
    ranges: int = 0
    late_starts: int = 0


def one_cycle(browser: Browser, csrf: str, range_bytes: int, tally: Tally, lock: threading.Lock) -> bool:
    """Claim → work page → grant → ranges → progress → submit; False if the queue was empty."""
    timings: dict[str, float] = {}

    def timed(step: str, method: str, path: str, **options: Any) -> Answer:
        started = time.perf_counter()
        answer = browser.request(method, path, **options)
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - started
        return answer

    claim = timed("claim", "POST", "/tasks/claim", form={"csrf_token": csrf})
    if claim.status != 303:
        raise Refused(f"claim answered {claim.status}")
    location = urlsplit(claim.headers["Location"]).path
    if not re.search(r"/tasks/\d+$", location):
        with lock:
            tally.steps["claim"].append(timings["claim"])
            tally.empty += 1
        return False
    page = timed("work_page", "GET", location)
    if page.status != 200:
        raise Refused(f"work page answered {page.status}")
    lease_id = int(re.search(r'name="lease_id" type="hidden" value="(\d+)"', page.text).group(1))
    duration = float(re.search(r'data-duration="([\d.]+)"', page.text).group(1))
    json_headers = {"X-CSRFToken": csrf, "Accept": "application/json", **SAME_ORIGIN}
    grant = timed("grant", "POST", f"{location}/playback", json_body={}, headers=json_headers)
    if grant.status != 200:
        raise Refused(f"grant answered {grant.status}")
    media_path = grant.json()["url"]
    start, total, fetched, ranges = 0, None, 0, 0
    while total is None or start < total:
        wanted = {"Range": f"bytes={start}-{start + range_bytes - 1}", **SAME_ORIGIN}
        piece = timed("ranges", "GET", media_path, headers=wanted)
        if piece.status not in (200, 206):
            raise Refused(f"media answered {piece.status}")
        total = int(piece.headers["Content-Range"].split("/")[1]) if piece.status == 206 else len(piece.body)
        start += len(piece.body)
        fetched += len(piece.body)
        ranges += 1
    report = {"position": duration, "speed": 1, "heard": [[0, duration]], "final": True}
    progress = timed("progress", "POST", f"{location}/progress", json_body=report, headers=json_headers)
    if progress.status != 200 or not progress.json().get("fully_heard"):
        raise Refused(f"progress answered {progress.status} {progress.text[:80]}")
    submit = timed(
        "submit",
        "POST",
        f"{location}/submit",
        form={"csrf_token": csrf, "transcript": CORRECTION, "lease_id": str(lease_id)},
    )
    if submit.status != 303:
        raise Refused(f"submit answered {submit.status}")
    task_id = int(location.rsplit("/", 1)[1])
    with lock:
        tally.acked.append((task_id, lease_id))
        for step, seconds in timings.items():
            tally.steps[step].append(seconds)
        tally.steps["cycle"].append(sum(timings.values()))
        tally.bytes_fetched += fetched
        tally.ranges += ranges
    return True


def client_process(
    port: int,
    accounts: list[tuple[float, Account]],
    range_bytes: int,
    pacing: float,
    ready: Any,
    go: Any,
    start_at: Any,
    seconds: float,
    out: Any,
) -> None:
    """Sign this process's annotators in, wait for the common start, loop until the deadline.

    `accounts` are (offset, account). Without pacing each annotator starts its next cycle
    as soon as the last one ended. With `pacing` > 0 it starts one every `pacing` seconds
    from `offset` seconds after the common start, on a fixed schedule: a cycle that could
    not start on time starts at once and counts as late, and the schedule does not move.
    """
    sessions = []
    for offset, account in accounts:
        browser = Browser("127.0.0.1", port)
        sessions.append((browser, sign_in(browser, account), offset))
    ready.release()
    go.wait()
    begin = start_at.value
    deadline = begin + seconds
    time.sleep(max(0.0, begin - time.time()))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    tally, lock = Tally(), threading.Lock()

    def annotator(browser: Browser, csrf: str, offset: float) -> None:
        scheduled = begin + offset
        while time.time() < deadline:
            if pacing:
                if scheduled >= deadline:
                    break
                wait = scheduled - time.time()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -LATE_START:
                    with lock:
                        tally.late_starts += 1
                scheduled += pacing
            try:
                done = one_cycle(browser, csrf, range_bytes, tally, lock)
            except CYCLE_ERRORS as error:
                with lock:
                    tally.errors[f"{type(error).__name__}: {error}"[:120]] += 1
                time.sleep(0.05)
                continue
            if not done:
                time.sleep(0.05)
                continue
            with lock:
                if time.time() <= deadline:
                    tally.cycles += 1
                else:
                    tally.cycles_late += 1

    threads = [threading.Thread(target=annotator, args=session) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put(
        {
            "cpu": usage.ru_utime + usage.ru_stime - cpu_before,
            "cycles": tally.cycles,
            "cycles_late": tally.cycles_late,
            "empty": tally.empty,
            "errors": dict(tally.errors),
            "steps": dict(tally.steps),
            "acked": tally.acked,
            "bytes": tally.bytes_fetched,
            "ranges": tally.ranges,
            "late_starts": tally.late_starts,
        }
    )


# --- checks and report ------------------------------------------------------------------------


def check_database(url: str, acked: list[tuple[int, int]]) -> dict[str, int]:
    """Double assignments, lost and duplicated submissions, outbox gaps, read from the database."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        overlapping = connection.execute(
            sa.text(
                "SELECT count(*) FROM task_leases a "
                "JOIN task_leases b ON a.task_id = b.task_id AND a.id < b.id "
                "WHERE a.leased_at < COALESCE(b.ended_at, b.expires_at) "
                "AND b.leased_at < COALESCE(a.ended_at, a.expires_at)"
            )
        ).scalar_one()
        submitted = {
            (task_id, lease_id): count
            for task_id, lease_id, count in connection.execute(
                sa.text("SELECT task_id, lease_id, count(*) FROM submissions GROUP BY task_id, lease_id")
            )
        }
        positions = [
            row[0]
            for row in connection.execute(sa.text("SELECT position FROM outbox_entries ORDER BY position"))
        ]
        auto_accepted = connection.execute(
            sa.text("SELECT count(*) FROM submissions WHERE status = 'auto_accepted'")
        ).scalar_one()
        leases = connection.execute(sa.text("SELECT count(*) FROM task_leases")).scalar_one()
        per_task = connection.execute(
            sa.text(
                "SELECT count(*) FROM "
                "(SELECT task_id FROM submissions GROUP BY task_id HAVING count(*) > 1) AS twice"
            )
        ).scalar_one()
    engine.dispose()
    acked_set = set(acked)
    return {
        "double_assignments": overlapping,
        "lost_submissions": sum(1 for pair in acked_set if submitted.get(pair, 0) != 1),
        "duplicate_acks": len(acked) - len(acked_set),
        "tasks_with_two_submissions": per_task,
        "submissions": sum(submitted.values()),
        "unacknowledged_submissions": sum(1 for pair in submitted if pair not in acked_set),
        "leases": leases,
        "outbox_entries": len(positions),
        "outbox_gaps": 0 if positions == list(range(1, len(positions) + 1)) else 1,
        "outbox_vs_auto_accepted": len(positions) - auto_accepted,
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _reference_work() -> int:
    table = {f"key{n}": n * 7 % 13 for n in range(200_000)}
    return sum(sorted(table.values())) + len(" ".join(sorted(table)[:50_000]))


def reference_ms() -> float:
    """CPU milliseconds that a fixed piece of plain Python takes here (best of five).

    Three quarters of a cycle's CPU is Python (Flask, SQLAlchemy, psycopg's Python layer),
    and machines of this kind ran the same code three times faster on one day than on
    another. Each row carries this figure so that runs from different days compare.
    """
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        _reference_work()
        best = min(best, time.process_time() - started)
    return best * 1000


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def record(args: argparse.Namespace, backend: str, report: dict[str, Any]) -> None:
    """Append this run to RESULTS.md under the work-loop heading (created the first time)."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if HEADING not in text:
        text = text.rstrip("\n") + (
            f"\n\n{HEADING}\n\n"
            "Simulated annotators over real HTTP against gunicorn (`benchmarks/work_loop_load.py`): "
            "claim → work page → grant → audio in byte ranges → progress → submit, signed in "
            "through the real password, TOTP and NDA forms. Double assignments are counted in the "
            "database (two leases of one task whose lifetimes overlap), lost submissions are "
            "acknowledged submits without exactly one stored submission.\n\n"
            "| when (UTC) | backend | annotators | gunicorn | seconds | cycles/s | claim p50 / p95 / p99 ms "
            "| cycle p50 / p95 ms | double assignments | lost submissions | errors "
            "| CPU ms per cycle: gunicorn / PostgreSQL / clients | load avg before "
            "| Python reference ms | command |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
    elif not text.endswith("\n"):
        text += "\n"
    claim = report["claim_ms"]
    cycle = report["cycle_ms"]
    cpu = report["cpu_ms_per_cycle"]
    line = (
        f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {backend} | {args.annotators} "
        f"| {args.workers}×{args.threads} gthread | {args.seconds:.0f} | **{report['cycles_per_s']:.1f}** "
        f"| {claim[0]:.1f} / **{claim[1]:.1f}** / {claim[2]:.1f} | {cycle[0]:.0f} / {cycle[1]:.0f} "
        f"| {report['db']['double_assignments']} | {report['db']['lost_submissions']} | {report['errors']} "
        f"| {cpu['gunicorn']:.0f} / {'–' if cpu['postgresql'] is None else round(cpu['postgresql'])} "
        f"/ {cpu['clients']:.0f} "
        f"| {report['load']} | {report['reference_ms']:.0f} | `{report['command']}` |\n"
    )
    # The row goes right after the last row of this section's table (notes may follow it).
    section_start = text.index(HEADING)
    section_end = text.find("\n## ", section_start + len(HEADING))
    section_end = len(text) if section_end == -1 else section_end + 1
    rows_end = text.rfind("\n|", section_start, section_end)
    rows_end = text.index("\n", rows_end + 1) + 1
    text = text[:rows_end] + line + text[rows_end:]
    RESULTS.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument(
        "--wipe", action="store_true", help="required for PostgreSQL: drops the public schema"
    )
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="gunicorn threads per worker (default: the layout of `make run` and the README's "
        "production line; 8 before 2026-12-01)",
    )
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--clip-seconds", type=float, default=3.0)
    parser.add_argument("--range-bytes", type=int, default=64 * 1024, help="bytes per range request")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="cycles per second offered by all annotators together, on a fixed schedule "
        "(default 0: each annotator starts its next cycle as soon as the last one ends)",
    )
    parser.add_argument("--passes", type=int, default=10, help="tasks per clip")
    parser.add_argument("--tasks", type=int, default=0, help="tasks to create (default: 150/s × seconds)")
    parser.add_argument("--sample-rate", type=float, default=0.5, help="PORTAL_REVIEW_SAMPLE_RATE")
    parser.add_argument(
        "--skip-analyze",
        action="store_true",
        help="run without planner statistics (as every run before 2026-11-30 13:00 UTC did)",
    )
    parser.add_argument("--record", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    command_line = " ".join(
        [".venv/bin/python", "benchmarks/work_loop_load.py", *map(shlex.quote, sys.argv[1:])]
    )

    scratch = Path(tempfile.mkdtemp(prefix="work-loop-load-"))
    url = args.database_url or f"sqlite:///{scratch / 'portal.sqlite3'}"
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    if backend == "PostgreSQL":
        if not args.wipe:
            raise SystemExit("--wipe is required with PostgreSQL: the run recreates the public schema")
        wipe_postgres(url)
    migrate(url)
    env = server_env(url, scratch / "instance", args.sample_rate)
    tasks = args.tasks or int(150 * args.seconds)
    clips = -(-tasks // args.passes)
    started = time.perf_counter()
    accounts = populate(env, args.annotators, clips, args.passes, args.clip_seconds)
    if not args.skip_analyze:
        analyze(url)
    print(f"{backend}: {len(accounts)} annotators, {clips} clips × {args.passes} passes "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip

    port = free_port()
    server = start_gunicorn(env, port, args.workers, args.threads, scratch / "gunicorn.log")
    try:
        context = multiprocessing.get_context("spawn")
        ready, go, out = context.Semaphore(0), context.Event(), context.Queue()
        start_at = context.Value("d", 0.0)
        pacing = args.annotators / args.rate if args.rate else 0.0
        scheduled = [(pacing * n / len(accounts), account) for n, account in enumerate(accounts)]
        slices = [scheduled[i :: args.client_processes] for i in range(args.client_processes)]
        clients = [
            context.Process(
                target=client_process,
                args=(port, part, args.range_bytes, pacing, ready, go, start_at, args.seconds, out),
            )
            for part in slices
            if part
        ]
        for client in clients:
            client.start()
        for _ in clients:
            if not ready.acquire(timeout=180):
                raise SystemExit("the annotators could not sign in within 180 s")
        load = load_average()
        reference = reference_ms()
        workers = worker_pids(server.pid)
        cpu_before = cpu_times(workers), cpu_times(backend_pids(url))
        start_at.value = time.time() + 0.5
        go.set()
        time.sleep(args.seconds + 0.5)
        cpu_after = cpu_times(workers), cpu_times(backend_pids(url))
        server_cpu = cpu_used(cpu_before[0], cpu_after[0]), cpu_used(cpu_before[1], cpu_after[1])
        load_during = load_average()
        parts = [out.get(timeout=300) for _ in clients]
        for client in clients:
            client.join(30)
    finally:
        stop_gunicorn(server)

    steps: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    acked: list[tuple[int, int]] = []
    for part in parts:
        for step, values in part["steps"].items():
            steps[step].extend(values)
        errors.update(part["errors"])
        acked.extend(tuple(pair) for pair in part["acked"])
    cycles = sum(part["cycles"] for part in parts)
    db_checks = check_database(url, acked)
    claim = [value * 1000 for value in steps["claim"]]
    cycle = [value * 1000 for value in steps["cycle"]]
    report = {
        "backend": backend,
        "command": command_line,
        "cycles": cycles,
        "cycles_after_deadline": sum(part["cycles_late"] for part in parts),
        "cycles_per_s": cycles / args.seconds,
        "offered_cycles_per_s": args.rate or None,
        "late_starts": sum(part["late_starts"] for part in parts),
        "empty_claims": sum(part["empty"] for part in parts),
        "claim_ms": (percentile(claim, 0.5), percentile(claim, 0.95), percentile(claim, 0.99)),
        "cycle_ms": (percentile(cycle, 0.5), percentile(cycle, 0.95)),
        "steps_ms": {
            step: {
                "p50": round(percentile(values, 0.5) * 1000, 1),
                "p95": round(percentile(values, 0.95) * 1000, 1),
                "mean": round(statistics.fmean(values) * 1000, 1),
            }
            for step, values in steps.items()
        },
        "range_requests": sum(part["ranges"] for part in parts),
        "audio_bytes": sum(part["bytes"] for part in parts),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(10)),
        "db": db_checks,
        "load": load,
        "load_at_end": load_during,
        "reference_ms": round(reference, 1),
        "cpu_ms_per_cycle": {
            "gunicorn": round(server_cpu[0] * 1000 / max(cycles, 1), 1),
            "postgresql": (
                round(server_cpu[1] * 1000 / max(cycles, 1), 1) if backend == "PostgreSQL" else None
            ),
            "clients": round(sum(part["cpu"] for part in parts) * 1000 / max(cycles, 1), 1),
        },
        "cpu_busy_share": round(
            (server_cpu[0] + server_cpu[1] + sum(part["cpu"] for part in parts))
            / (args.seconds * (os.cpu_count() or 1)),
            2,
        ),
        "machine": f"{os.cpu_count()} CPU, Python {platform.python_version()}",
    }
    print(json.dumps(report, indent=2))
    if args.record:
        record(args, backend, report)
    ok = db_checks["double_assignments"] == 0 and db_checks["lost_submissions"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
