"""Error pages and JSON errors that leak nothing, and the audit of every refusal.

Every 403, CSRF failure and rate-limit hit is recorded in the audit log as loudly as a
granted access. The recording runs in a fresh transaction: whatever the refused request
had started is rolled back first.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal.access import wants_json
from portal.audit.context import request_actor
from portal.audit.models import Outcome
from portal.audit.services import record_event
from portal.exceptions import AccessDenied, PortalError
from portal.extensions import db

logger = logging.getLogger(__name__)

MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("authentication_required", "Sign in first."),
    403: ("forbidden", "You do not have access to this page."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This address does not accept that method."),
    413: ("too_large", "The upload is larger than the portal accepts."),
    429: ("rate_limited", "Too many attempts. Wait a moment and try again."),
    500: ("internal_error", "Something went wrong on our side. It has been logged."),
}


def error_response(status: int, code: str | None = None, message: str | None = None) -> Response:
    """Render an error as JSON for API clients and as a page for browsers."""
    default_code, default_message = MESSAGES.get(status, MESSAGES[500])
    code, message = code or default_code, message or default_message
    if wants_json():
        response = current_app.json.response({"error": {"code": code, "message": message}})
    else:
        response = Response(
            render_template("errors/error.html", status=status, message=message),
            mimetype="text/html",
        )
    response.status_code = status
    return response


def _audit_refusal(action: str, reason: str, target: str | None = None) -> None:
    db.session.rollback()
    record_event(
        request_actor(),
        action,
        outcome=Outcome.DENIED,
        target=target,
        details={"reason": reason[:300], "method": request.method, "path": request.path[:300]},
    )
    db.session.commit()


def handle_access_denied(error: AccessDenied) -> Response:
    _audit_refusal("access.denied", error.reason, error.target)
    return error_response(403)


def handle_csrf_error(error: CSRFError) -> Response:
    _audit_refusal("access.csrf_rejected", error.description or "csrf")
    return error_response(
        400, "csrf_failed", "The form expired or was not sent by this site. Reload the page and try again."
    )


def handle_portal_error(error: PortalError) -> Response:
    db.session.rollback()
    return error_response(error.status, error.code, error.message)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 403:
        _audit_refusal("access.denied", error.description or "forbidden")
    elif status == 429:
        _audit_refusal("access.rate_limited", str(error.description))
    response = error_response(status)
    for name in ("Allow", "Retry-After"):
        value = dict(error.get_headers()).get(name)
        if value:
            response.headers[name] = value
    return response


def handle_unexpected(error: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    return error_response(500)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers above on `app`."""
    app.register_error_handler(AccessDenied, handle_access_denied)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(PortalError, handle_portal_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
