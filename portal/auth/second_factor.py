"""TOTP (RFC 6238) and recovery codes: the second gate.

TOTP secrets are encrypted at rest with AES-256-GCM under the field key, bound to the user
id so a ciphertext copied onto another row does not decrypt. Replays are refused by one
conditional UPDATE: a time step is accepted only if it is greater than the last step that
signed this user in, so two requests racing with the same code cannot both win.
Recovery codes carry 80 random bits and are stored as HMAC-SHA256 under a key derived
from the field key; using one is a conditional UPDATE as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portal.auth.models import RecoveryCode, User
from portal.extensions import db
from portal.keys import portal_keys

ISSUER = "Vendor Annotation Portal"
RECOVERY_CODE_COUNT = 10
STEP_SECONDS = 30
VALID_WINDOW = 1


def _aad(user: User) -> bytes:
    return f"user:{user.id}:totp".encode()


def encrypt_secret(user: User, secret: str) -> bytes:
    """Encrypt a base32 TOTP secret for storage on `user`'s row."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(portal_keys().field_key).encrypt(nonce, secret.encode(), _aad(user))


def decrypt_secret(user: User) -> str:
    """Decrypt `user`'s TOTP secret; raises InvalidTag if the row was tampered with."""
    blob = user.totp_secret
    if blob is None:
        raise ValueError("user has no TOTP secret")
    return AESGCM(portal_keys().field_key).decrypt(blob[:12], blob[12:], _aad(user)).decode()


def new_secret() -> str:
    """A fresh 160-bit base32 secret."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """Return the time step (±1 around `now`) whose code equals `code`, or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def claim_step(user: User, step: int) -> bool:
    """Record `step` as used if it is newer than the last used one (atomic replay guard)."""
    result = db.session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .where(sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        user.totp_last_step = step
        return True
    return False


def _recovery_key() -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"portal/recovery-codes/v1").derive(
        portal_keys().field_key
    )


def normalise_recovery_code(code: str) -> str:
    """Strip what people add when typing a code: spaces, dashes, lower case."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def recovery_code_hash(code: str) -> str:
    """The keyed hash under which a recovery code is stored."""
    digest = hmac.new(_recovery_key(), normalise_recovery_code(code).encode(), hashlib.sha256)
    return digest.hexdigest()


def issue_recovery_codes(user: User) -> list[str]:
    """Replace `user`'s recovery codes with ten new ones and return them (shown once)."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(10)).decode()
        codes.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:12]}-{raw[12:16]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=recovery_code_hash(raw)))
    db.session.flush()
    return codes


def use_recovery_code(user: User, code: str, now: datetime) -> bool:
    """Spend one unused recovery code of `user`; False if none matches."""
    if len(normalise_recovery_code(code)) != 16:
        return False
    result = db.session.execute(
        sa.update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id)
        .where(RecoveryCode.code_hash == recovery_code_hash(code))
        .where(RecoveryCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def remaining_recovery_codes(user: User) -> int:
    """How many unused recovery codes `user` has left."""
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )
