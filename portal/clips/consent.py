"""The consent record every clip must carry: the first check of every ingest.

A clip is taken only if the person opted in, the record says when, and its scope covers
human review (people at a vendor listening). Nothing of the clip, its audio included,
is looked at before this check passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from portal.clips.refusals import IngestRefused

HUMAN_REVIEW = "human_review"
SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_SCOPES = 10
# A consent recorded "in the future" by a client whose clock runs a little fast is fine;
# one recorded hours ahead is not a record of anything.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsentRecord:
    """A checked consent record."""

    opt_in: bool
    recorded_at: datetime
    scope: tuple[str, ...]

    @property
    def scope_text(self) -> str:
        """The scope in one canonical form (sorted, comma-separated) for storage and counts."""
        return ",".join(self.scope)


def _invalid(message: str) -> IngestRefused:
    return IngestRefused("consent_invalid", message)


def check_consent(raw: object, now: datetime) -> ConsentRecord:
    """Check the `consent` object of a clip's metadata; raise IngestRefused if it fails.

    Codes: `consent_missing` (no record or no opt-in), `consent_invalid` (unreadable
    record), `consent_scope_insufficient` (scope without human review).
    """
    if not isinstance(raw, dict):
        raise IngestRefused("consent_missing", "The clip carries no consent record.")
    if raw.get("opt_in") is not True:
        raise IngestRefused("consent_missing", "The person did not opt in.")
    recorded = raw.get("recorded_at")
    if not isinstance(recorded, str):
        raise _invalid("consent.recorded_at must be an ISO-8601 timestamp.")
    try:
        recorded_at = datetime.fromisoformat(recorded)
    except ValueError:
        raise _invalid("consent.recorded_at must be an ISO-8601 timestamp.") from None
    recorded_at = (
        recorded_at.replace(tzinfo=UTC) if recorded_at.tzinfo is None else recorded_at.astimezone(UTC)
    )
    if recorded_at > now + CLOCK_SKEW:
        raise _invalid("consent.recorded_at lies in the future.")
    scope = raw.get("scope")
    if (
        not isinstance(scope, list)
        or not 1 <= len(scope) <= MAX_SCOPES
        or not all(isinstance(item, str) and SCOPE_PATTERN.match(item) for item in scope)
    ):
        raise _invalid(
            f"consent.scope must be a list of 1 to {MAX_SCOPES} scope names like {HUMAN_REVIEW!r}."
        )
    if HUMAN_REVIEW not in scope:
        raise IngestRefused(
            "consent_scope_insufficient", f"The consent scope does not include {HUMAN_REVIEW!r}."
        )
    unknown = set(raw) - {"opt_in", "recorded_at", "scope"}
    if unknown:
        raise _invalid(f"consent has unknown fields: {', '.join(sorted(unknown))}.")
    return ConsentRecord(opt_in=True, recorded_at=recorded_at, scope=tuple(sorted(set(scope))))
