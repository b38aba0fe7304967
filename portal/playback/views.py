"""Playback grants, the media endpoint and the player's progress reports (JSON only)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request, url_for
from flask_login import current_user

from portal.access import nda_accepted, public, role_required
from portal.audit.context import request_actor
from portal.audit.models import Outcome
from portal.audit.services import record_event
from portal.auth.models import Role
from portal.clock import utcnow
from portal.extensions import db
from portal.playback import services

bp = Blueprint("playback", __name__)

# Set on every media answer, refusals included; the app-wide hook keeps "no-store, private".
MEDIA_HEADERS = {
    "Cache-Control": "no-store, private",
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Accept-Ranges": "bytes",
}


def _json(payload: dict[str, object], status: int = 200) -> Response:
    response = current_app.json.response(payload)
    response.status_code = status
    return response


@bp.errorhandler(services.PlaybackDenied)
def refused(error: services.PlaybackDenied) -> Response:
    """Audit the refusal as `playback.denied` (in a fresh transaction) and answer 403 JSON.

    The request path is recorded only when it holds no live token: the audit log is
    exported, and a grant's token must not travel with it.
    """
    db.session.rollback()
    details: dict[str, object] = {"reason": error.reason, **error.details, "method": request.method}
    if "grant" not in error.details:
        details["path"] = request.path[:300]
    record_event(
        request_actor(), "playback.denied", outcome=Outcome.DENIED, target=error.target, details=details
    )
    db.session.commit()
    response = _json(
        {"error": {"code": "playback_refused", "message": "This audio cannot be played here."}}, 403
    )
    if request.endpoint == "playback.media":
        response.headers.update(MEDIA_HEADERS)
    return response


def _grant_answer(issued: services.IssuedGrant) -> Response:
    return _json(
        {
            "url": url_for("playback.media", token=issued.token),
            "expires_in": issued.expires_in,
            "content_type": issued.content_type,
        }
    )


@bp.route("/tasks/<int:task_id>/playback", methods=["POST"])
@role_required(Role.ANNOTATOR)
def grant_for_task(task_id: int) -> Response:
    """A playback grant for the holder of the task's live lease, in this session."""
    issued = services.grant_for_lease(task_id, current_user, g.user_session, request_actor(), utcnow())
    db.session.commit()
    return _grant_answer(issued)


@bp.route("/review/<int:submission_id>/playback", methods=["POST"])
@role_required(Role.SUPERVISOR)
def grant_for_review(submission_id: int) -> Response:
    """A playback grant for a supervisor reviewing a pending submission in their scope."""
    issued = services.grant_for_review(submission_id, current_user, g.user_session, request_actor(), utcnow())
    db.session.commit()
    return _grant_answer(issued)


@bp.route("/tasks/<int:task_id>/progress", methods=["POST"])
@role_required(Role.ANNOTATOR)
def progress(task_id: int) -> Response:
    """Merge the player's report; answer `{"heard_share", "fully_heard"}`."""
    state = services.record_progress(
        task_id, current_user, g.user_session, request.get_json(silent=True), request_actor(), utcnow()
    )
    db.session.commit()
    return _json(state.as_json())


@bp.route("/media/<token>")
@public
def media(token: str) -> Response:
    """The grant's audio, one byte range at a time.

    Declared public because the grant and its session are checked here: a request
    without the session cookie must be refused (403, audited), not sent to sign in.
    """
    signed_in = current_user.is_authenticated
    media_request = services.MediaRequest(
        user=current_user if signed_in else None,
        user_session=g.user_session if signed_in else None,
        nda_accepted=signed_in and nda_accepted(),
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        fetch_dest=request.headers.get("Sec-Fetch-Dest"),
        range_header=request.headers.get("Range"),
    )
    try:
        piece = services.serve_media(token, media_request, request_actor(), utcnow())
    except services.RangeNotSatisfiable as error:
        db.session.rollback()
        response = Response(status=416, headers={**MEDIA_HEADERS, "Content-Range": f"bytes */{error.size}"})
        return response
    db.session.commit()
    response = Response(piece.body, status=206 if piece.partial else 200, mimetype=piece.content_type)
    response.headers.update(MEDIA_HEADERS)
    if piece.partial:
        response.headers["Content-Range"] = f"bytes {piece.first}-{piece.last}/{piece.size}"
    return response
