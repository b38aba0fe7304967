"""The hash chain: links, hashes, details and awkward values survive storage and both exports."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.audit import chain
from portal.audit.models import Outcome
from portal.audit.services import Actor
from portal.audit.verify import read_export, verify_records
from portal.clock import utcnow
from portal.extensions import db
from portal.keys import portal_keys
from tests.audit.conftest import WRITER, head, stored_events

AWKWARD_TEXT = [
    '=HYPERLINK("http://evil.example")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "'quoted",
    "'",
    "",
    " padded ",
    "tab\there",
    "line\nbreak",
    "carriage\rreturn\r\n",
    'comma, "quote"',
    "Ünïcödé — 中文 — 🎧",
    "line\u2028separator",
    "\tleading tab",
]


def test_events_link_from_the_genesis_hash(app, append):
    append(7)
    events = stored_events(app)
    assert [event["seq"] for event in events] == list(range(1, 8))
    assert events[0]["prev_hash"] == chain.GENESIS_HASH == "0" * 64
    for previous, event in itertools.pairwise(events):
        assert event["prev_hash"] == previous["hash"]
    for event in events:
        assert event["hash"] == chain.event_hash(event["prev_hash"], event)
    assert len({event["hash"] for event in events}) == 7
    assert head(app) == (7, events[-1]["hash"])


def test_the_hash_covers_every_event_field(app, append):
    [event] = append(1, target="user:1", details={"k": "v"})
    for name in chain.EVENT_FIELDS:
        changed = dict(event)
        changed[name] = 999 if name in ("seq", "actor_id") else {"x": 1} if name == "details" else "changed"
        assert chain.event_hash(event["prev_hash"], changed) != event["hash"], name
    assert chain.event_hash("1" * 64, event) != event["hash"]


def test_returned_event_is_what_is_stored(app, append):
    returned = append(3, target="clip:9", outcome=Outcome.DENIED)
    stored = stored_events(app)
    assert [{k: v for k, v in e.items() if k != "type"} for e in stored] == returned
    assert {event["outcome"] for event in stored} == {"denied"}


@pytest.mark.parametrize("text", AWKWARD_TEXT)
def test_the_canonical_json_cut_around_time_and_number_reassembles(text):
    event = {name: text for name in chain.EVENT_FIELDS}
    event.update(
        seq=12345678901, actor_id=None, outcome="denied", details={"z": [text, 1.5], "a": {text: None}}
    )
    event["occurred_at"] = chain.format_time(utcnow())
    before_time, before_seq, after_seq = chain.canonical_event_around(event)
    reassembled = before_time + event["occurred_at"] + before_seq + str(event["seq"]) + after_seq
    assert reassembled == chain.canonical_event(event)


def test_an_event_is_never_dated_before_the_one_it_follows(app, append):
    """The head keeps its event's time; a clock that fell behind does not reorder times."""
    [first] = append(1)
    ahead = utcnow() + timedelta(minutes=5)
    with app.app_context():
        db.session.execute(
            sa.text("UPDATE audit_head SET occurred_at = :at"), {"at": ahead.replace(tzinfo=None)}
        )
        db.session.commit()
    [second] = append(1)
    assert second["occurred_at"] == chain.format_time(ahead)
    stored = stored_events(app)
    assert stored[-1]["occurred_at"] == chain.format_time(ahead)
    assert stored[-1]["hash"] == chain.event_hash(first["hash"], stored[-1])


def test_details_round_trip(app, append):
    details = {
        "nested": {"list": [1, 2.5, None, True, "x"], "tuple": (1, 2)},
        "unicode": "Grüße 🎧",
        "big": 2**63 + 1,
        "negative": -0.125,
        "empty": "",
        "none": None,
        7: "int key",
    }
    [event] = append(1, details=details)
    expected = json.loads(json.dumps(details))
    assert event["details"] == expected
    assert stored_events(app)[0]["details"] == expected


def test_none_and_empty_strings_hash_alike_on_every_backend(
    app, append, export_file, public_key_file, runner
):
    empty = Actor(user_id=None, label="", role="", vendor=None, session_ref="", ip="", user_agent="")
    append(1, actor=empty, target="", details={"empty": "", "none": None})
    append(1, actor=Actor(), target=None)
    events = stored_events(app)
    assert events[0]["actor"] == "" and events[0]["target"] == "" and events[0]["ip"] == ""
    assert events[1]["actor"] is None and events[1]["target"] is None
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    for fmt in ("jsonl", "csv"):
        result = runner.invoke(
            args=["audit", "verify", str(export_file(fmt)), "--public-key", str(public_key_file)]
        )
        assert result.exit_code == 0, (fmt, result.output)


def test_awkward_text_survives_both_exports(app, append, export_file, public_key_file, runner):
    for text in AWKWARD_TEXT:
        append(
            1,
            actor=Actor(label=text, ip=text, user_agent=text, vendor=text),
            action="test.awkward",
            target=text,
            details={"text": text},
        )
    stored = stored_events(app)
    assert [event["target"] for event in stored] == AWKWARD_TEXT
    for earlier_exports, fmt in enumerate(("jsonl", "csv")):
        path = export_file(fmt)
        result = runner.invoke(args=["audit", "verify", str(path), "--public-key", str(public_key_file)])
        assert result.exit_code == 0, (fmt, result.output)
        with app.app_context():
            verification = verify_records(read_export(path), portal_keys().audit_signing_key.public_key())
        assert verification.ok and verification.events == len(AWKWARD_TEXT) + earlier_exports


def test_csv_export_cannot_smuggle_spreadsheet_formulas(append, export_file):
    append(1, actor=Actor(label="=cmd|' /C calc'!A0", user_agent="@SUM(1)"), target="+1", details={"a": "-1"})
    with export_file("csv").open(newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert "'=cmd|' /C calc'!A0" in cells


def test_oversized_and_unstorable_text_is_recorded_not_refused(app, append, runner):
    """PostgreSQL refuses NUL characters and over-long values; the event must still be written."""
    append(
        1,
        actor=Actor(label="x" * 1000, user_agent="agent\x00with nul " * 100, ip="1" * 100),
        target="t" * 1000,
        details={"path": "/p\x00" * 10, "lone": "\ud800"},
    )
    [event] = stored_events(app)
    assert len(event["target"]) == 200 and len(event["actor"]) == 254 and len(event["ip"]) == 64
    assert "\x00" not in event["user_agent"]
    assert event["details"]["path"].startswith("/p")
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_exports_verify_offline(app, append, export_file, public_key_file, runner, fmt):
    append(12, target="clip:1", details={"bytes": "0-1023"})
    path = export_file(fmt)
    result = runner.invoke(args=["audit", "verify", str(path), "--public-key", str(public_key_file)])
    assert result.exit_code == 0, result.output
    assert "OK: 12 events (seq 1–12)" in result.output
    records = [record for _, record in read_export(path)]
    assert [r["seq"] for r in records if r["type"] == "event"] == list(range(1, 13))
    assert records[-1]["type"] == "seal"


def test_database_verification_reports_ok(append, runner):
    append(3)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 3 events")


def test_empty_database_verifies(runner):
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "0 events" in result.output


def test_writer_actor_is_recorded(append):
    [event] = append(1)
    assert (event["actor"], event["role"], event["ip"], event["user_agent"]) == (
        WRITER.label,
        WRITER.role,
        WRITER.ip,
        WRITER.user_agent,
    )
