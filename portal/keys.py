"""Secrets: read from the environment or key files, generated only for local development.

Each secret comes from `PORTAL_<NAME>` (the value itself), else from the file named by
`PORTAL_<NAME>_FILE`, else from `<PORTAL_KEYS_DIR>/<file>`. Outside production a missing
file is generated (mode 0600) so that `make run` works on a fresh clone; in production a
missing secret stops the portal from starting. Secrets never live in the repository or
in the database.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app

from portal.config import ConfigError


@dataclass(frozen=True)
class Keys:
    """The secrets one portal process works with.

    `pseudonym_key` keys the HMAC that turns source user and device ids into pseudonyms;
    `master_key` wraps each clip's data key. Both are 32 bytes, base64 in their files.
    """

    secret_key: bytes
    field_key: bytes
    audit_signing_key: Ed25519PrivateKey
    pseudonym_key: bytes
    master_key: bytes


def keyed_digest(key: bytes, domain: bytes, value: str) -> bytes:
    """HMAC-SHA256 of `value` under `key`, in its own `domain`.

    Each use of a key (a subject's pseudonym, an annotator's, the review sample) names its
    domain, so that equal values in two uses never give the same digest.
    """
    return hmac.new(key, domain + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()


def _new_secret_key() -> bytes:
    return secrets.token_urlsafe(48).encode()


def _new_field_key() -> bytes:
    return base64.b64encode(secrets.token_bytes(32))


def _read_aes_key(
    name: str, filename: str, keys_dir: Path, may_generate: bool, env: Mapping[str, str]
) -> bytes:
    key = base64.b64decode(_read_secret(name, filename, _new_field_key, keys_dir, may_generate, env))
    if len(key) != 32:
        raise ConfigError(f"PORTAL_{name} must be 32 bytes, base64-encoded")
    return key


def _new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read_secret(
    name: str,
    filename: str,
    generate: Callable[[], bytes],
    keys_dir: Path,
    may_generate: bool,
    env: Mapping[str, str],
) -> bytes:
    variable = f"PORTAL_{name}"
    if env.get(variable):
        return env[variable].encode()
    path = Path(env.get(f"{variable}_FILE") or keys_dir / filename)
    if not path.exists():
        if not may_generate:
            raise ConfigError(f"{variable} or {variable}_FILE must be set (no key file at {path})")
        _create_once(path, generate)
    return path.read_bytes().strip()


def _create_once(path: Path, generate: Callable[[], bytes]) -> None:
    """Write a new private key file at `path` unless another process got there first.

    Processes that start together (gunicorn workers, a benchmark's writers) may all find
    the key missing. The file appears whole or not at all, as a hard link to a finished
    private file, and every process then reads the one that won.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, unfinished = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(generate())
        with contextlib.suppress(FileExistsError):
            os.link(unfinished, path)
    finally:
        os.unlink(unfinished)


def load_keys(keys_dir: Path, may_generate: bool, env: Mapping[str, str] | None = None) -> Keys:
    """Load every secret the portal needs, generating missing ones when allowed."""
    env = os.environ if env is None else env
    secret_key = _read_secret("SECRET_KEY", "secret_key", _new_secret_key, keys_dir, may_generate, env)
    field_key = base64.b64decode(
        _read_secret("FIELD_KEY", "field.key", _new_field_key, keys_dir, may_generate, env)
    )
    if len(field_key) != 32:
        raise ConfigError("PORTAL_FIELD_KEY must be 32 bytes, base64-encoded")
    signing_pem = _read_secret(
        "AUDIT_SIGNING_KEY", "audit-signing.pem", _new_signing_key, keys_dir, may_generate, env
    )
    signing_key = serialization.load_pem_private_key(signing_pem, password=None)
    if not isinstance(signing_key, Ed25519PrivateKey):
        raise ConfigError("PORTAL_AUDIT_SIGNING_KEY must be an Ed25519 private key")
    return Keys(
        secret_key=secret_key,
        field_key=field_key,
        audit_signing_key=signing_key,
        pseudonym_key=_read_aes_key("PSEUDONYM_KEY", "pseudonym.key", keys_dir, may_generate, env),
        master_key=_read_aes_key("MASTER_KEY", "master.key", keys_dir, may_generate, env),
    )


def portal_keys() -> Keys:
    """Return the keys loaded by `create_app` for the current application."""
    return current_app.extensions["portal.keys"]
