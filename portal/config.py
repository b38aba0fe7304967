"""Configuration read from `PORTAL_*` environment variables, and nothing else.

Every setting is documented in the README. Secrets are not settings: they come from
`portal.keys`, which reads them from the environment or key files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENVIRONMENTS = ("development", "production", "testing")


class ConfigError(RuntimeError):
    """Raised when the environment describes a configuration the portal refuses to run with."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}")
    return value


STORAGE_BACKENDS = ("local", "s3")


def load_config(env: Mapping[str, str] | None = None) -> dict[str, object]:
    """Build the Flask config mapping from `env` (default: the process environment).

    Production mode turns on everything that plain-http local development cannot have
    (Secure and `__Host-` cookies, HSTS) and refuses to generate missing keys.
    """
    env = os.environ if env is None else env
    mode = env.get("PORTAL_ENV", "development")
    if mode not in ENVIRONMENTS:
        raise ConfigError(f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {mode!r}")
    production = mode == "production"
    instance_path = Path(env.get("PORTAL_INSTANCE_PATH", PROJECT_ROOT / "instance"))
    secure = _bool(env, "PORTAL_SECURE_COOKIES", production)
    storage = env.get("PORTAL_STORAGE", "local")
    if storage not in STORAGE_BACKENDS:
        raise ConfigError(f"PORTAL_STORAGE must be one of {', '.join(STORAGE_BACKENDS)}, got {storage!r}")
    if storage == "s3" and not env.get("PORTAL_S3_BUCKET"):
        raise ConfigError("PORTAL_STORAGE=s3 needs PORTAL_S3_BUCKET")
    cookie_prefix = "__Host-" if secure else ""
    return {
        "PORTAL_ENV": mode,
        "INSTANCE_PATH": instance_path,
        "DATABASE_URL": env.get("PORTAL_DATABASE_URL", f"sqlite:///{instance_path / 'portal.sqlite3'}"),
        "KEYS_DIR": Path(env.get("PORTAL_KEYS_DIR", instance_path / "keys")),
        "GENERATE_MISSING_KEYS": not production,
        "SECURE_COOKIES": secure,
        "HSTS": _bool(env, "PORTAL_HSTS", production),
        "AUTH_COOKIE_NAME": f"{cookie_prefix}portal_session",
        "SESSION_COOKIE_NAME": f"{cookie_prefix}portal_csrf",
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_IDLE_MINUTES": _int(env, "PORTAL_SESSION_IDLE_MINUTES", 15),
        "SESSION_ABSOLUTE_HOURS": _int(env, "PORTAL_SESSION_ABSOLUTE_HOURS", 12),
        "PENDING_SIGN_IN_MINUTES": _int(env, "PORTAL_PENDING_SIGN_IN_MINUTES", 10),
        "LOCKOUT_THRESHOLD": _int(env, "PORTAL_LOCKOUT_THRESHOLD", 10),
        "LOCKOUT_MINUTES": _int(env, "PORTAL_LOCKOUT_MINUTES", 15),
        "RATELIMIT_STORAGE_URI": env.get("PORTAL_RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "SIGN_IN_RATE_LIMIT_PER_IP": env.get("PORTAL_SIGN_IN_RATE_LIMIT_PER_IP", "30/minute"),
        "SIGN_IN_RATE_LIMIT_PER_ACCOUNT": env.get("PORTAL_SIGN_IN_RATE_LIMIT_PER_ACCOUNT", "10/minute"),
        "ARGON2_TIME_COST": _int(env, "PORTAL_ARGON2_TIME_COST", 3),
        "ARGON2_MEMORY_COST": _int(env, "PORTAL_ARGON2_MEMORY_COST", 65536),
        "ARGON2_PARALLELISM": _int(env, "PORTAL_ARGON2_PARALLELISM", 4),
        "AUDIT_CHECKPOINT_EVERY": _int(env, "PORTAL_AUDIT_CHECKPOINT_EVERY", 1000),
        "AUDIT_STEP_UP_MINUTES": _int(env, "PORTAL_AUDIT_STEP_UP_MINUTES", 5),
        "AUDIT_ANOMALY_DAYS": _int(env, "PORTAL_AUDIT_ANOMALY_DAYS", 7),
        "AUDIT_STREAMS_PER_TASK": _int(env, "PORTAL_AUDIT_STREAMS_PER_TASK", 3),
        "AUDIT_STREAMS_MIN": _int(env, "PORTAL_AUDIT_STREAMS_MIN", 5),
        "AUDIT_FULL_REPLAYS": _int(env, "PORTAL_AUDIT_FULL_REPLAYS", 3),
        "AUDIT_DENIED_ATTEMPTS": _int(env, "PORTAL_AUDIT_DENIED_ATTEMPTS", 10),
        "AUDIT_OFF_HOURS_EVENTS": _int(env, "PORTAL_AUDIT_OFF_HOURS_EVENTS", 1),
        "PROXY_HOPS": _int(env, "PORTAL_PROXY_HOPS", 0),
        "LOG_LEVEL": env.get("PORTAL_LOG_LEVEL", "INFO"),
        "WTF_CSRF_TIME_LIMIT": None,
        # Flask-WTF's HTTPS check wants a same-origin Referer, which `Referrer-Policy: no-referrer`
        # stops browsers from sending: it would refuse every form. The token (in a __Host- cookie
        # session) and SameSite cookies are the CSRF defence.
        "WTF_CSRF_SSL_STRICT": False,
        "MAX_CONTENT_LENGTH": _int(env, "PORTAL_MAX_REQUEST_BYTES", 64 * 1024 * 1024),
        "TESTING": mode == "testing",
        "CLIP_STORAGE": storage,
        "CLIP_STORAGE_PATH": Path(env.get("PORTAL_STORAGE_PATH", instance_path / "clips")),
        "S3_BUCKET": env.get("PORTAL_S3_BUCKET", ""),
        "S3_PREFIX": env.get("PORTAL_S3_PREFIX", "clips/"),
        "S3_ENDPOINT_URL": env.get("PORTAL_S3_ENDPOINT_URL") or None,
        "S3_REGION": env.get("PORTAL_S3_REGION") or None,
        "MAX_CLIP_BYTES": _int(env, "PORTAL_MAX_CLIP_BYTES", 32 * 1024 * 1024),
        "MAX_CLIP_SECONDS": _int(env, "PORTAL_MAX_CLIP_SECONDS", 600),
        "RETENTION_DAYS": _int(env, "PORTAL_RETENTION_DAYS", 90),
        "TONE_OVER_REDACTIONS": _bool(env, "PORTAL_TONE_OVER_REDACTIONS", True),
        "LEASE_MINUTES": _int(env, "PORTAL_LEASE_MINUTES", 10),
        "REVIEW_SAMPLE_RATE": _rate(env, "PORTAL_REVIEW_SAMPLE_RATE", 1.0),
        "GRANT_SECONDS": _int(env, "PORTAL_GRANT_SECONDS", 60),
    }
