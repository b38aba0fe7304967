"""The session cookie: read it into `current_user`, write it after sign-in, clear it.

Views never touch the cookie directly: they call `issue_session_cookie` or
`clear_session_cookie`, and the `after_request` hook writes the result.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response, current_app, g, request

from portal.audit.context import request_origin
from portal.auth.models import User
from portal.auth.sessions import SessionPolicy, find_session
from portal.clock import utcnow
from portal.extensions import db, login_manager


def session_policy() -> SessionPolicy:
    """Session lifetimes from the app's configuration."""
    config = current_app.config
    return SessionPolicy(
        idle=timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        absolute=timedelta(hours=config["SESSION_ABSOLUTE_HOURS"]),
        pending=timedelta(minutes=config["PENDING_SIGN_IN_MINUTES"]),
    )


@login_manager.request_loader
def load_user_from_cookie(_request: object) -> User | None:
    """Find the live session named by the cookie; Flask-Login calls this once per request.

    What the lookup changed (a session it ended, a `last_seen_at` it refreshed) is
    committed at once, so that a view that rolls back cannot undo it. A lookup that
    changed nothing leaves its transaction open for the view on PostgreSQL: no COMMIT,
    no second connection checkout and BEGIN on every request. On SQLite it ends it, as
    every transaction there holds the write lock. Sets `g.user_session` and
    `g.nda_accepted`, the NDA answer the gate chain (`portal.access`) uses.
    """
    token = request.cookies.get(current_app.config["AUTH_COOKIE_NAME"])
    g.user_session = None
    if not token:
        return None
    found = find_session(token, utcnow(), session_policy(), request_origin())
    if found is None or found.touched or db.exclusive_transactions:
        db.session.commit()
    if found is None:
        clear_session_cookie()
        return None
    g.user_session = found.session
    g.nda_accepted = found.nda_accepted
    return found.session.user


def issue_session_cookie(token: str) -> None:
    """Send `token` as the session cookie with this response."""
    g.session_cookie = token


def clear_session_cookie() -> None:
    """Delete the session cookie with this response."""
    g.session_cookie = ""


def write_session_cookie(response: Response) -> Response:
    """Write or delete the cookie decided during the request; an `after_request` hook."""
    token = g.get("session_cookie")
    if token is None:
        return response
    config = current_app.config
    name = config["AUTH_COOKIE_NAME"]
    if token:
        response.set_cookie(
            name, token, secure=config["SECURE_COOKIES"], httponly=True, samesite="Lax", path="/"
        )
    else:
        response.delete_cookie(name, secure=config["SECURE_COOKIES"], httponly=True, samesite="Lax", path="/")
    return response


def register_session_cookie(app: Flask) -> None:
    """Install the cookie writer on `app`."""
    app.after_request(write_session_cookie)
