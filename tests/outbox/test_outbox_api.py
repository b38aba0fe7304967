"""GET /api/v1/corrections and `flask corrections export`: keys, cursors, order, erasure."""

from __future__ import annotations

import json

import pytest

from portal.auth.models import Role
from portal.clips.services import erase_subject, purge_expired
from portal.clock import utcnow
from portal.extensions import db
from portal.outbox.models import OutboxEntry
from portal.outbox.services import annotator_pseudonym
from portal.tasks.models import Submission
from tests.clips.helpers import audit_rows
from tests.conftest import TEST_ACTOR
from tests.review.helpers import ACME, row

ITEM_FIELDS = {
    "cursor",
    "clip_id",
    "locale",
    "transcript",
    "machine_transcript",
    "wer",
    "cer",
    "passes",
    "accepted_at",
    "annotator",
    "time_on_task_s",
}


@pytest.fixture
def reader(make_api_key):
    token = make_api_key("outbox", "speech-team")

    def get(client, query: str = ""):
        return client.get(f"/api/v1/corrections{query}", headers={"Authorization": f"Bearer {token}"})

    return get


@pytest.fixture
def accepted(sample_none, app, work, create_user):
    """Five auto-accepted corrections over three clips (subject-1 has two clips)."""
    annotator = create_user(Role.ANNOTATOR, vendor=ACME)
    clips = [work.clip(passes=2), work.clip(passes=2), work.clip(passes=1)]
    ids = []
    for clip in clips:
        for task_id in clip.task_ids:
            ids.append(work.submit(task_id, annotator, f"correction {len(ids) + 1}"))
    return {"annotator": annotator, "clips": clips, "submissions": ids}


def test_no_key_is_401_and_a_wrong_scope_is_403(app, client, make_api_key):
    assert client.get("/api/v1/corrections").status_code == 401
    bad = client.get("/api/v1/corrections", headers={"Authorization": "Bearer vap_not-a-key"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "api_key_invalid"
    ingest = make_api_key("ingest", "pipeline")
    response = client.get("/api/v1/corrections", headers={"Authorization": f"Bearer {ingest}"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "api_key_scope"
    assert [event["details"]["reason"] for event in audit_rows(app, "api.access_denied")] == [
        "missing",
        "unknown",
        "scope",
    ]


def test_a_signed_in_person_without_a_key_is_refused(app, client, create_user, login_as, publish):
    publish()
    login_as(client, create_user(Role.SUPERVISOR))
    assert client.get("/api/v1/corrections").status_code == 401


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?after=-1", "cursor_invalid"),
        ("?after=abc", "cursor_invalid"),
        ("?after=1.5", "cursor_invalid"),
        ("?after=%EF%BC%91", "cursor_invalid"),  # a full-width digit is not a cursor
        ("?after=99999999999999999999", "cursor_invalid"),
        ("?limit=0", "limit_invalid"),
        ("?limit=1001", "limit_invalid"),
        ("?limit=ten", "limit_invalid"),
    ],
)
def test_bad_cursor_or_limit_is_a_json_400(app, client, reader, query, code):
    response = reader(client, query)
    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"]["code"] == code


def test_empty_outbox(app, client, reader):
    assert reader(client).get_json() == {"items": [], "next_cursor": 0}
    assert reader(client, "?after=7").get_json() == {"items": [], "next_cursor": 7}


def test_items_in_commit_order_with_cursors(app, client, reader, accepted):
    response = reader(client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("no-store")
    body = response.get_json()
    items = body["items"]
    assert [item["cursor"] for item in items] == [1, 2, 3, 4, 5] and body["next_cursor"] == 5
    assert [item["transcript"] for item in items] == [f"correction {n}" for n in range(1, 6)]
    first = items[0]
    assert set(first) == ITEM_FIELDS
    clip = accepted["clips"][0]
    assert first["clip_id"] == clip.public_id and first["locale"] == "en-US" and first["passes"] == 2
    assert first["machine_transcript"] == "please call me back at home tomorrow"
    assert first["accepted_at"].endswith("Z") and isinstance(first["time_on_task_s"], float)
    assert first["wer"] > 0 and first["cer"] > 0
    annotator = accepted["annotator"]
    with app.app_context():
        assert {item["annotator"] for item in items} == {annotator_pseudonym(annotator.id)}
    text = response.get_data(as_text=True)
    assert annotator.email not in text and '"user_id"' not in text

    pages, cursor = [], 0
    while True:
        page = reader(client, f"?after={cursor}&limit=2").get_json()
        if not page["items"]:
            assert page["next_cursor"] == cursor
            break
        pages.append([item["cursor"] for item in page["items"]])
        cursor = page["next_cursor"]
    assert pages == [[1, 2], [3, 4], [5]]
    (last_read,) = [e for e in audit_rows(app, "outbox.read") if e["details"]["after"] == 4]
    assert last_read["actor"] == "apikey:speech-team"
    assert last_read["details"] == {"after": 4, "limit": 2, "items": 1, "next_cursor": 5}


def test_erased_and_expired_clips_never_appear(app, client, reader, accepted):
    with app.app_context():
        erase_subject("subject-1", TEST_ACTOR, utcnow())
        db.session.commit()
    items = reader(client).get_json()["items"]
    assert [item["cursor"] for item in items] == [3, 4, 5]
    first_clip = accepted["clips"][0]
    assert first_clip.public_id not in json.dumps(items)
    with app.app_context():
        withdrawn = [db.session.get_one(OutboxEntry, position) for position in (1, 2)]
        assert all(entry.withdrawn_at is not None for entry in withdrawn)
        # What the erased person said is gone from the outbox and from the submissions.
        assert all(entry.transcript == "" and entry.machine_transcript == "" for entry in withdrawn)
    assert row(app, Submission, accepted["submissions"][0]).transcript == ""
    assert row(app, Submission, accepted["submissions"][2]).transcript == "correction 3"

    with app.app_context():
        from portal.clips.models import Clip

        clip = db.session.get_one(Clip, accepted["clips"][2].id)
        clip.retain_until = utcnow()
        db.session.commit()
        assert purge_expired(utcnow(), TEST_ACTOR) == 1
        db.session.commit()
    assert [item["cursor"] for item in reader(client).get_json()["items"]] == [3, 4]
    assert reader(client, "?after=4").get_json() == {"items": [], "next_cursor": 4}


def test_jsonl_export(app, runner, tmp_path, accepted):
    out = tmp_path / "corrections.jsonl"
    result = runner.invoke(args=["corrections", "export", "--since", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 correction(s) written; next cursor: 5" in result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["cursor"] for line in lines] == [1, 2, 3, 4, 5]
    assert set(lines[0]) == ITEM_FIELDS

    result = runner.invoke(args=["corrections", "export", "--since", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["cursor"] for line in out.read_text().splitlines()] == [4, 5]

    with app.app_context():
        erase_subject("subject-2", TEST_ACTOR, utcnow())
        db.session.commit()
    result = runner.invoke(args=["corrections", "export", "--out", str(out)])
    assert [json.loads(line)["cursor"] for line in out.read_text().splitlines()] == [1, 2, 5]
    assert [event["details"] for event in audit_rows(app, "outbox.exported")][-1] == {
        "since": 0,
        "items": 3,
        "next_cursor": 5,
    }
    assert runner.invoke(args=["corrections", "export", "--since", "-1", "--out", str(out)]).exit_code != 0
