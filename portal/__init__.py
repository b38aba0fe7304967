"""Vendor Annotation Portal.

The application factory lives in `portal.factory`. It is imported when called, not when
this package is, so that `python -m portal.audit.verify` (the auditors' offline verifier)
loads only the hash chain and `cryptography`, not Flask and the whole application.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the portal from `env` (default: the process environment); see portal.factory."""
    from portal.factory import create_app as build

    return build(env)
