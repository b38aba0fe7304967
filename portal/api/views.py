"""The service API under /api/v1: JSON in and out, Bearer keys, no cookies, no CSRF.

Errors are `{"error": {"code": ..., "message": ...}}` with stable codes (see
`portal.clips.refusals` and docs/clips.md).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from portal.access import api_key_required
from portal.api.keys import api_actor
from portal.api.models import ApiScope
from portal.audit.services import record_event
from portal.clips.refusals import IngestRefused
from portal.clips.services import ingest_clip, record_refusal
from portal.clock import utcnow
from portal.errors import error_response
from portal.exceptions import PortalError
from portal.extensions import db
from portal.outbox import services as outbox

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _json(payload: dict[str, Any], status: int) -> Response:
    response = current_app.json.response(payload)
    response.status_code = status
    return response


def _metadata() -> object:
    """The `metadata` part, sent as a form field or as a file part."""
    raw: str | bytes | None = request.form.get("metadata")
    if raw is None and "metadata" in request.files:
        raw = request.files["metadata"].read(1024 * 1024 + 1)
    if raw is None:
        raise IngestRefused("metadata_invalid", "Send the clip's metadata as the multipart field 'metadata'.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise IngestRefused("metadata_invalid", "The metadata is not valid JSON.") from None


@bp.route("/clips", methods=["POST"])
@api_key_required(ApiScope.INGEST)
def create_clip() -> Response:
    """Ingest one clip: multipart `audio` + `metadata` (JSON); 201 with the clip id."""
    actor = api_actor(g.api_key)
    metadata: object = None
    try:
        metadata = _metadata()
        upload = request.files.get("audio")
        if upload is None:
            raise IngestRefused("audio_missing", "Send the clip's audio as the multipart file 'audio'.")
        result = ingest_clip(upload.stream, metadata, actor, utcnow())
    except PortalError as refusal:
        db.session.rollback()
        record_refusal(actor, refusal, metadata)
        g.api_key.last_used_at = utcnow()
        db.session.commit()
        return error_response(refusal.status, refusal.code, refusal.message)
    db.session.commit()
    response = _json(result.as_json(), 201)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _query_int(name: str, default: int, low: int, high: int, code: str) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise PortalError(code, f"{name} must be an integer from {low} to {high}.")
    return int(raw)


@bp.route("/corrections", methods=["GET"])
@api_key_required(ApiScope.OUTBOX)
def corrections() -> Response:
    """Accepted corrections after `after` (a cursor), at most `limit`, in commit order.

    `next_cursor` is the last item's cursor, or `after` itself when nothing is new: the
    client stores it and asks again with it (at-least-once; see portal.outbox.services).
    """
    after = _query_int("after", 0, 0, 2**62, "cursor_invalid")
    limit = _query_int("limit", outbox.DEFAULT_LIMIT, 1, outbox.MAX_LIMIT, "limit_invalid")
    entries = outbox.corrections_after(after, limit)
    next_cursor = entries[-1].position if entries else after
    record_event(
        api_actor(g.api_key),
        "outbox.read",
        details={"after": after, "limit": limit, "items": len(entries), "next_cursor": next_cursor},
    )
    db.session.commit()
    return _json({"items": [outbox.as_item(entry) for entry in entries], "next_cursor": next_cursor}, 200)
