"""The stable error codes of a refused clip, with the HTTP status each one answers with.

Clients and scripts rely on these codes (DESIGN.md, "Stable interface"): add new ones,
never rename or reuse one.
"""

from __future__ import annotations

from portal.exceptions import PortalError

STATUS_BY_CODE = {
    "metadata_invalid": 400,
    "audio_missing": 400,
    "consent_missing": 422,
    "consent_invalid": 422,
    "consent_scope_insufficient": 422,
    "vendor_unknown": 422,
    "vendor_inactive": 422,
    "idempotency_key_conflict": 409,
    "audio_too_large": 413,
    "audio_too_long": 422,
    "audio_empty": 422,
    "audio_unsupported_format": 415,
    "audio_corrupt": 422,
}


class IngestRefused(PortalError):
    """A clip the portal does not take; nothing of it is kept, and the refusal is audited."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, STATUS_BY_CODE[code])
