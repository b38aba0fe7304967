"""Extension objects, created bare here and initialised in `create_app`."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from portal.db import Database

db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# Set on a view that carries a Flask-Limiter limit (see `portal.auth.views.limit_attempts`).
RATE_LIMITED = "rate_limited"


@limiter.request_filter
def _declares_no_rate_limit() -> bool:
    """Spare every view without a declared limit the limiter's per-request work.

    Flask-Limiter's app-wide hook resolves the applicable limits for every request, though
    only password and code attempts have any: 7 % of the instructions of a `/healthz`
    request, 2 % of a work-loop cycle's (benchmarks/RESULTS.md). A view is looked at only
    if it is marked `RATE_LIMITED`; `tests/auth/test_passwords.py` checks that every
    limited view is.
    """
    view = current_app.view_functions.get(request.endpoint or "")
    return not getattr(view, RATE_LIMITED, False)
