"""Filtered exports: only the matching events, links for the rest, still verifiable offline.

The history: 30 events, those at seq 2, 6, 10, 14, 18, 22 about clip A, the others about
clip B; checkpoints every 5 events (tests/audit/conftest.py). Exporting clip A gives the
six events, links for seq 3–21 and, since the export runs on to the first checkpoint
after its last event, for seq 23–25; the selection seal covers seq 25.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.audit import chain
from portal.audit.export import encode
from portal.audit.services import Actor
from portal.audit.verify import load_json, read_export, verify_file, verify_records
from portal.auth.models import Role
from portal.config import PROJECT_ROOT
from portal.extensions import db
from portal.keys import portal_keys
from tests.audit.conftest import owner_connection, rehash_from, rewrite_event, run_offline_verifier
from tests.audit.test_web_export import confirm
from tests.conftest import Person

CLIP_A, CLIP_B = "a" * 32, "b" * 32
MATCHES = [2, 6, 10, 14, 18, 22]
END = 25
FORGER = Ed25519PrivateKey.generate()
Records = list[dict[str, Any]]


@pytest.fixture
def history(append) -> None:
    for seq in range(1, 31):
        clip = CLIP_A if seq in MATCHES else CLIP_B
        append(
            1,
            action="playback.range",
            actor=Actor(user_id=7, label=f"annotator{seq % 3}@acme.example", vendor="Acme", ip="10.1.1.1"),
            target=f"clip:{clip}",
            details={"grant": seq, "first": 0, "last": 99, "length": 100, "size": 100},
        )


@pytest.fixture
def export_clip(runner, tmp_path) -> Callable[..., Path]:
    def factory(fmt: str = "jsonl", *options: str) -> Path:
        path = tmp_path / f"clip-a.{fmt}"
        result = runner.invoke(
            args=["audit", "export", "--format", fmt, "--out", str(path), "--clip", CLIP_A, *options]
        )
        assert result.exit_code == 0, result.output
        return path

    return factory


def _key(app):
    with app.app_context():
        return portal_keys().audit_signing_key.public_key()


def _records(path: Path) -> Records:
    return [record for _, record in read_export(path)]


def _write(path: Path, records: Records, fmt: str) -> Path:
    out = path.with_name(f"tampered.{fmt}")
    out.write_text("".join(encode(iter(records), fmt)), encoding="utf-8")
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_filtered_export_holds_the_matches_and_verifies(app, history, export_clip, runner, fmt):
    path = export_clip(fmt)
    records = _records(path)
    assert records[0] == {**records[0], "type": "selection", "filters": {"clip": CLIP_A}}
    events = [r for r in records if r["type"] == "event"]
    links = [r for r in records if r["type"] == "link"]
    assert [e["seq"] for e in events] == MATCHES
    assert all(e["target"] == f"clip:{CLIP_A}" for e in events)
    assert [link["seq"] for link in links] == [s for s in range(3, END + 1) if s not in MATCHES]
    # A link reveals nothing of its event: sequence number, digest and hash only.
    for link in links:
        assert {k for k, v in link.items() if v is not None} == {"type", "seq", "digest", "hash"}
    assert [r["seq"] for r in records if r["type"] == "checkpoint"] == [5, 10, 15, 20, 25]
    seal = records[-1]
    assert seal["type"] == "seal" and seal["seq"] == END
    assert {k: seal["selection"][k] for k in ("filters", "first_seq", "events")} == {
        "filters": {"clip": CLIP_A},
        "first_seq": 2,
        "events": 6,
    }
    result = verify_file(path, _key(app))
    assert result.ok, result.problems
    assert (result.events, result.links, result.first_seq, result.last_seq) == (6, 18, 2, END)
    assert result.summary().startswith(
        f"OK: filtered export (clip={CLIP_A}): 6 events between seq 2 and seq 25"
    )
    cli = runner.invoke(args=["audit", "verify", str(path), "--public-key", str(_pem(app, path))])
    assert cli.exit_code == 0 and "filtered export" in cli.output, cli.output


def _pem(app, near: Path) -> Path:
    pem = near.with_name("audit-public.pem")
    pem.write_bytes(
        _key(app).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pem


def test_the_cli_reports_and_records_a_filtered_export(app, history, runner, tmp_path):
    path = tmp_path / "denied.jsonl"
    none = runner.invoke(args=["audit", "export", "--out", str(path), "--outcome", "denied"])
    assert none.exit_code == 1 and "no event matches the filters" in none.output
    assert not path.exists()
    result = runner.invoke(
        args=["audit", "export", "--out", str(path), "--clip", CLIP_A, "--since", "2000-01-01"]
    )
    assert result.exit_code == 0
    assert "exported 6 matching events between seq 2 and seq 25 (18 left out, as links)" in result.output
    with app.app_context():
        details = db.session.scalar(
            sa.text("SELECT details FROM audit_events WHERE action = 'audit.exported'")
        )
    assert '"filters":{"clip":"' + CLIP_A + '","since":"2000-01-01T00:00:00.000000Z"}' in details
    bad = runner.invoke(args=["audit", "export", "--out", str(path), "--task", "twelve"])
    assert bad.exit_code == 2 and "--task" in bad.output


def test_the_standalone_verifier_checks_filtered_exports(app, history, export_clip, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("reads only the export file; run once, in the SQLite half")
    path = export_clip("jsonl")
    ok = run_offline_verifier(path, _pem(app, path))
    assert ok.returncode == 0 and "filtered export" in ok.stdout, ok.stdout + ok.stderr
    records = _records(path)
    records[_at(records, 10)]["target"] = "clip:" + CLIP_B
    broken = run_offline_verifier(_write(path, records, "jsonl"), _pem(app, path))
    assert broken.returncode == 1 and "event seq 10 was modified" in broken.stdout


# Tampering with a filtered export ------------------------------------------------------------


def _at(records: Records, seq: int, kind: str | None = None) -> int:
    return next(
        i
        for i, r in enumerate(records)
        if r.get("seq") == seq and r["type"] in ((kind,) if kind else ("event", "link"))
    )


def _as_link(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "link", "seq": event["seq"], "digest": chain.event_digest(event), "hash": event["hash"]}


def edit_event(records: Records) -> Records:
    records[_at(records, 10)]["target"] = "clip:" + CLIP_B
    return records


def edit_and_rehash_event(records: Records) -> Records:
    """The forger recomputes the edited event's hash; the next link's hash no longer follows."""
    event = records[_at(records, 6)]
    event["actor"] = "somebody.else@acme.example"
    event["hash"] = chain.event_hash(event["prev_hash"], event)
    return records


def edit_and_rehash_up_to_the_next_checkpoint(records: Records) -> Records:
    edit_and_rehash_event(records)
    previous = records[_at(records, 6)]["hash"]
    for seq in range(7, 11):
        record = records[_at(records, seq)]
        if record["type"] == "link":
            record["hash"] = chain.link_hash(previous, record["digest"])
        else:
            record["prev_hash"], record["hash"] = previous, chain.event_hash(previous, record)
        previous = record["hash"]
    return records


def strip_digests_and_rehash(records: Records) -> Records:
    """The attack a hash-only link would allow: keep every later hash, drop the digests."""
    edit_and_rehash_event(records)
    for record in records:
        if record["type"] == "link":
            record.pop("digest", None)
    return records


def remove_event(records: Records) -> Records:
    del records[_at(records, 14)]
    return records


def remove_link(records: Records) -> Records:
    del records[_at(records, 12)]
    return records


def reorder(records: Records) -> Records:
    a, b = _at(records, 10), _at(records, 11)
    records[a], records[b] = records[b], records[a]
    return records


def forge_seal(records: Records) -> Records:
    seal = records[-1]
    seal["signature"] = chain.sign_checkpoint(
        FORGER,
        seal["seq"],
        seal["head_hash"],
        seal["signed_at"],
        chain.SELECTION_SEAL_DOMAIN,
        seal["selection"],
    )
    return records


def forge_checkpoint(records: Records) -> Records:
    checkpoint = records[_at(records, 10, "checkpoint")]
    checkpoint["signature"] = chain.sign_checkpoint(
        FORGER, checkpoint["seq"], checkpoint["head_hash"], checkpoint["signed_at"]
    )
    return records


def hide_event(records: Records) -> Records:
    """Whoever holds the export turns an event into its link: the chain still verifies."""
    at = _at(records, 14)
    records[at] = _as_link(records[at])
    return records


def hide_and_lower_the_count(records: Records) -> Records:
    hide_event(records)
    records[-1]["selection"]["events"] = 5
    return records


def drop_the_first_events(records: Records) -> Records:
    return [records[0], *records[_at(records, 6) :]]


def drop_the_header(records: Records) -> Records:
    return records[1:]


def edit_the_header(records: Records) -> Records:
    records[0]["filters"] = {"clip": CLIP_A, "outcome": "allowed"}
    return records


def cut_the_seal(records: Records) -> Records:
    return records[:-1]


FILTERED_CASES: dict[str, tuple[Callable[[Records], Records], str]] = {
    "edited field": (edit_event, r"event seq 10 was modified"),
    "edited and rehashed": (edit_and_rehash_event, r"link seq 7 does not follow from seq 6"),
    "rehashed up to a checkpoint": (
        edit_and_rehash_up_to_the_next_checkpoint,
        r"checkpoint at seq 10 does not match event seq 10",
    ),
    "hash-only links": (strip_digests_and_rehash, r"link seq 3 lacks fields: digest"),
    "removed event": (remove_event, r"event seq 14 is missing: seq 13 is followed by seq 15"),
    "removed link": (remove_link, r"event seq 12 is missing: seq 11 is followed by seq 13"),
    "reordered lines": (reorder, r"event seq 10 is missing: seq 9 is followed by seq 11"),
    "forged seal": (forge_seal, r"seal at seq 25 has an invalid signature"),
    "forged checkpoint": (forge_checkpoint, r"checkpoint at seq 10 has an invalid signature"),
    "event hidden behind a link": (hide_event, r"holds 5 events but its seal covers 6"),
    "hidden, count edited": (hide_and_lower_the_count, r"seal at seq 25 has an invalid signature"),
    "first events dropped": (
        drop_the_first_events,
        r"starts at event seq 6 but its seal covers events from seq 2",
    ),
    "header removed": (drop_the_header, r"event seq 1 is missing: the chain starts at seq 2"),
    "header edited": (edit_the_header, r"selection header does not name the filters the seal covers"),
    "seal cut off": (cut_the_seal, r"not sealed"),
}


@pytest.mark.parametrize("case", FILTERED_CASES)
def test_tampering_with_a_filtered_export_is_detected(app, history, export_clip, case):
    tamper, pattern = FILTERED_CASES[case]
    path = export_clip("jsonl")
    result = verify_file(_write(path, tamper(_records(path)), "jsonl"), _key(app))
    assert not result.ok
    assert re.search(pattern, result.problems[0]), result.problems


@pytest.mark.parametrize("case", ["edited and rehashed", "event hidden behind a link", "forged seal"])
def test_tampering_with_a_filtered_csv_export_is_detected(app, history, export_clip, case):
    tamper, pattern = FILTERED_CASES[case]
    path = export_clip("csv")
    result = verify_file(_write(path, tamper(_records(path)), "csv"), _key(app))
    assert not result.ok and re.search(pattern, result.problems[0]), result.problems


def _naive_verify(records: Records) -> bool:
    """A verifier that trusted a link's stated hash (skeletons without digest): what not to do."""
    last = None
    for record in records:
        if record["type"] == "event":
            if last is not None and record["prev_hash"] != last:
                return False
            if chain.event_hash(record["prev_hash"], record) != record["hash"]:
                return False
            last = record["hash"]
        elif record["type"] == "link":
            last = record["hash"]
        elif record["type"] in ("checkpoint", "seal") and record["head_hash"] != last:
            return False
    return True


def test_hash_only_links_would_let_a_forger_rewrite_an_event(app, history, export_clip):
    """Why links carry the digest: with the hash alone, an edited event keeps every later hash."""
    path = export_clip("jsonl")
    forged = strip_digests_and_rehash(_records(path))
    assert _naive_verify(forged), "the forgery passes a verifier that trusts link hashes"
    edited = next(r for r in forged if r["type"] == "event" and r["seq"] == 6)
    assert edited["actor"] == "somebody.else@acme.example"
    # Ours recomputes every link from the digest, so the same forgery breaks right after it,
    # and putting the digests back does not help: no digest leads from the new hash to the old.
    assert not verify_records(((None, r) for r in forged), _key(app)).ok
    restored = edit_and_rehash_event(_records(path))
    result = verify_records(((None, r) for r in restored), _key(app))
    assert result.problems == [
        "link seq 7 does not follow from seq 6: the chain breaks here, so seq 6 "
        "was altered (and rehashed) or this link was"
    ]


def test_revealing_another_event_in_place_of_a_hidden_one_is_detected(
    app, history, export_clip, runner, tmp_path
):
    """Hide event 14, reveal event 15 (its content taken from a full export): same count."""
    full = tmp_path / "full.jsonl"
    assert runner.invoke(args=["audit", "export", "--out", str(full)]).exit_code == 0
    event_15 = next(r for r in _records(full) if r["type"] == "event" and r["seq"] == 15)
    path = export_clip("jsonl")
    records = hide_event(_records(path))
    records[_at(records, 15)] = copy.deepcopy(event_15)
    result = verify_file(_write(path, records, "jsonl"), _key(app))
    assert result.problems and "not the ones the seal covers" in result.problems[0], result.problems


def test_links_in_a_full_export_are_refused(app, history, runner, tmp_path):
    full = tmp_path / "full.jsonl"
    assert runner.invoke(args=["audit", "export", "--out", str(full)]).exit_code == 0
    records = _records(full)
    at = _at(records, 12)
    records[at] = _as_link(records[at])
    result = verify_file(_write(full, records, "jsonl"), _key(app))
    assert "a link record (seq 12) in an export without a selection header" in result.problems[0]


# The database owner rewrote history before the export ---------------------------------------


def test_a_rewritten_excluded_event_fails_at_the_checkpoint_after_it(app, history, export_clip):
    with owner_connection(app) as connection:
        rewrite_event(connection, 23, target="clip:" + "f" * 32)
        rehash_from(connection, 23)
    result = verify_file(export_clip("jsonl"), _key(app))
    assert result.problems and "checkpoint at seq 25 does not match event seq 25" in result.problems[0]


def test_an_included_event_changed_in_the_database_is_named(app, history, export_clip):
    with owner_connection(app) as connection:
        rewrite_event(connection, 18, actor="nobody@acme.example")
    result = verify_file(export_clip("csv"), _key(app))
    assert result.problems and "event seq 18 was modified" in result.problems[0]


def test_stored_details_are_never_spliced_into_an_export_unchecked(app, history, export_clip):
    """A row whose details text would inject keys into a JSON line is re-encoded, and fails."""
    with owner_connection(app) as connection:
        rewrite_event(connection, 10, details='{"first":0},"target":"clip:' + "f" * 32 + '"')
        # Same content, other spelling: not a change of what the event says.
        rewrite_event(
            connection, 11, details='{"size": 100, "length": 100, "last": 99, "first": 0, "grant": 11}'
        )
    path = export_clip("jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [load_json(line) for line in lines]  # no line names a key twice
    [injected] = [r for r in records if r.get("seq") == 10 and r["type"] == "event"]
    assert injected["target"] == f"clip:{CLIP_A}" and isinstance(injected["details"], str)
    result = verify_file(path, _key(app))
    assert result.problems and "event seq 10 was modified" in result.problems[0]


def test_a_link_is_computed_from_what_the_event_says_not_how_it_is_stored(app, history, export_clip):
    with owner_connection(app) as connection:
        rewrite_event(
            connection, 11, details='{"size": 100, "length": 100, "last": 99, "first": 0, "grant": 11}'
        )
    result = verify_file(export_clip("jsonl"), _key(app))
    assert result.ok, result.problems


def test_a_json_line_that_names_a_key_twice_is_refused(app, history, export_clip):
    path = export_clip("jsonl")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if '"seq":10,' in line and '"type":"event"' in line)
    lines[number] = lines[number].replace('{"action":', '{"target":"clip:' + "f" * 32 + '","action":', 1)
    path.write_text("".join(lines), encoding="utf-8")
    result = verify_file(path, _key(app))
    assert result.problems == [
        f"line {number + 1}: unreadable record: not valid JSON (an object names the same key twice)"
    ]


# From the web --------------------------------------------------------------------------------


def test_a_filtered_export_from_the_web(app, history, client, login_as, create_user, clock, tmp_path):
    auditor: Person = create_user(Role.AUDITOR)
    login_as(client, auditor)
    assert client.get(f"/audit/export?format=jsonl&clip={CLIP_A}").status_code == 302
    confirm(client, auditor, clock, query=f"format=jsonl&clip={CLIP_A}")
    response = client.get(f"/audit/export?format=jsonl&clip={CLIP_A}")
    assert 'filename="audit-filtered-' in response.headers["Content-Disposition"]
    path = tmp_path / "web.jsonl"
    path.write_bytes(response.get_data())
    result = verify_file(path, _key(app))
    assert result.ok and result.events == 6 and result.filters == {"clip": CLIP_A}, result.problems
    nothing = client.get("/audit/export?format=jsonl&outcome=failed")
    assert nothing.status_code == 302 and nothing.headers["Location"] == "/audit?outcome=failed"
    assert "nothing to export" in client.get("/audit?outcome=failed").get_data(as_text=True)


# The verifier needs only the file, the key, Python and `cryptography` ---------------------

ISOLATED_VERIFIER = """
import importlib.abc, sys, types
from pathlib import Path

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"flask", "sqlalchemy", "werkzeug", "psycopg", "alembic"}:
            raise ImportError(f"{name} is not available on the auditor's machine")

sys.meta_path.insert(0, Refuse())
root = Path(sys.argv[1])
for name, folder in (("portal", root / "portal"), ("portal.audit", root / "portal" / "audit")):
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    sys.modules[name] = package
from portal.audit.verify import main
sys.exit(main(sys.argv[2:]))
"""


def test_the_verifier_runs_without_the_portals_dependencies(app, history, export_clip, database_url):
    """Only chain.py and verify.py are loaded (not portal/__init__.py), with Flask and SQLAlchemy refused."""
    if not database_url.startswith("sqlite"):
        pytest.skip("reads only the export file; run once, in the SQLite half")
    path = export_clip("csv")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            ISOLATED_VERIFIER,
            str(PROJECT_ROOT),
            str(path),
            "--public-key",
            str(_pem(app, path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "OK: filtered export" in done.stdout, done.stdout + done.stderr
