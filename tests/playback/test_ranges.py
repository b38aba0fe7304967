"""Range requests: 206/200/416 semantics, the headers of every answer, and their audit."""

from __future__ import annotations

import pytest

from portal.playback.services import RangeNotSatisfiable, byte_range
from tests.auth.helpers import AUTH_COOKIE, audit_events, details, run_concurrently
from tests.playback.conftest import fetch

MEDIA_HEADERS = {
    "Cache-Control": "no-store, private",
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Accept-Ranges": "bytes",
}


def assert_media_headers(response) -> None:
    for name, value in MEDIA_HEADERS.items():
        assert response.headers[name] == value, name
    assert "filename" not in response.headers["Content-Disposition"]


def test_first_bytes(holding):
    plain = holding.plain_audio()
    response = fetch(holding.client, holding.grant(), "bytes=0-99")

    assert response.status_code == 206
    assert response.data == plain[:100]
    assert response.headers["Content-Range"] == f"bytes 0-99/{len(plain)}"
    assert response.headers["Content-Length"] == "100"
    assert response.mimetype == "audio/flac"
    assert response.data[:4] == b"fLaC"
    assert_media_headers(response)


def test_suffix_range_is_the_last_bytes(holding):
    plain = holding.plain_audio()
    response = fetch(holding.client, holding.grant(), "bytes=-100")

    assert response.status_code == 206
    assert response.data == plain[-100:]
    assert response.headers["Content-Range"] == f"bytes {len(plain) - 100}-{len(plain) - 1}/{len(plain)}"


def test_open_ended_range_runs_to_the_end(holding):
    plain = holding.plain_audio()
    response = fetch(holding.client, holding.grant(), "bytes=1000-")

    assert response.status_code == 206
    assert response.data == plain[1000:]
    assert response.headers["Content-Range"] == f"bytes 1000-{len(plain) - 1}/{len(plain)}"


def test_a_range_past_the_end_is_cut_to_the_file(holding):
    plain = holding.plain_audio()
    response = fetch(holding.client, holding.grant(), f"bytes={len(plain) - 10}-{len(plain) + 500}")

    assert response.status_code == 206
    assert response.data == plain[-10:]


def test_a_suffix_longer_than_the_file_is_the_whole_file(holding):
    plain = holding.plain_audio()
    response = fetch(holding.client, holding.grant(), f"bytes=-{len(plain) * 2}")

    assert response.status_code == 206
    assert response.data == plain


def test_unsatisfiable_or_malformed_ranges_get_416(app, holding, subtests):
    size = len(holding.plain_audio())
    url = holding.grant()
    for header in [
        f"bytes={size}-",
        f"bytes={size}-{size + 9}",
        "bytes=-0",
        "bytes=20-10",
        "bytes=0-9,20-29",  # several ranges: refused, never a multipart answer
        "bytes=abc",
        "bytes=--5",
        "bytes=",
    ]:
        with subtests.test(msg=header):
            response = fetch(holding.client, url, header)
            assert response.status_code == 416
            assert response.headers["Content-Range"] == f"bytes */{size}"
            assert response.data == b""
            assert_media_headers(response)
    assert audit_events(app, "playback.range") == []


def test_no_range_or_another_unit_gets_the_whole_file_with_200(holding):
    plain = holding.plain_audio()
    url = holding.grant()

    whole = fetch(holding.client, url, None)
    assert whole.status_code == 200
    assert whole.data == plain
    assert whole.headers["Content-Length"] == str(len(plain))
    assert "Content-Range" not in whole.headers
    assert_media_headers(whole)

    other_unit = fetch(holding.client, url, "items=0-5")
    assert other_unit.status_code == 200
    assert other_unit.data == plain


def test_chunks_reassemble_to_exactly_the_decrypted_clip(holding):
    plain = holding.plain_audio()
    url = holding.grant()
    parts, start, chunk = [], 0, 7_919
    while start < len(plain):
        response = fetch(holding.client, url, f"bytes={start}-{start + chunk - 1}")
        assert response.status_code == 206
        parts.append(response.data)
        start += len(response.data)

    assert b"".join(parts) == plain
    assert holding.served() == {"size": len(plain), "ranges": [[0, len(plain)]]}


def test_every_served_range_is_audited_with_clip_task_lease_and_bytes(app, holding):
    plain = holding.plain_audio()
    url = holding.grant()
    fetch(holding.client, url, "bytes=0-99")
    fetch(holding.client, url, "bytes=-50")

    events = audit_events(app, "playback.range")
    assert [event.actor_id for event in events] == [holding.person.id] * 2
    assert {event.target for event in events} == {f"clip:{holding.clip_public_id}"}
    assert {event.session_ref for event in events} == {audit_events(app, "playback.granted")[0].session_ref}
    first, second = (details(event) for event in events)
    assert first["task"] == holding.task_id
    assert first["lease"] == holding.lease_id
    assert (first["first"], first["last"], first["length"], first["size"]) == (0, 99, 100, len(plain))
    assert (second["first"], second["last"], second["length"]) == (len(plain) - 50, len(plain) - 1, 50)
    assert holding.served() == {"size": len(plain), "ranges": [[0, 100], [len(plain) - 50, len(plain)]]}


def test_concurrent_ranges_of_one_lease_are_all_recorded(app, holding):
    """Parallel range requests (a player may overlap them) must not lose each other's record."""
    plain = holding.plain_audio()
    url = holding.grant()
    session_cookie = holding.client.get_cookie(AUTH_COOKIE).value
    pieces = 8
    step = -(-len(plain) // pieces)

    def get(index: int):
        def call():
            client = app.test_client()
            client.set_cookie(AUTH_COOKIE, session_cookie)
            return fetch(client, url, f"bytes={index * step}-{(index + 1) * step - 1}")

        return call

    responses = run_concurrently(*(get(index) for index in range(pieces)))

    assert [response.status_code for response in responses] == [206] * pieces
    assert b"".join(response.data for response in responses) == plain
    assert holding.served() == {"size": len(plain), "ranges": [[0, len(plain)]]}
    assert len(audit_events(app, "playback.range")) == pieces


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=9-", 10, (9, 9)),
        ("bytes=-1", 10, (9, 9)),
        ("bytes=-10", 10, (0, 9)),
        ("bytes=0-1000", 10, (0, 9)),
        (" bytes = 2 - 3 ", 10, (2, 3)),
        ("BYTES=1-2", 10, (1, 2)),
        ("pages=1-2", 10, None),
    ],
)
def test_byte_range_parsing(header, size, expected):
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(
    "header", ["bytes=10-", "bytes=5-4", "bytes=1-2,3-4", "bytes=٣-٤", "bytes=0-1", "bytes=-0"]
)
def test_byte_range_refusals(header):
    size = 0 if header == "bytes=0-1" else 10
    with pytest.raises(RangeNotSatisfiable) as refusal:
        byte_range(header, size)
    assert refusal.value.size == size
