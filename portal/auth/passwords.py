"""Password hashing (argon2id) and the password policy (NIST SP 800-63B).

The policy has no composition rules: at least 12 characters, at most 128, not one of the
30,000 most common passwords that zxcvbn ships, and not guessable from patterns the same
library detects (keyboard walks, dates, repeated words, the user's own email).
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_ZXCVBN_SCORE = 3

_COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def password_hasher() -> PasswordHasher:
    """The argon2id hasher with the parameters configured for this app."""
    config = current_app.config
    return _hasher(config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_COST"], config["ARGON2_PARALLELISM"])


@lru_cache(maxsize=8)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("not a real password; equalises timing for unknown accounts")


def hash_password(password: str) -> str:
    """Hash `password` with argon2id."""
    return password_hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check `password`; with no hash (unknown account) spend the same time and fail."""
    hasher = password_hasher()
    try:
        return hasher.verify(password_hash or _dummy_hash(hasher), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether the stored hash was made with weaker parameters than configured."""
    return password_hasher().check_needs_rehash(password_hash)


def password_problems(password: str, user_inputs: list[str]) -> list[str]:
    """Return why `password` is refused (an empty list when it is acceptable)."""
    if len(password) < MIN_LENGTH:
        return [f"Use at least {MIN_LENGTH} characters; a few unrelated words work well."]
    if len(password) > MAX_LENGTH:
        return [f"Use at most {MAX_LENGTH} characters."]
    if password.lower() in _COMMON_PASSWORDS:
        return ["This is one of the most common passwords; choose another."]
    result = zxcvbn(password[:MAX_LENGTH], user_inputs=user_inputs)
    if result["score"] < MIN_ZXCVBN_SCORE:
        feedback = result["feedback"]
        reasons = [feedback["warning"]] if feedback.get("warning") else []
        reasons.extend(feedback.get("suggestions") or [])
        return reasons or ["This password is too easy to guess; choose another."]
    return []
