"""Who may use which view, and the gate chain every signed-in request passes.

Every view declares its access with one of the decorators below. The `before_request`
hook `enforce_access` refuses any view that declares nothing (deny by default), then
walks the chain: password → second factor → current NDA → role. Until a step is done,
every page that needs a later step redirects to it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Response, current_app, g, redirect, request, url_for
from flask_login import current_user

from portal.api.keys import require_api_key
from portal.auth.models import Role
from portal.exceptions import AccessDenied
from portal.nda.services import has_accepted_current_nda

F = TypeVar("F", bound=Callable[..., Any])


class Gate(enum.IntEnum):
    """How far along the gate chain a request must be; later gates include earlier ones."""

    PUBLIC = 0
    PASSWORD = 1
    SECOND_FACTOR = 2
    NDA = 3


@dataclass(frozen=True)
class AccessRule:
    """What a view requires: a gate and, optionally, a set of roles or an API key scope."""

    gate: Gate
    roles: frozenset[Role] | None = None
    api_scope: str | None = None


def _declare(rule: AccessRule) -> Callable[[F], F]:
    def decorator(view: F) -> F:
        view.access_rule = rule  # type: ignore[attr-defined]
        return view

    return decorator


def public(view: F) -> F:
    """Anyone may use this view, signed in or not."""
    return _declare(AccessRule(Gate.PUBLIC))(view)


def after_password(view: F) -> F:
    """Signed in with a password; the second factor may still be missing (2FA pages)."""
    return _declare(AccessRule(Gate.PASSWORD))(view)


def after_second_factor(view: F) -> F:
    """Password and second factor done; the NDA may still be pending (NDA pages)."""
    return _declare(AccessRule(Gate.SECOND_FACTOR))(view)


def signed_in(view: F) -> F:
    """The whole gate chain passed; any role."""
    return _declare(AccessRule(Gate.NDA))(view)


def role_required(*roles: Role) -> Callable[[F], F]:
    """The whole gate chain passed and the user has one of `roles`."""
    return _declare(AccessRule(Gate.NDA, frozenset(roles)))


def api_key_required(scope: str) -> Callable[[F], F]:
    """A service client with an unrevoked API key of `scope` (Authorization: Bearer).

    No session, no gate chain: a signed-in person without a key is refused too.
    """
    return _declare(AccessRule(Gate.PUBLIC, api_scope=scope))


def wants_json() -> bool:
    """Whether the client asked for JSON rather than a page."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or request.is_json


SIGN_IN_PATHS = ("/login", "/logout", "/2fa")


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a page of this site worth returning to, else None.

    Refuses anything with a scheme or host (no open redirects) and the sign-in steps
    themselves, which would only loop or answer 405.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith(SIGN_IN_PATHS):
        return None
    return target


def _redirect_to(endpoint: str) -> Response:
    if wants_json():
        response = current_app.json.response(
            {"error": {"code": "authentication_required", "message": "Sign in first."}}
        )
        response.status_code = 401
        return response
    next_path = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for(endpoint, next=safe_next(next_path)))


def nda_accepted() -> bool:
    """The NDA check for this request, asked once (the gate hook and the templates share it).

    The session lookup (`portal.auth.cookies`) normally answers it already, in its query.
    """
    if "nda_accepted" not in g:
        g.nda_accepted = has_accepted_current_nda(current_user)
    return g.nda_accepted


def through_gates() -> bool:
    """Whether the current user has passed every gate (templates show navigation only then)."""
    user_session = g.get("user_session")
    return bool(
        current_user.is_authenticated
        and user_session is not None
        and user_session.mfa_verified
        and nda_accepted()
    )


def enforce_access() -> Response | None:
    """Apply the view's access rule; registered as a `before_request` hook."""
    if request.endpoint is None or request.endpoint == "static":
        return None
    view = current_app.view_functions[request.endpoint]
    rule: AccessRule | None = getattr(view, "access_rule", None)
    if rule is None:
        raise AccessDenied("view declares no access rule")
    if rule.api_scope is not None:
        require_api_key(rule.api_scope)
        return None
    if rule.gate is Gate.PUBLIC:
        return None
    if not current_user.is_authenticated:
        return _redirect_to("auth.login")
    user_session = g.user_session
    if rule.gate >= Gate.SECOND_FACTOR and not user_session.mfa_verified:
        if current_user.totp_enrolled:
            return _redirect_to("auth.second_factor")
        return _redirect_to("auth.setup_second_factor")
    if rule.gate >= Gate.NDA and not nda_accepted():
        return _redirect_to("nda.accept")
    if rule.roles is not None and current_user.role not in rule.roles:
        raise AccessDenied(f"role {current_user.role} may not use {request.endpoint}")
    return None
