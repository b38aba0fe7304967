"""The metadata that comes with a clip, as DESIGN.md "Stable interface" describes it.

The consent record is checked first; the rest only if it passes. Unknown fields are
refused rather than ignored: a client sending data the portal does not expect is told so
instead of believing it was handled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.clips.consent import ConsentRecord, check_consent
from portal.clips.refusals import IngestRefused

FIELDS = frozenset(
    (
        "source_user_id",
        "device_id",
        "consent",
        "locale",
        "transcript",
        "words",
        "passes",
        "priority",
        "vendors",
        "idempotency_key",
        "gold_transcript",
    )
)
LOCALE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$")
MAX_ID_LENGTH = 256
MAX_TRANSCRIPT = 100_000
MAX_WORDS = 20_000
MAX_WORD_LENGTH = 200
MAX_PASSES = 10
PRIORITY_RANGE = (-1000, 1000)
MAX_VENDORS = 20


@dataclass(frozen=True)
class ClipMetadata:
    """Checked metadata. The raw ids live only as long as the ingest call that reads them."""

    source_user_id: str
    device_id: str
    consent: ConsentRecord
    locale: str
    transcript: str
    words: list[dict[str, Any]] | None
    passes: int
    priority: int
    vendors: tuple[str, ...]
    idempotency_key: str | None
    gold_transcript: str | None = None


def _invalid(message: str) -> IngestRefused:
    return IngestRefused("metadata_invalid", message)


def _identifier(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise _invalid(f"{field} must be a non-empty string of at most {MAX_ID_LENGTH} characters.")
    return value


def _integer(raw: dict[str, Any], field: str, default: int, low: int, high: int) -> int:
    value = raw.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{field} must be an integer from {low} to {high}.")
    return value


def _time(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


def _words(raw: object) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_WORDS:
        raise _invalid(f"words must be a list of at most {MAX_WORDS} entries.")
    words = []
    for index, entry in enumerate(raw):
        if (
            not isinstance(entry, dict)
            or set(entry) != {"word", "start", "end"}
            or not isinstance(entry["word"], str)
            or not 0 < len(entry["word"]) <= MAX_WORD_LENGTH
            or not _time(entry["start"])
            or not _time(entry["end"])
            or entry["end"] < entry["start"]
        ):
            raise _invalid(
                f'words[{index}] must be {{"word": text, "start": seconds, "end": seconds}} '
                "with 0 <= start <= end."
            )
        words.append({"word": entry["word"], "start": float(entry["start"]), "end": float(entry["end"])})
    return words


def parse_metadata(raw: object, now: datetime) -> ClipMetadata:
    """Check a decoded metadata object; raise IngestRefused with a stable code if it fails."""
    if not isinstance(raw, dict):
        raise _invalid("metadata must be a JSON object.")
    consent = check_consent(raw.get("consent"), now)
    unknown = set(raw) - FIELDS
    if unknown:
        raise _invalid(f"Unknown metadata fields: {', '.join(sorted(unknown))}.")
    locale = raw.get("locale")
    if not isinstance(locale, str) or not LOCALE_PATTERN.match(locale):
        raise _invalid("locale must be a language tag such as 'en-US'.")
    transcript = raw.get("transcript")
    if not isinstance(transcript, str) or len(transcript) > MAX_TRANSCRIPT:
        raise _invalid(f"transcript must be a string of at most {MAX_TRANSCRIPT} characters.")
    vendors = raw.get("vendors")
    if (
        not isinstance(vendors, list)
        or not 1 <= len(vendors) <= MAX_VENDORS
        or not all(isinstance(name, str) and name.strip() for name in vendors)
    ):
        raise _invalid(f"vendors must be a list of 1 to {MAX_VENDORS} vendor names.")
    idempotency_key = raw.get("idempotency_key")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= MAX_ID_LENGTH
    ):
        raise _invalid(f"idempotency_key must be a string of 1 to {MAX_ID_LENGTH} characters.")
    gold_transcript = raw.get("gold_transcript")
    if gold_transcript is not None and (
        not isinstance(gold_transcript, str)
        or not gold_transcript.strip()
        or len(gold_transcript) > MAX_TRANSCRIPT
    ):
        raise _invalid(f"gold_transcript must be a non-empty string of at most {MAX_TRANSCRIPT} characters.")
    return ClipMetadata(
        source_user_id=_identifier(raw, "source_user_id"),
        device_id=_identifier(raw, "device_id"),
        consent=consent,
        locale=locale,
        transcript=transcript,
        words=_words(raw.get("words")),
        passes=_integer(raw, "passes", 1, 1, MAX_PASSES),
        priority=_integer(raw, "priority", 0, *PRIORITY_RANGE),
        vendors=tuple(dict.fromkeys(" ".join(name.split()) for name in vendors)),
        idempotency_key=idempotency_key,
        gold_transcript=gold_transcript,
    )
