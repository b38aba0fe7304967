"""Configuration from PORTAL_* variables: production refuses to run without its secrets."""

from __future__ import annotations

import shutil
import stat
import threading
from pathlib import Path

import pytest

from portal import create_app
from portal import keys as keys_module
from portal.config import ConfigError, load_config
from portal.keys import keyed_digest, load_keys


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "PORTAL_LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


def test_production_refuses_to_start_without_keys(tmp_path):
    keys_dir = tmp_path / "empty-keys"
    with pytest.raises(ConfigError, match="must be set"):
        create_app(_env(tmp_path, PORTAL_ENV="production", PORTAL_KEYS_DIR=str(keys_dir)))
    assert not keys_dir.exists() or list(keys_dir.iterdir()) == [], "production generated a key"


def test_production_refuses_each_missing_key(tmp_path):
    complete = tmp_path / "complete"
    load_keys(complete, True, {})
    key_files = sorted(path.name for path in complete.iterdir())
    assert {"secret_key", "field.key", "audit-signing.pem"} <= set(key_files)
    for missing in key_files:
        partial = tmp_path / f"without-{missing}"
        shutil.copytree(complete, partial)
        (partial / missing).unlink()
        with pytest.raises(ConfigError, match="must be set"):
            create_app(_env(tmp_path, PORTAL_ENV="production", PORTAL_KEYS_DIR=str(partial)))
        assert not (partial / missing).exists()


def test_production_starts_with_its_keys(tmp_path):
    keys_dir = tmp_path / "keys"
    load_keys(keys_dir, True, {})
    app = create_app(_env(tmp_path, PORTAL_ENV="production", PORTAL_KEYS_DIR=str(keys_dir)))
    assert app.secret_key == (keys_dir / "secret_key").read_bytes().strip()
    assert app.config["SECURE_COOKIES"] and app.config["HSTS"]
    assert app.config["AUTH_COOKIE_NAME"] == "__Host-portal_session"
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-portal_csrf"
    assert not app.config["TESTING"]


def test_development_generates_private_key_files(tmp_path):
    app = create_app(_env(tmp_path, PORTAL_ENV="development"))
    keys_dir = tmp_path / "instance" / "keys"
    files = list(keys_dir.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert app.secret_key == (keys_dir / "secret_key").read_bytes().strip()
    assert not app.config["SECURE_COOKIES"] and not app.config["HSTS"]
    assert app.config["AUTH_COOKIE_NAME"] == "portal_session"
    # A second start reuses the keys rather than replacing them.
    assert create_app(_env(tmp_path, PORTAL_ENV="development")).secret_key == app.secret_key


def test_processes_starting_together_share_the_keys_one_of_them_generated(tmp_path):
    """A process that finds a key missing, but loses the race to write it, uses the winner's."""
    keys_dir = tmp_path / "keys"
    winner = load_keys(tmp_path / "winner", True, {})
    real_generate = keys_module._new_secret_key

    def generate_while_another_process_writes_its_key() -> bytes:
        keys_dir.mkdir(exist_ok=True)
        (keys_dir / "secret_key").write_bytes(winner.secret_key)
        return real_generate()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys_module, "_new_secret_key", generate_while_another_process_writes_its_key)
        loser = load_keys(keys_dir, True, {})
    assert loser.secret_key == winner.secret_key
    assert sorted(path.name for path in keys_dir.iterdir()) == sorted(
        path.name for path in (tmp_path / "winner").iterdir()
    )


def test_sixteen_starts_at_once_agree_on_every_key(tmp_path):
    start = threading.Barrier(16)
    loaded = []

    def begin() -> None:
        start.wait()
        loaded.append(load_keys(tmp_path, True, {}))

    threads = [threading.Thread(target=begin) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 16
    assert len({(keys.secret_key, keys.field_key, keys.pseudonym_key) for keys in loaded}) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORTAL_ENV", "prod"),
        ("PORTAL_SESSION_IDLE_MINUTES", "fifteen"),
        ("PORTAL_SECURE_COOKIES", "maybe"),
    ],
)
def test_invalid_settings_are_refused(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_config(_env(tmp_path, **{variable: value}))


def test_defaults_match_the_design(tmp_path):
    config = load_config(_env(tmp_path))
    assert config["PORTAL_ENV"] == "development"
    assert (config["SESSION_IDLE_MINUTES"], config["SESSION_ABSOLUTE_HOURS"]) == (15, 12)
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert config["SESSION_COOKIE_HTTPONLY"] and config["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert config["ARGON2_TIME_COST"] >= 3 and config["ARGON2_MEMORY_COST"] >= 65536


def test_keyed_digests_are_stable_and_kept_apart_by_domain():
    """Stored pseudonyms are recomputed to find a person's clips (erasure): the formula must not drift."""
    key = bytes(range(32))
    assert keyed_digest(key, b"subject", "user-1").hex() == (
        "86e05b30cb7c4e653ae40b486234bedd4c9948c94f9a0b79bb08634c117a2fa2"
    )
    assert keyed_digest(key, b"device", "user-1") != keyed_digest(key, b"subject", "user-1")
    assert keyed_digest(bytes(32), b"subject", "user-1") != keyed_digest(key, b"subject", "user-1")
