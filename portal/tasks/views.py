"""The annotator's pages: the queue home, claiming, and the work page with its actions.

Who may act on a task is decided by the lease, not by the URL: every view below except
the home page and the claim asks `services.live_lease` or `services.held_task` (or the
service it calls does), which refuse anyone but the live holder in this session with an
audited 403.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from portal.access import role_required
from portal.audit.context import request_actor
from portal.auth.models import Role
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.tasks import services
from portal.tasks.forms import ReportForm, SkipForm, SubmitForm
from portal.tasks.models import ProblemKind

bp = Blueprint("tasks", __name__, url_prefix="/tasks")

EMPTY_QUEUE = "The queue is empty: there is no task for you right now. Check again later."


@bp.route("")
@role_required(Role.ANNOTATOR)
def home() -> str:
    """The task in hand, how many wait, and recent submissions with reviewers' feedback."""
    return render_template("tasks/home.html", overview=services.annotator_overview(current_user, utcnow()))


@bp.route("/claim", methods=["POST"])
@role_required(Role.ANNOTATOR)
def claim() -> Response:
    """Lease the next task (or get the one in hand back) and go to its work page."""
    lease = services.claim_next_task(current_user, g.user_session, utcnow(), request_actor())
    db.session.commit()
    if lease is None:
        flash(EMPTY_QUEUE, "info")
        return redirect(url_for("tasks.home"), 303)
    return redirect(url_for("tasks.work", task_id=lease.task_id), 303)


def _work_page(
    holding: services.Holding, submit_form: SubmitForm | None = None, status: int = 200
) -> tuple[str, int]:
    view = services.work_view(holding)
    if submit_form is None:
        data = {"transcript": view.transcript, "lease_id": view.lease.id}
        submit_form = SubmitForm(formdata=None, data=data)
    return render_template(
        "tasks/work.html",
        view=view,
        submit_form=submit_form,
        skip_form=SkipForm(formdata=None),
        report_form=ReportForm(formdata=None),
    ), status


@bp.route("/<int:task_id>")
@role_required(Role.ANNOTATOR)
def work(task_id: int) -> tuple[str, int]:
    """The player, the transcript box, and skip / report; for the lease holder only."""
    return _work_page(services.held_task(task_id, current_user, g.user_session, utcnow()))


@bp.route("/<int:task_id>/lease", methods=["POST"])
@role_required(Role.ANNOTATOR)
def renew(task_id: int) -> Response:
    """Extend the lease (the open work page calls this every two minutes)."""
    now = utcnow()
    lease = services.renew_lease(task_id, current_user, g.user_session, request_actor(), now)
    db.session.commit()
    return jsonify(
        expires_at=lease.expires_at.isoformat(),
        expires_in=int((lease.expires_at - now).total_seconds()),
    )


@bp.route("/<int:task_id>/draft", methods=["POST"])
@role_required(Role.ANNOTATOR)
def draft(task_id: int) -> Response:
    """Autosave the transcript typed so far: JSON `{"transcript": ...}`."""
    now = utcnow()
    services.live_lease(task_id, current_user, g.user_session, now)
    payload = request.get_json(silent=True)
    transcript = payload.get("transcript") if isinstance(payload, dict) else None
    if not isinstance(transcript, str):
        raise PortalError("bad_request", 'Send JSON {"transcript": "..."}.')
    lease = services.save_draft(task_id, current_user, g.user_session, transcript, now)
    db.session.commit()
    assert lease.draft_saved_at is not None
    return jsonify(saved_at=lease.draft_saved_at.isoformat())


@bp.route("/<int:task_id>/skip", methods=["POST"])
@role_required(Role.ANNOTATOR)
def skip(task_id: int) -> Response:
    """Give the task back with a reason (`reason`); the clip is not offered to you again."""
    now = utcnow()
    services.live_lease(task_id, current_user, g.user_session, now)
    form = SkipForm()
    if not form.validate():
        flash("Choose why you are skipping this task.", "error")
        return redirect(url_for("tasks.work", task_id=task_id), 303)
    reason = services.SkipReason(form.reason.data)
    services.skip_task(task_id, current_user, g.user_session, reason, request_actor(), now)
    db.session.commit()
    flash("Task skipped. It goes to someone else; you will not be given this clip again.", "info")
    return redirect(url_for("tasks.home"), 303)


@bp.route("/<int:task_id>/report", methods=["POST"])
@role_required(Role.ANNOTATOR)
def report(task_id: int) -> Response:
    """Report a problem (`kind`, `note`): the clip is quarantined until an admin decides."""
    now = utcnow()
    services.live_lease(task_id, current_user, g.user_session, now)
    form = ReportForm()
    if not form.validate():
        flash("Choose what is wrong with the clip (a note may be at most 2,000 characters).", "error")
        return redirect(url_for("tasks.work", task_id=task_id), 303)
    services.report_problem(
        task_id,
        current_user,
        g.user_session,
        ProblemKind(form.kind.data),
        form.note.data or "",
        request_actor(),
        now,
    )
    db.session.commit()
    flash(
        "Thank you. The clip is out of service until an administrator has checked it. "
        "You can take the next task.",
        "info",
    )
    return redirect(url_for("tasks.home"), 303)


@bp.route("/<int:task_id>/submit", methods=["POST"])
@role_required(Role.ANNOTATOR)
def submit(task_id: int) -> Response | tuple[str, int]:
    """Submit the correction (`transcript`, hidden `lease_id`); a resubmit changes nothing."""
    now = utcnow()
    form = SubmitForm()
    lease_id = int(form.lease_id.data) if (form.lease_id.data or "").isdigit() else 0
    try:
        result = services.submit_correction(
            task_id, lease_id, current_user, g.user_session, form.transcript.data or "", request_actor(), now
        )
    except PortalError as refusal:
        db.session.rollback()
        form.transcript.errors = [refusal.message]
        holding = services.held_task(task_id, current_user, g.user_session, now)
        return _work_page(holding, form, refusal.status)
    db.session.commit()
    if result.replayed:
        flash("This task was already submitted; nothing was changed.", "info")
    else:
        flash("Submitted. Thank you.", "info")
    return redirect(url_for("tasks.home"), 303)
