"""Envelope encryption of clip audio: a fresh AES-256-GCM data key per clip.

The stored object is `MAGIC | nonce | ciphertext+tag`, encrypted under the clip's data
key with the clip's public id as associated data, so an object copied under another
clip's name does not decrypt. The data key is kept only wrapped (AES-256-GCM under the
master key, again bound to the clip id) in the clip's row. Destroying that one value is
what erasure means: every copy of the object, in any storage or backup, becomes noise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"VAPC\x01"
WRAP_VERSION = b"\x01"
NONCE_BYTES = 12
AUDIO_CONTEXT = b"vap-clip-audio:v1:"
KEY_CONTEXT = b"vap-clip-key:v1:"


class IntegrityError(Exception):
    """A stored clip or wrapped key failed authentication: tampered, truncated or misplaced."""


@dataclass(frozen=True)
class SealedClip:
    """What `seal` produces: the object to store and the wrapped key to keep in the row."""

    blob: bytes
    wrapped_key: bytes


def seal(audio: bytes, clip_id: str, master_key: bytes) -> SealedClip:
    """Encrypt `audio` under a new data key and wrap that key with `master_key`."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_BYTES)
    blob = MAGIC + nonce + AESGCM(data_key).encrypt(nonce, audio, AUDIO_CONTEXT + clip_id.encode())
    wrap_nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(master_key).encrypt(wrap_nonce, data_key, KEY_CONTEXT + clip_id.encode())
    return SealedClip(blob=blob, wrapped_key=WRAP_VERSION + wrap_nonce + wrapped)


def unwrap_key(wrapped_key: bytes, clip_id: str, master_key: bytes) -> bytes:
    """Recover a clip's data key; raises IntegrityError if the wrapped value was altered."""
    if len(wrapped_key) != 1 + NONCE_BYTES + 32 + 16 or wrapped_key[:1] != WRAP_VERSION:
        raise IntegrityError("wrapped key has an unknown format")
    nonce, body = wrapped_key[1 : 1 + NONCE_BYTES], wrapped_key[1 + NONCE_BYTES :]
    try:
        return AESGCM(master_key).decrypt(nonce, body, KEY_CONTEXT + clip_id.encode())
    except InvalidTag:
        raise IntegrityError("wrapped key failed authentication") from None


def open_sealed(blob: bytes, clip_id: str, wrapped_key: bytes, master_key: bytes) -> bytes:
    """Decrypt a stored object; raises IntegrityError on any change to it or to its key."""
    data_key = unwrap_key(wrapped_key, clip_id, master_key)
    if len(blob) < len(MAGIC) + NONCE_BYTES + 16 or not blob.startswith(MAGIC):
        raise IntegrityError("stored clip has an unknown format")
    nonce, body = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES], blob[len(MAGIC) + NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, AUDIO_CONTEXT + clip_id.encode())
    except InvalidTag:
        raise IntegrityError("stored clip failed authentication") from None
