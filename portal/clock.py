"""The portal's single source of the current time.

Every rule that depends on time (session expiry, TOTP steps, lockouts, lease ends) asks
`utcnow()` so that tests can move time forward instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)
