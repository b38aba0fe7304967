"""Files that are not exports, damaged lines and bad keys: a clear message and the right status.

Exit status: 0 verified, 1 the export is damaged or tampered with (the message names the
line), 2 the input is unusable (no such file, not an export, not an Ed25519 public key).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.audit.verify import main
from tests.audit.conftest import run_offline_verifier


@pytest.fixture
def good_export(append, export_file):
    append(6)
    return export_file("jsonl")


def _run(capsys, export: Path, public_key: Path) -> tuple[int, str]:
    status = main([str(export), "--public-key", str(public_key)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


DAMAGED = {
    "cut mid-line": (
        lambda lines: [*lines[:-1], lines[-1][: len(lines[-1]) // 2]],
        r"line 9: .*not valid JSON",
    ),
    "not an object": (lambda lines: [*lines[:2], "[1, 2, 3]\n", *lines[3:]], r"line 3: .*not a JSON object"),
    "missing fields": (
        lambda lines: [*lines[:1], '{"type": "event", "seq": 2}\n', *lines[2:]],
        r"line 2: event seq 2 lacks",
    ),
    "seq is text": (
        lambda lines: [lines[0].replace('"seq":1', '"seq":"1"'), *lines[1:]],
        r"line 1: .*sequence number",
    ),
    "null prev_hash first": (
        lambda lines: [lines[0].replace('"prev_hash":"' + "0" * 64 + '"', '"prev_hash":null'), *lines[1:]],
        r"line 1: event seq 1 does not start from the genesis hash",
    ),
    "unknown record type": (
        lambda lines: [*lines[:3], '{"type": "comment"}\n', *lines[3:]],
        r"line 4: unknown record type",
    ),
    "record after the seal": (lambda lines: [*lines, lines[0]], r"line 10: .*after the seal"),
    "first event removed": (lambda lines: lines[1:], r"line 1: event seq 1 is missing"),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_lines_are_named(capsys, good_export, public_key_file, case):
    damage, pattern = DAMAGED[case]
    path = _write(good_export.with_name("damaged.jsonl"), "".join(damage(_lines(good_export))))
    status, output = _run(capsys, path, public_key_file)
    assert status == 1, output
    assert __import__("re").search(pattern, output), output
    assert "Traceback" not in output


def test_invalid_utf8_is_a_modification_not_a_crash(capsys, good_export, public_key_file):
    data = good_export.read_bytes().replace(b'"test.event"', b'"test.\xff\xfeevent"', 1)
    status, output = _run(capsys, _write(good_export.with_name("bytes.jsonl"), data), public_key_file)
    assert status == 1 and "event seq 1 was modified" in output, output


def test_damaged_csv_rows_are_named(capsys, append, export_file, public_key_file, tmp_path):
    append(3)
    lines = export_file("csv").read_text(encoding="utf-8").splitlines(keepends=True)
    short = _write(tmp_path / "short.csv", "".join([*lines[:2], "event,2,x\n", *lines[3:]]))
    status, output = _run(capsys, short, public_key_file)
    assert status == 1 and "line 3:" in output and "fields" in output, output
    bad_seq = lines[2].replace("event,2,", "event,two,", 1)
    bad = _write(tmp_path / "seq.csv", "".join([*lines[:2], bad_seq, *lines[3:]]))
    status, output = _run(capsys, bad, public_key_file)
    assert status == 1 and "line 3:" in output, output
    nul = _write(tmp_path / "nul.csv", "".join([*lines[:2], "event,\x00,\n", *lines[3:]]))
    status, output = _run(capsys, nul, public_key_file)
    assert status in (1, 2) and "line 3" in output and "Traceback" not in output, output


UNUSABLE_EXPORTS = {
    "empty file": b"",
    "binary file": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    "foreign csv": b"name,email\nAda,ada@example.com\n",
    "blank lines only": b"\n\n\n",
}


@pytest.mark.parametrize("case", UNUSABLE_EXPORTS)
def test_unusable_exports_exit_2(capsys, tmp_path, public_key_file, runner, case):
    path = _write(tmp_path / "input", UNUSABLE_EXPORTS[case])
    status, output = _run(capsys, path, public_key_file)
    assert status == 2, output
    assert "not an audit export" in output or "empty" in output, output
    result = runner.invoke(args=["audit", "verify", str(path), "--public-key", str(public_key_file)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def _pem_keys(tmp_path: Path) -> dict[str, Path]:
    ed = Ed25519PrivateKey.generate()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "garbage": _write(
            tmp_path / "garbage.pem", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"
        ),
        "private key": _write(
            tmp_path / "private.pem",
            ed.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
        "rsa public key": _write(
            tmp_path / "rsa.pem",
            rsa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        "empty": _write(tmp_path / "empty.pem", b""),
        "directory": tmp_path,
    }


def test_unusable_public_keys_exit_2(capsys, good_export, tmp_path, runner):
    for name, key in _pem_keys(tmp_path).items():
        status, output = _run(capsys, good_export, key)
        assert status == 2, (name, output)
        assert "public key" in output and "Traceback" not in output, (name, output)
        if key.is_file():
            result = runner.invoke(args=["audit", "verify", str(good_export), "--public-key", str(key)])
            assert result.exit_code == 2 and "Traceback" not in result.output, (name, result.output)


def test_missing_files_exit_2(capsys, good_export, public_key_file, tmp_path, runner):
    status, output = _run(capsys, tmp_path / "nope.jsonl", public_key_file)
    assert status == 2 and "cannot read" in output, output
    status, output = _run(capsys, tmp_path, public_key_file)
    assert status == 2, output
    result = runner.invoke(
        args=["audit", "verify", str(tmp_path / "nope.jsonl"), "--public-key", str(public_key_file)]
    )
    assert result.exit_code == 2
    result = runner.invoke(args=["audit", "verify", str(good_export)])
    assert result.exit_code == 2 and "--public-key" in result.output


def test_standalone_verifier_reports_without_traceback(good_export, public_key_file, tmp_path, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("reads only the export file; run once, in the SQLite half")
    ok = run_offline_verifier(good_export, public_key_file)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 6 events (seq 1–6)"), ok.stdout + ok.stderr
    assert "sealed" in ok.stdout
    lines = _lines(good_export)
    broken = _write(tmp_path / "broken.jsonl", "".join([*lines[:3], "{oops\n", *lines[3:]]))
    failed = run_offline_verifier(broken, public_key_file)
    assert failed.returncode == 1 and "line 4" in failed.stdout and "Traceback" not in failed.stderr
    unusable = run_offline_verifier(_write(tmp_path / "x.bin", b"\x00\x01\x02"), public_key_file)
    assert unusable.returncode == 2 and "Traceback" not in unusable.stderr, unusable.stderr
    usage = run_offline_verifier(good_export, tmp_path / "missing.pem")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_jsonl_records_are_plain_json(good_export):
    records = [json.loads(line) for line in _lines(good_export)]
    assert [r["type"] for r in records] == ["event"] * 5 + ["checkpoint", "event", "checkpoint", "seal"]
