"""Envelope encryption: round trip, and every alteration refused."""

from __future__ import annotations

import os

import pytest

from portal.clips import crypto

MASTER = os.urandom(32)
AUDIO = b"fLaC" + os.urandom(5000)
CLIP = "0123456789abcdef0123456789abcdef"


def test_round_trip():
    sealed = crypto.seal(AUDIO, CLIP, MASTER)
    assert AUDIO not in sealed.blob and AUDIO[4:64] not in sealed.blob
    assert crypto.open_sealed(sealed.blob, CLIP, sealed.wrapped_key, MASTER) == AUDIO


def test_every_clip_gets_its_own_key_and_nonce():
    first, second = crypto.seal(AUDIO, CLIP, MASTER), crypto.seal(AUDIO, CLIP, MASTER)
    assert first.blob != second.blob and first.wrapped_key != second.wrapped_key
    assert crypto.unwrap_key(first.wrapped_key, CLIP, MASTER) != crypto.unwrap_key(
        second.wrapped_key, CLIP, MASTER
    )


@pytest.mark.parametrize("position", [0, 4, 5, 16, 17, 100, -17, -1])
def test_a_flipped_byte_in_the_object_is_refused(position):
    sealed = crypto.seal(AUDIO, CLIP, MASTER)
    tampered = bytearray(sealed.blob)
    tampered[position] ^= 0x80
    with pytest.raises(crypto.IntegrityError):
        crypto.open_sealed(bytes(tampered), CLIP, sealed.wrapped_key, MASTER)


@pytest.mark.parametrize("position", [0, 1, 13, -1])
def test_a_flipped_byte_in_the_wrapped_key_is_refused(position):
    sealed = crypto.seal(AUDIO, CLIP, MASTER)
    tampered = bytearray(sealed.wrapped_key)
    tampered[position] ^= 0x01
    with pytest.raises(crypto.IntegrityError):
        crypto.open_sealed(sealed.blob, CLIP, bytes(tampered), MASTER)


def test_truncation_swapping_and_the_wrong_master_key_are_refused():
    sealed = crypto.seal(AUDIO, CLIP, MASTER)
    other = crypto.seal(AUDIO, "f" * 32, MASTER)
    for blob, clip_id, wrapped, master in (
        (sealed.blob[:-1], CLIP, sealed.wrapped_key, MASTER),
        (sealed.blob[:10], CLIP, sealed.wrapped_key, MASTER),
        (other.blob, CLIP, sealed.wrapped_key, MASTER),
        (sealed.blob, "f" * 32, sealed.wrapped_key, MASTER),
        (sealed.blob, CLIP, other.wrapped_key, MASTER),
        (sealed.blob, CLIP, sealed.wrapped_key, os.urandom(32)),
    ):
        with pytest.raises(crypto.IntegrityError):
            crypto.open_sealed(blob, clip_id, wrapped, master)
