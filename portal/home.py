"""The signed-in home page and the liveness probe."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, render_template
from flask_login import current_user

from portal.access import public, signed_in
from portal.auth import second_factor
from portal.extensions import db
from portal.nda.services import acceptances_of

bp = Blueprint("home", __name__)


@bp.route("/")
@signed_in
def index() -> str:
    """What this user can do, and the state of their account."""
    acceptances = acceptances_of(current_user)
    return render_template(
        "home/index.html",
        accepted=acceptances[0] if acceptances else None,
        remaining_codes=second_factor.remaining_recovery_codes(current_user),
    )


@bp.route("/healthz")
@public
def healthz() -> tuple[Response, int]:
    """Liveness: the process answers and the database responds."""
    try:
        # A Core SELECT, not text("SELECT 1"): a text statement counts as a write
        # (`portal.db.note_write`), and the request would end in ROLLBACK.
        db.session.execute(sa.select(sa.literal(1)))
    except sa.exc.SQLAlchemyError:
        return jsonify(status="unavailable"), 503
    return jsonify(status="ok"), 200
