"""Access-log search: every filter, keyset pages newest first, and the auditor's page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.audit.models import Outcome
from portal.audit.search import FilterError, Filters, parse_filters, search
from portal.audit.services import Actor, record_event
from portal.auth.models import Role
from portal.clips.models import Clip, ClipStatus
from portal.extensions import db
from portal.tasks.models import Task, TaskStatus

CLIP_A = "a" * 32
CLIP_B = "b" * 32


def test_parse_filters_normalises_and_refuses():
    filters = parse_filters(
        {
            "since": "2026-11-30T09:00",
            "until": "2026-12-01",
            "user": " Ada@Acme.Example ",
            "vendor": "Acme Transcription",
            "action": "playback.",
            "outcome": "denied",
            "clip": "clip:" + CLIP_A.upper(),
            "task": "#12",
            "ignored": "x",
        }
    )
    assert filters == Filters(
        since=datetime(2026, 11, 30, 9, tzinfo=UTC),
        until=datetime(2026, 12, 1, tzinfo=UTC),
        user="ada@acme.example",
        vendor="Acme Transcription",
        action="playback.",
        outcome="denied",
        clip=CLIP_A,
        task=12,
    )
    assert filters.as_dict()["since"] == "2026-11-30T09:00:00.000000Z"
    assert parse_filters(filters.query_args()) == filters
    assert parse_filters({"since": "", "user": "  "}).empty
    assert parse_filters({"since": "2026-11-30T10:00:00+02:00"}).since == datetime(
        2026, 11, 30, 8, tzinfo=UTC
    )
    for field, value in [
        ("since", "yesterday"),
        ("user", "not an email"),
        ("action", "DROP TABLE"),
        ("outcome", "maybe"),
        ("clip", "xyz"),
        ("task", "twelve"),
        ("task", "²"),
        ("user", "²"),
        ("user", str(2**31)),
    ]:
        with pytest.raises(FilterError) as refused:
            parse_filters({field: value})
        assert refused.value.field == field
    with pytest.raises(FilterError) as backwards:
        parse_filters({"since": "2026-12-01", "until": "2026-11-30"})
    assert backwards.value.field == "until"


ADA = Actor(
    user_id=None, label="ada@acme.example", role="annotator", vendor="Acme Transcription", ip="10.0.0.1"
)
BEN = Actor(user_id=None, label="ben@blue.example", role="annotator", vendor="Blue Lagoon", ip="10.0.0.2")


@pytest.fixture
def history(app, clock, create_user):
    """A small log: two annotators of two vendors, a task and its clip, an hour apart each."""
    ada = create_user(Role.ANNOTATOR, email="ada@acme.example")
    ben = create_user(Role.ANNOTATOR, vendor="Blue Lagoon", email="ben@blue.example")
    with app.app_context():
        clip = Clip(
            public_id=CLIP_A,
            subject_pseudonym="s" * 64,
            locale="en-US",
            duration_ms=10_000,
            consent_opt_in=True,
            consent_recorded_at=clock.now,
            consent_scope="human_review",
            transcript="",
            passes=1,
            status=ClipStatus.ACTIVE,
            ingested_at=clock.now,
            retain_until=clock.now + timedelta(days=90),
        )
        db.session.add(clip)
        db.session.flush()
        task = Task(clip_id=clip.id, pass_number=1, status=TaskStatus.QUEUED, created_at=clock.now)
        db.session.add(task)
        db.session.commit()
        task_id = task.id
    ada_actor = Actor(**{**ADA.__dict__, "user_id": ada.id})
    ben_actor = Actor(**{**BEN.__dict__, "user_id": ben.id})
    script = [
        (ada_actor, "auth.sign_in", Outcome.ALLOWED, f"user:{ada.id}", {}),
        (ada_actor, "task.claimed", Outcome.ALLOWED, f"task:{task_id}", {"clip": CLIP_A}),
        (ada_actor, "playback.granted", Outcome.ALLOWED, f"clip:{CLIP_A}", {"task": task_id, "grant": 1}),
        (ada_actor, "playback.range", Outcome.ALLOWED, f"clip:{CLIP_A}", {"task": task_id, "grant": 1}),
        (ben_actor, "access.denied", Outcome.DENIED, None, {"path": "/review"}),
        (ben_actor, "playback.denied", Outcome.DENIED, f"clip:{CLIP_A}", {"task": task_id + 1}),
        (ben_actor, "playback.range", Outcome.ALLOWED, f"clip:{CLIP_B}", {"task": 9999, "grant": 2}),
        (Actor(label="typo@acme.example", ip="10.0.0.9"), "auth.sign_in", Outcome.FAILED, None, {}),
    ]
    seqs = {}
    with app.app_context():
        first = db.session.scalar(sa.text("SELECT seq FROM audit_head"))
        for number, (actor, action, outcome, target, details) in enumerate(script):
            clock.advance(hours=1)
            event = record_event(actor, action, outcome=outcome, target=target, details=details)
            db.session.commit()
            seqs[number] = event["seq"]
    return {"ada": ada, "ben": ben, "task": task_id, "seqs": seqs, "first": first, "start": clock.now}


def _seqs(app, **args: str) -> list[int]:
    with app.app_context():
        return [event.seq for event in search(parse_filters(args), size=100).events]


def test_each_filter_matches_exactly(app, history):
    s, ada, ben, task = history["seqs"], history["ada"], history["ben"], history["task"]
    assert _seqs(app)[:8] == [s[n] for n in range(7, -1, -1)]  # newest first
    assert _seqs(app, user=str(ada.id)) == [s[3], s[2], s[1], s[0]]
    assert _seqs(app, user="ada@acme.example") == [s[3], s[2], s[1], s[0]]
    assert _seqs(app, user="typo@acme.example") == [s[7]]
    assert _seqs(app, vendor="Blue Lagoon") == [s[6], s[5], s[4]]
    assert _seqs(app, action="playback.range") == [s[6], s[3]]
    assert _seqs(app, action="playback.") == [s[6], s[5], s[3], s[2]]
    assert _seqs(app, action="playback*") == [s[6], s[5], s[3], s[2]]
    assert _seqs(app, outcome="denied") == [s[5], s[4]]
    assert _seqs(app, outcome="failed") == [s[7]]
    assert _seqs(app, clip=CLIP_A) == [s[5], s[3], s[2]]
    # The task: its own events, and its clip's playback events that name it (not task + 1's).
    assert _seqs(app, task=str(task)) == [s[3], s[2], s[1]]
    assert _seqs(app, task="424242") == []
    start = history["start"] - timedelta(hours=8)
    since = (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    until = (start + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M")
    assert _seqs(app, since=since, until=until) == [s[2], s[1]]
    assert _seqs(app, vendor="Blue Lagoon", outcome="denied", action="playback.") == [s[5]]
    assert _seqs(app, user=str(ben.id), clip=CLIP_B) == [s[6]]


def test_like_wildcards_in_an_action_prefix_are_literal(app, append):
    append(1, action="auth.second_factor")
    append(1, action="authXsecond_factor")
    with app.app_context():
        found = search(parse_filters({"action": "auth.second_*"})).events
    assert [event.action for event in found] == ["auth.second_factor"]


def test_keyset_pages_cover_everything_once_newest_first(app, append):
    append(120, action="test.paged")
    with app.app_context():
        filters = parse_filters({"action": "test.paged"})
        pages, cursor = [], None
        while True:
            page = search(filters, before=cursor, size=50)
            pages.append([event.seq for event in page.events])
            if page.older is None:
                break
            cursor = page.older
        assert [len(p) for p in pages] == [50, 50, 20]
        flat = [seq for p in pages for seq in p]
        assert flat == sorted(flat, reverse=True) and len(set(flat)) == 120
        # Newer events appended meanwhile do not shift an older page.
        append(7, action="test.paged")
        assert [e.seq for e in search(filters, before=pages[0][-1], size=50).events] == pages[1]
        # Paging back towards newer events returns the same pages.
        assert [e.seq for e in search(filters, after=pages[1][0], size=50).events] == pages[0]
        newest = search(filters, size=50)
        assert newest.newer is None and newest.events[0].seq == flat[0] + 7


def test_search_page_shows_filters_results_and_export_links(app, history, login_as, create_user, client):
    auditor = create_user(Role.AUDITOR)
    login_as(client, auditor)
    page = client.get("/audit?vendor=Blue+Lagoon&outcome=denied")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('<td class="num"><span title="hash') == 2
    assert "/review" in html and "playback.denied" in html
    assert f'href="/audit/clips/{CLIP_A}"' in html
    assert re.search(r'href="/audit/export\?format=csv&amp;vendor=Blue\+Lagoon&amp;outcome=denied"', html)
    assert "Export asks for your authenticator code" in html
    refused = client.get("/audit?clip=nonsense&user=ada@acme.example")
    assert refused.status_code == 400
    assert "32 hexadecimal characters" in refused.get_data(as_text=True)
    assert 'value="ada@acme.example"' in refused.get_data(as_text=True)


def test_search_page_pages_through_the_log(app, append, login_as, create_user, client):
    auditor = create_user(Role.AUDITOR)
    append(60, action="test.paged")
    login_as(client, auditor)
    html = client.get("/audit?action=test.paged").get_data(as_text=True)
    older = re.search(r'href="(/audit\?before=\d+[^"]*)"', html)
    assert older and "Newer" not in html
    html = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert html.count('<td class="num"><span title="hash') == 10
    assert "Newer" in html and "Older" not in html
