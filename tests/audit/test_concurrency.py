"""Concurrent writers never fork the chain, never reuse a sequence number, never leave a gap.

SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL with SELECT ... FOR UPDATE on
the chain head. Each thread has its own app context, hence its own session and
connection, like concurrent requests in a threaded server.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from portal.audit.export import verify_database
from portal.audit.services import Actor, append_pending, record_event
from portal.auth.models import Role
from portal.extensions import db
from portal.keys import portal_keys
from tests.audit.conftest import stored_events
from tests.conftest import csrf_token

WRITERS = 8
EVENTS_PER_WRITER = 30


def _assert_one_unforked_chain(app, runner, expected: int) -> list[dict]:
    events = stored_events(app)
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, expected + 1))
    assert len({event["prev_hash"] for event in events}) == expected, "two events share a parent: a fork"
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    return events


def test_threads_appending_directly(app, runner):
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> list[int]:
        actor = Actor(label=f"writer-{number}")
        seqs = []
        with app.app_context():
            start.wait()
            for _ in range(EVENTS_PER_WRITER):
                queued = record_event(actor, "test.concurrent", target=f"writer:{number}")
                db.session.commit()
                seqs.append(queued["seq"])
        return seqs

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(writer, range(WRITERS)))
    committed = [seq for seqs in results for seq in seqs]
    assert len(committed) == len(set(committed)) == WRITERS * EVENTS_PER_WRITER
    events = _assert_one_unforked_chain(app, runner, WRITERS * EVENTS_PER_WRITER)
    assert Counter(event["target"] for event in events) == {
        f"writer:{n}": EVENTS_PER_WRITER for n in range(WRITERS)
    }
    times = [event["occurred_at"] for event in events]
    assert times == sorted(times), "event times must follow sequence numbers"


def test_verifying_while_writers_append(app, runner):
    """A verification running during appends sees one consistent state, never a false alarm."""
    done = threading.Event()

    def writer(number: int) -> int:
        written = 0
        with app.app_context():
            while not done.is_set() or written < 5:
                record_event(Actor(label=f"writer-{number}"), "test.concurrent")
                db.session.commit()
                written += 1
        return written

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(writer, number) for number in range(4)]
        try:
            for _ in range(5):
                with app.app_context():
                    result = verify_database(portal_keys().audit_signing_key)
                    db.session.rollback()
                assert result.ok, result.problems
        finally:
            done.set()
        total = sum(future.result() for future in futures)
    _assert_one_unforked_chain(app, runner, total)


def test_threads_signing_in_through_the_views(app, runner, create_user):
    """Separate clients, each failing and passing the password step, all at once."""
    people = [create_user(Role.ANNOTATOR) for _ in range(WRITERS)]
    before = len(stored_events(app))
    attempts = 6
    start = threading.Barrier(WRITERS)

    def visitor(number: int) -> list[int]:
        client = app.test_client()
        person = people[number]
        token = csrf_token(client, "/login")
        start.wait()
        statuses = []
        for attempt in range(attempts):
            password = person.password if attempt == attempts - 1 else f"wrong password {attempt}"
            response = client.post(
                "/login", data={"csrf_token": token, "email": person.email, "password": password}
            )
            statuses.append(response.status_code)
            statuses.append(client.get("/admin/").status_code)
        return statuses

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(visitor, range(WRITERS)))
    for statuses in results:
        assert statuses[-2] == 302 and statuses[:-2:2] == [401] * (attempts - 1)
    events = _assert_one_unforked_chain(app, runner, before + WRITERS * attempts)
    outcomes = Counter((e["action"], e["outcome"]) for e in events[before:])
    assert outcomes == {
        ("auth.sign_in", "failed"): WRITERS * (attempts - 1),
        ("auth.sign_in", "allowed"): WRITERS,
    }
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM user_sessions")) == WRITERS


def test_a_rolled_back_append_leaves_no_gap(app, runner, append):
    """The first writer holds the head, the second waits; the first rolls back; no gap, no fork."""
    holding, released = threading.Event(), threading.Event()
    seqs: dict[str, int] = {}

    def first() -> None:
        with app.app_context():
            record_event(Actor(label="first"), "test.rolled_back")
            # Append now, as the commit would, so that this writer holds the head.
            (appended,) = append_pending(db.session)
            seqs["rolled back"] = appended["seq"]
            holding.set()
            released.wait(10)
            db.session.rollback()

    def second() -> None:
        holding.wait(10)
        with app.app_context():
            queued = record_event(Actor(label="second"), "test.committed")
            db.session.commit()
            seqs["committed"] = queued["seq"]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    holding.wait(10)
    time.sleep(0.3)  # the second writer is now blocked on the chain head
    assert "committed" not in seqs
    released.set()
    for thread in threads:
        thread.join(20)
    assert seqs == {"rolled back": 1, "committed": 1}
    append(3)
    events = _assert_one_unforked_chain(app, runner, 4)
    assert [e["action"] for e in events][:1] == ["test.committed"]
