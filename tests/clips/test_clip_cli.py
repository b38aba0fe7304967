"""`flask clips ingest MANIFEST.jsonl`: relative audio paths, one transaction per line."""

from __future__ import annotations

import json

from tests.clips import helpers
from tests.clips.helpers import metadata


def _manifest(tmp_path, lines: list[object]):
    audio = tmp_path / "batch" / "audio"
    audio.mkdir(parents=True)
    (audio / "one.wav").write_bytes(helpers.wav(1.0))
    (audio / "two.mp3").write_bytes(helpers.mp3(1.0))
    path = tmp_path / "batch" / "manifest.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_manifest_ingest_with_relative_paths(app, runner, vendor, tmp_path):
    manifest = _manifest(
        tmp_path,
        [
            {**metadata(idempotency_key="m-1"), "audio": "audio/one.wav"},
            {**metadata(idempotency_key="m-2", passes=3), "audio": "audio/two.mp3"},
            "",
            {**metadata(consent=None), "audio": "audio/one.wav"},
            {**metadata(), "audio": "audio/missing.wav"},
            "not json",
        ],
    )
    result = runner.invoke(args=["clips", "ingest", str(manifest)])
    assert result.exit_code == 1, result.output
    assert "line 1: clip " in result.output and "(2 task(s); redactions: EMAIL=1, PHONE=1)" in result.output
    assert "line 2: clip " in result.output and "3 task(s)" in result.output
    assert "line 4: refused [consent_missing]" in result.output
    assert "line 5: refused [audio_missing]" in result.output
    assert "line 6: refused [metadata_invalid]" in result.output
    assert "2 ingested, 0 already present, 3 refused" in result.output
    assert helpers.row_counts(app) == {"clips": 2, "tasks": 5, "clip_vendors": 2}
    assert len(helpers.stored_objects(app)) == 2
    refusals = [event["details"]["code"] for event in helpers.audit_rows(app, "clips.ingest_refused")]
    assert refusals == ["consent_missing", "audio_missing", "metadata_invalid"]
    assert all(event["actor"].startswith("cli:") for event in helpers.audit_rows(app, "clips.ingested"))

    again = runner.invoke(args=["clips", "ingest", str(manifest)])
    assert "0 ingested, 2 already present, 3 refused" in again.output
    assert helpers.row_counts(app)["clips"] == 2


def test_manifest_from_another_working_directory(app, runner, vendor, tmp_path, monkeypatch):
    manifest = _manifest(tmp_path, [{**metadata(), "audio": "audio/one.wav"}])
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(args=["clips", "ingest", "batch/manifest.jsonl"])
    assert result.exit_code == 0, result.output
    assert "1 ingested" in result.output
    assert manifest.exists()
