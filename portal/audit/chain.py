"""The hash chain's canonical encoding, hashing and checkpoint signatures.

This module depends on nothing but the standard library and `cryptography`, so that the
offline verifier (`python -m portal.audit.verify`) runs from an export and a public key
alone, without the portal's configuration or database.

Each link is `SHA-256(prev_hash + "\n" + digest)` where `digest` is the SHA-256 of the
event's canonical JSON. Hashing the digest rather than the event itself lets a filtered
export replace an event it leaves out by its digest alone (a "link" record): the verifier
still recomputes every hash of the chain, and learns nothing of the event. A link that
carried only its hash would not do: a forger could then alter the event before it and
keep every later hash unchanged (see docs/audit.md).

Three kinds of signature cover (sequence number, head hash, signing time), told apart by
a domain prefix: checkpoints, stored in the database as the chain grows; the seal that
ends a full export; and the seal that ends a filtered export, which also covers the
selection (the filters, the first sequence number, how many events and which). A stored
checkpoint therefore cannot be passed off as the seal of an export cut short at that
point, nor a full export's seal as a filtered one's, or the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

GENESIS_HASH = "0" * 64

EVENT_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor",
    "role",
    "vendor",
    "session_ref",
    "ip",
    "user_agent",
    "action",
    "target",
    "outcome",
    "details",
)

CHECKPOINT_DOMAIN = b"vendor-annotation-portal/audit-checkpoint/v1"
SEAL_DOMAIN = b"vendor-annotation-portal/audit-export-seal/v1"
SELECTION_SEAL_DOMAIN = b"vendor-annotation-portal/audit-export-seal/selection/v1"


def canonical_json(value: Any) -> str:
    """Encode `value` the one way the chain accepts: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_time(moment: datetime) -> str:
    """Render a timestamp for hashing and export: UTC, microseconds, trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_event(event: Mapping[str, Any]) -> str:
    """The canonical JSON of an event: exactly the fields in EVENT_FIELDS, nothing else."""
    return canonical_json({name: event[name] for name in EVENT_FIELDS})


def canonical_event_around(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """The event's canonical JSON cut where its time and sequence number go.

    For the event at time `t` with sequence number `seq`, `canonical_event` equals
    `before_time + format_time(t) + before_seq + str(seq) + after_seq`. The appender on
    PostgreSQL sends the three pieces and lets the database fill in both values, and
    hash, in the one statement that holds the chain's head (`portal.audit.services`).
    """

    def members(names: list[str]) -> str:
        return canonical_json({name: event[name] for name in names})[1:-1]

    names = sorted(EVENT_FIELDS)  # the order in which canonical_json writes them
    at_time, at_seq = names.index("occurred_at"), names.index("seq")
    before_time = "{" + members(names[:at_time]) + ',"occurred_at":"'
    before_seq = '",' + members(names[at_time + 1 : at_seq]) + ',"seq":'
    after_seq = "," + members(names[at_seq + 1 :]) + "}"
    return before_time, before_seq, after_seq


def digest_text(canonical: str) -> str:
    """The digest of an event given its canonical JSON (see `canonical_event`)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def event_digest(event: Mapping[str, Any]) -> str:
    """SHA-256 of the event's canonical JSON: what a link record carries in its place."""
    return digest_text(canonical_event(event))


def link_hash(prev_hash: str, digest: str) -> str:
    """One link of the chain: SHA-256 over the previous hash, a newline and the digest.

    Raises ValueError (UnicodeEncodeError) for non-ASCII input, which no hash or digest is.
    """
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + digest.encode("ascii")).hexdigest()


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """Hash an event: the link from `prev_hash` through the event's digest.

    Only the fields in EVENT_FIELDS are covered; `event` may carry others (its own hash).
    """
    return link_hash(prev_hash, event_digest(event))


def checkpoint_message(
    seq: int,
    head_hash: str,
    signed_at: str,
    domain: bytes = CHECKPOINT_DOMAIN,
    selection: Mapping[str, Any] | None = None,
) -> bytes:
    """The exact bytes a checkpoint (or, with a seal domain, an export seal) signature covers.

    A filtered export's seal also covers its `selection`, as one line of canonical JSON.
    """
    parts = [domain, str(seq).encode(), head_hash.encode("ascii"), signed_at.encode()]
    if selection is not None:
        parts.append(canonical_json(selection).encode("utf-8"))
    return b"\n".join(parts)


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint that names the key a checkpoint was signed with."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_checkpoint(
    private_key: Ed25519PrivateKey,
    seq: int,
    head_hash: str,
    signed_at: str,
    domain: bytes = CHECKPOINT_DOMAIN,
    selection: Mapping[str, Any] | None = None,
) -> str:
    """Sign a checkpoint (or a seal) and return the base64 signature."""
    signature = private_key.sign(checkpoint_message(seq, head_hash, signed_at, domain, selection))
    return base64.b64encode(signature).decode("ascii")


def checkpoint_signature_valid(
    public_key: Ed25519PublicKey,
    seq: int,
    head_hash: str,
    signed_at: str,
    signature: str,
    domain: bytes = CHECKPOINT_DOMAIN,
    selection: Mapping[str, Any] | None = None,
) -> bool:
    """Tell whether `signature` is the key's signature over this checkpoint (or seal).

    Values read from a damaged export may be of any type; they are simply not valid.
    """
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True),
            checkpoint_message(seq, head_hash, signed_at, domain, selection),
        )
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        return False
    return True


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM; raise ValueError for anything else."""
    try:
        key = serialization.load_pem_public_key(pem)
    except UnsupportedAlgorithm as error:
        raise ValueError(f"unsupported key type ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key
