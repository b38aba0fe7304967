"""Creating, revoking and checking API keys.

A key is `vap_` followed by 256 random bits (base64url); only its SHA-256 is stored, so
the database cannot give a key away. A fast hash is enough here: unlike a password, the
token has full entropy and cannot be guessed from its hash. The first 12 characters
(`prefix`) name a key in lists and in the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import sqlalchemy as sa
from flask import g, request

from portal.api.models import ApiKey, ApiScope
from portal.audit.context import request_origin
from portal.audit.models import Outcome
from portal.audit.services import Actor, record_event
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db

TOKEN_PREFIX = "vap_"  # noqa: S105 (the public start of every key, not a secret)
PREFIX_LENGTH = 12
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{1,79}$")


def hash_token(token: str) -> str:
    """What is stored of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_key(name: str, scope: ApiScope, actor: Actor, now: datetime) -> tuple[ApiKey, str]:
    """Create a key; return it with the token, which is shown once and never stored."""
    name = " ".join(name.split())
    if not NAME_PATTERN.match(name):
        raise PortalError("apikey_name_invalid", "Key names are 2–80 letters, digits, spaces or ._-")
    if db.session.scalar(sa.select(ApiKey.id).where(ApiKey.name == name)):
        raise PortalError("apikey_name_taken", f"An API key named {name!r} already exists.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name, scope=scope, key_hash=hash_token(token), prefix=token[:PREFIX_LENGTH], created_at=now
    )
    db.session.add(key)
    db.session.flush()
    record_event(
        actor,
        "apikeys.created",
        target=f"apikey:{key.id}",
        details={"name": name, "scope": scope.value, "prefix": key.prefix},
    )
    return key, token


def revoke_api_key(name: str, actor: Actor, now: datetime) -> ApiKey:
    """Revoke the key named `name`; it stops working at the next request."""
    key = db.session.scalar(sa.select(ApiKey).where(ApiKey.name == " ".join(name.split())))
    if key is None:
        raise PortalError("apikey_unknown", f"There is no API key named {name!r}.", 404)
    if key.revoked_at is None:
        key.revoked_at = now
        record_event(actor, "apikeys.revoked", target=f"apikey:{key.id}", details={"name": key.name})
    return key


def list_api_keys() -> list[ApiKey]:
    """Every key, newest first."""
    return list(db.session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))


def api_actor(key: ApiKey) -> Actor:
    """The audit actor for a request made with `key`."""
    origin = request_origin()
    return Actor(label=f"apikey:{key.name}", role="service", ip=origin.ip, user_agent=origin.user_agent)


def _refuse(
    actor: Actor, reason: str, status: int, code: str, message: str, prefix: str | None
) -> PortalError:
    """Record a refused API request in its own transaction and return the error to raise."""
    db.session.rollback()
    record_event(
        actor,
        "api.access_denied",
        outcome=Outcome.DENIED,
        details={"reason": reason, "prefix": prefix, "method": request.method, "path": request.path[:300]},
    )
    db.session.commit()
    return PortalError(code, message, status)


def require_api_key(scope: str) -> ApiKey:
    """Authenticate this request's Bearer key for `scope`; called by `enforce_access`.

    No key, an unknown key or a revoked key answer 401; a key of another scope answers
    403. Every refusal is audited (with the key's prefix when it looks like one of ours,
    never more of what was sent).
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    origin = request_origin()
    prefix = token[:PREFIX_LENGTH] if token.startswith(TOKEN_PREFIX) else None
    if scheme.lower() != "bearer" or not token:
        raise _refuse(
            origin, "missing", 401, "api_key_missing", "Send an API key: Authorization: Bearer <key>.", None
        )
    key = db.session.scalar(sa.select(ApiKey).where(ApiKey.key_hash == hash_token(token)))
    if key is None or key.revoked_at is not None:
        reason = "unknown" if key is None else "revoked"
        raise _refuse(origin, reason, 401, "api_key_invalid", "The API key is unknown or revoked.", prefix)
    if key.scope.value != scope:
        raise _refuse(
            api_actor(key),
            "scope",
            403,
            "api_key_scope",
            f"This API key may not be used here (it has scope {key.scope.value!r}).",
            key.prefix,
        )
    key.last_used_at = utcnow()
    g.api_key = key
    return key
