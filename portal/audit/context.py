"""Build the audit actor for the current request."""

from __future__ import annotations

from flask import g, request
from flask_login import current_user

from portal.audit.services import Actor
from portal.auth.services import actor_for


def request_origin() -> Actor:
    """Where the request comes from, before knowing who sent it."""
    return Actor(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def request_actor() -> Actor:
    """The signed-in user (if any) with this request's session, IP and user agent."""
    origin = request_origin()
    if not current_user.is_authenticated:
        return origin
    return actor_for(current_user, origin, g.get("user_session"))
