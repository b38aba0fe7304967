"""Keyed pseudonyms for the identifiers a clip arrives with.

Source user ids, device ids and idempotency keys become HMAC-SHA256 values under the
pseudonym key (`portal.keys`), each kind in its own domain so that equal strings of
different kinds never share a pseudonym. The raw values are used for this and dropped:
they are stored nowhere and logged nowhere. Whoever holds the database but not the key
cannot reverse a pseudonym or test a guess; an erasure request recomputes it.
"""

from __future__ import annotations

from portal.keys import keyed_digest, portal_keys


def _pseudonym(domain: bytes, value: str) -> str:
    return keyed_digest(portal_keys().pseudonym_key, domain, value.strip()).hex()


def subject_pseudonym(source_user_id: str) -> str:
    """The pseudonym of the person a clip was recorded from."""
    return _pseudonym(b"subject", source_user_id)


def device_pseudonym(device_id: str) -> str:
    """The pseudonym of the device a clip was recorded on."""
    return _pseudonym(b"device", device_id)


def idempotency_digest(idempotency_key: str) -> str:
    """What is stored of a client's idempotency key (it may embed the client's own ids)."""
    return _pseudonym(b"idempotency", idempotency_key)
