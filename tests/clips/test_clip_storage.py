"""Both storage backends: the local directory and an S3-compatible bucket (moto, on 127.0.0.1)."""

from __future__ import annotations

import boto3
import pytest

from portal.clips.models import ClipStatus
from portal.clips.storage import LocalStorage, S3Storage, StorageError, new_object_name
from tests.clips import helpers
from tests.clips.helpers import RAW_SUBJECT, metadata, post_clip


def _s3(endpoint: str, bucket: str) -> S3Storage:
    return S3Storage(bucket, "clips/", boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"))


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "clips")
    return _s3(request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket"))


def test_save_open_delete(storage):
    name = new_object_name()
    storage.save(name, b"sealed bytes")
    with storage.open(name) as handle:
        assert handle.read() == b"sealed bytes"
    storage.delete(name)
    storage.delete(name)
    with pytest.raises(StorageError):
        storage.open(name)


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABCDEF", "a" * 31, "clip-1", ""])
def test_only_opaque_names_are_accepted(storage, name):
    with pytest.raises(StorageError):
        storage.save(name, b"x")


def test_local_files_are_private(tmp_path):
    storage = LocalStorage(tmp_path / "clips")
    name = new_object_name()
    storage.save(name, b"x")
    (path,) = (tmp_path / "clips").rglob(name)
    assert path.stat().st_mode & 0o077 == 0
    assert [p.name for p in (tmp_path / "clips").rglob("*") if p.is_file()] == [name]


def test_ingest_and_erasure_on_s3(request, app_env, s3_endpoint, s3_bucket):
    app_env.update(helpers.s3_env(s3_endpoint, s3_bucket))
    app = request.getfixturevalue("app")
    token = request.getfixturevalue("ingest_token")
    client = app.test_client()

    response = post_clip(client, token, helpers.mp3(1.0, tags=helpers.PLANTED), metadata(), "a.mp3")
    assert response.status_code == 201, response.get_json()
    clip = helpers.clip_row(app, response.get_json()["clip_id"])
    assert helpers.s3_keys(s3_endpoint, s3_bucket) == [f"clips/{clip.storage_name}"]
    assert helpers.stored_objects(app) == []
    plaintext = helpers.decrypt_stored(app, clip)
    assert plaintext.startswith(b"fLaC") and helpers.PLANTED.encode() not in plaintext

    refused = post_clip(client, token, b"not audio", metadata())
    assert refused.status_code == 415
    assert len(helpers.s3_keys(s3_endpoint, s3_bucket)) == 1

    result = app.test_cli_runner().invoke(args=["subjects", "erase", "--source-user-id", RAW_SUBJECT])
    assert result.exit_code == 0, result.output
    assert helpers.s3_keys(s3_endpoint, s3_bucket) == []
    assert helpers.clip_row(app, clip.public_id).status is ClipStatus.ERASED


def test_s3_failure_during_ingest_leaves_no_row(request, app_env, s3_endpoint):
    app_env.update(helpers.s3_env(s3_endpoint, "no-such-bucket"))
    request.getfixturevalue("s3_bucket")
    app = request.getfixturevalue("app")
    token = request.getfixturevalue("ingest_token")
    response = post_clip(app.test_client(), token, helpers.wav(1.0), metadata())
    assert response.status_code == 500
    assert helpers.row_counts(app) == {"clips": 0, "tasks": 0, "clip_vendors": 0}
