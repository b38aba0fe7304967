"""Where encrypted clips live: a local directory or an S3-compatible bucket.

Objects are named by opaque random names only (`new_object_name`), never by anything a
person could be recognised by. The backend is chosen by `PORTAL_STORAGE`; S3 credentials
come from the standard AWS environment variables (or any source boto3 reads), never from
the portal's configuration.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from flask import Flask, current_app

NAME_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class StorageError(Exception):
    """The object store failed or does not hold the named object."""


class Storage(Protocol):
    """Save, open and delete encrypted clip objects by name."""

    def save(self, name: str, data: bytes) -> None: ...

    def open(self, name: str) -> BinaryIO: ...

    def delete(self, name: str) -> None: ...


def new_object_name() -> str:
    """A fresh opaque object name (128 random bits, unrelated to the clip's public id)."""
    return secrets.token_hex(16)


def _checked(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise StorageError("object names are 32 lowercase hex digits")
    return name


class LocalStorage:
    """Objects as files under one directory, fanned out by the first two hex digits."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / _checked(name)[:2] / name

    def save(self, name: str, data: bytes) -> None:
        """Write atomically (temporary file, fsync, rename), readable by the owner only."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except FileNotFoundError:
            raise StorageError(f"no stored object {name}") from None

    def delete(self, name: str) -> None:
        """Remove the object; deleting one that is already gone is not an error."""
        self._path(name).unlink(missing_ok=True)


class S3Storage:
    """Objects in an S3-compatible bucket under a key prefix."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client

    def _key(self, name: str) -> str:
        return self.prefix + _checked(name)

    def save(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def open(self, name: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.NoSuchKey:
            raise StorageError(f"no stored object {name}") from None
        return response["Body"]

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))


def make_storage(app: Flask) -> Storage:
    """Build the backend `app`'s configuration names."""
    config = app.config
    if config["CLIP_STORAGE"] == "s3":
        import boto3  # only S3 deployments pay for importing boto3

        client = boto3.client("s3", endpoint_url=config["S3_ENDPOINT_URL"], region_name=config["S3_REGION"])
        return S3Storage(config["S3_BUCKET"], config["S3_PREFIX"], client)
    return LocalStorage(Path(config["CLIP_STORAGE_PATH"]))


def clip_storage() -> Storage:
    """The current app's clip storage, built on first use."""
    extensions = current_app.extensions
    if "portal.clip_storage" not in extensions:
        extensions["portal.clip_storage"] = make_storage(current_app)
    return extensions["portal.clip_storage"]
