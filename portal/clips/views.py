"""The admin's clip inventory and erasure form (no audio, no ids of people)."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, url_for

from portal.access import role_required
from portal.audit.context import request_actor
from portal.auth.models import Role
from portal.clips import services
from portal.clips.forms import EraseSubjectForm
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db

bp = Blueprint("clips", __name__, url_prefix="/admin/clips")


def _page(form: EraseSubjectForm, status: int = 200) -> tuple[str, int]:
    now = utcnow()
    return render_template(
        "clips/inventory.html", inventory=services.clip_inventory(now), form=form, now=now
    ), status


@bp.route("/")
@role_required(Role.ADMIN)
def inventory() -> tuple[str, int]:
    """Counts by status, consent scope, redaction kind and retention; the latest clips."""
    return _page(EraseSubjectForm())


@bp.route("/erase", methods=["POST"])
@role_required(Role.ADMIN)
def erase() -> Response | tuple[str, int]:
    """Erase every clip of the person whose source user id the admin enters."""
    form = EraseSubjectForm()
    if form.validate_on_submit():
        try:
            count = services.erase_subject(form.source_user_id.data or "", request_actor(), utcnow())
        except PortalError as refusal:
            db.session.rollback()
            form.source_user_id.errors = [refusal.message]
        else:
            db.session.commit()
            flash(f"{count} clip(s) erased. The request is recorded in the audit log.", "info")
            return redirect(url_for("clips.inventory"))
    form.source_user_id.data = ""
    return _page(form, 400)
