"""The two refusals services and hooks raise; `portal.errors` renders them."""

from __future__ import annotations


class PortalError(Exception):
    """A refusal with a stable code and a message that is safe to show to the user."""

    status = 400

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status


class AccessDenied(Exception):
    """The request may not do what it asks; rendered as a 403 and audited."""

    def __init__(self, reason: str, target: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.target = target
