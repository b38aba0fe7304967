"""The admin's clip inventory and erasure form (no audio, no ids of people), and the
decision on clips that annotators reported (release or erase).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.access import role_required
from portal.audit.context import request_actor
from portal.auth.models import Role
from portal.clips import services
from portal.clips.forms import EraseSubjectForm
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.tasks.forms import QuarantineDecisionForm
from portal.tasks.services import QuarantineDecision, clip_case, decide_quarantine, reported_clips

bp = Blueprint("clips", __name__, url_prefix="/admin/clips")


def _page(form: EraseSubjectForm, status: int = 200) -> tuple[str, int]:
    now = utcnow()
    return render_template(
        "clips/inventory.html",
        inventory=services.clip_inventory(now),
        reported=reported_clips(),
        form=form,
        now=now,
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


def _case_page(public_id: str, form: QuarantineDecisionForm, status: int = 200) -> tuple[str, int]:
    case = clip_case(public_id)
    if case is None:
        abort(404)
    return render_template("clips/detail.html", case=case, form=form), status


@bp.route("/<string(length=32):public_id>")
@role_required(Role.ADMIN)
def detail(public_id: str) -> tuple[str, int]:
    """One clip: status, tasks and problem reports; the decision on a quarantined clip."""
    return _case_page(public_id, QuarantineDecisionForm())


@bp.route("/<string(length=32):public_id>", methods=["POST"])
@role_required(Role.ADMIN)
def decide(public_id: str) -> Response | tuple[str, int]:
    """Release a reported clip back into service or erase it (`decision`, `confirm`)."""
    form = QuarantineDecisionForm()
    case = clip_case(public_id)
    if case is None:
        abort(404)
    if not form.validate_on_submit():
        return _case_page(public_id, form, 400)
    decision = QuarantineDecision(form.decision.data)
    try:
        decide_quarantine(case.clip, decision, current_user, request_actor(), utcnow())
    except PortalError as refusal:
        db.session.rollback()
        form.decision.errors = [refusal.message]
        return _case_page(public_id, form, refusal.status)
    db.session.commit()
    if decision is QuarantineDecision.RELEASE:
        flash("Clip released: it is back in service and its tasks can be claimed again.", "info")
    else:
        flash("Clip erased: its key, audio and transcript are destroyed and its tasks cancelled.", "info")
    return redirect(url_for("clips.detail", public_id=public_id), 303)
