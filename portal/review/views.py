"""Supervisors' pages: the review queue, one submission's review, and live leases."""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, url_for
from flask_login import current_user

from portal.access import role_required, wants_json
from portal.audit.context import request_actor
from portal.auth.models import Role
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.review import services
from portal.review.forms import DecisionForm
from portal.tasks.models import LeaseEnd
from portal.tasks.services import release_lease as release_lease_of

bp = Blueprint("review", __name__)


@bp.route("/review")
@role_required(Role.SUPERVISOR)
def queue() -> str:
    """Submissions waiting for this supervisor's decision, oldest first."""
    return render_template(
        "review/queue.html",
        rows=services.review_queue(current_user),
        pending=services.pending_count(current_user),
    )


def _detail_page(submission_id: int, form: DecisionForm, status: int = 200) -> tuple[str, int]:
    view = services.review_view(current_user, submission_id)
    return render_template("review/detail.html", view=view, form=form), status


@bp.route("/review/<int:submission_id>")
@role_required(Role.SUPERVISOR)
def detail(submission_id: int) -> tuple[str, int]:
    """Listen, read the diff machine → correction, and decide."""
    return _detail_page(submission_id, DecisionForm())


@bp.route("/review/<int:submission_id>", methods=["POST"])
@role_required(Role.SUPERVISOR)
def decide(submission_id: int) -> Response | tuple[str, int]:
    """Accept or reject (`decision`, `feedback`); feedback is required to reject."""
    form = DecisionForm()
    if not form.validate_on_submit():
        return _detail_page(submission_id, form, 400)
    decision = services.Decision(form.decision.data)
    try:
        services.decide_submission(
            current_user, submission_id, decision, form.feedback.data or "", request_actor(), utcnow()
        )
    except PortalError as refusal:
        if wants_json() or refusal.status == 404:
            raise
        db.session.rollback()
        if refusal.code == "feedback_required":
            form.feedback.errors = [refusal.message]
        else:
            flash(refusal.message, "error")
        return _detail_page(submission_id, form, refusal.status)
    db.session.commit()
    if decision is services.Decision.ACCEPT:
        flash("Accepted. The correction is in the outbox.", "info")
    else:
        flash("Rejected. The task is back in the queue for another annotator, with your feedback.", "info")
    return redirect(url_for("review.queue"), 303)


@bp.route("/supervisor/leases")
@role_required(Role.SUPERVISOR)
def leases() -> str:
    """Who holds which task, since when, until when."""
    now = utcnow()
    return render_template("review/leases.html", rows=services.live_leases(current_user, now), now=now)


@bp.route("/supervisor/leases/<int:lease_id>/release", methods=["POST"])
@role_required(Role.SUPERVISOR)
def release_lease(lease_id: int) -> Response:
    """End a live lease; its task goes back to the queue."""
    now = utcnow()
    lease = services.lease_for_supervisor(current_user, lease_id)
    if lease.ended_at is not None or lease.expires_at <= now:
        flash("That lease had already ended.", "info")
        return redirect(url_for("review.leases"), 303)
    try:
        release_lease_of(lease, request_actor(), now, LeaseEnd.RELEASED)
    except PortalError as refusal:
        db.session.rollback()
        flash(refusal.message, "info")
        return redirect(url_for("review.leases"), 303)
    db.session.commit()
    flash("Lease released. The task is back in the queue.", "info")
    return redirect(url_for("review.leases"), 303)
