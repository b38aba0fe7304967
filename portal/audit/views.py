"""Auditors' pages: access-log search, per-clip and per-user reports, anomalies, exports.

Auditors only (DESIGN.md, "People"): read-only, every vendor. An export needs a fresh
step-up (the auditor re-enters a current TOTP code on the confirm page; valid for
PORTAL_AUDIT_STEP_UP_MINUTES, recorded on the session) and is itself audited: the
`audit.exported` event is committed before the first byte is streamed, so an export that
cannot be recorded does not happen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from portal.access import role_required
from portal.audit import reports, search
from portal.audit.context import request_actor, request_origin
from portal.audit.export import FORMATS, MEDIA_TYPES, ExportStream, plan_export
from portal.audit.services import record_event
from portal.auth import services as auth_services
from portal.auth.cookies import clear_session_cookie, issue_session_cookie
from portal.auth.forms import CodeForm
from portal.auth.models import Role, User, Vendor
from portal.auth.views import CODE_FAILURE, GENERIC_FAILURE, limit_attempts
from portal.clock import utcnow
from portal.extensions import db
from portal.keys import portal_keys

bp = Blueprint("audit", __name__, url_prefix="/audit")

STEP_UP_PURPOSE = "audit.export"


def _filters() -> tuple[search.Filters, dict[str, str]]:
    """The filters of this request, and the message for the field that cannot be used."""
    try:
        return search.parse_filters(request.args), {}
    except search.FilterError as error:
        return search.Filters(), {error.field: error.message}


def _cursor(name: str) -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _step_up_lifetime() -> timedelta:
    return timedelta(minutes=current_app.config["AUDIT_STEP_UP_MINUTES"])


def _step_up_until() -> datetime | None:
    """Until when this session may export without re-entering a code (None: it may not)."""
    now, lifetime = utcnow(), _step_up_lifetime()
    if auth_services.step_up_valid(g.user_session, now, lifetime):
        return g.user_session.step_up_at + lifetime
    return None


def _form_values() -> dict[str, str]:
    return {name: request.args.get(name, "") for name in ("since", "until", *search.FILTER_FIELDS)}


@bp.route("")
@role_required(Role.AUDITOR)
def search_page() -> tuple[str, int]:
    """Search the access log, newest first, a keyset page at a time."""
    filters, errors = _filters()
    page = None if errors else search.search(filters, before=_cursor("before"), after=_cursor("after"))
    return render_template(
        "audit/search.html",
        filters=filters,
        values=_form_values(),
        errors=errors,
        page=page,
        vendors=db.session.scalars(sa.select(Vendor.name).order_by(Vendor.name)).all(),
        actions=search.recent_actions(),
        outcomes=search.OUTCOMES,
        step_up_until=_step_up_until(),
    ), 400 if errors else 200


def _export_args(filters: search.Filters, fmt: str) -> dict[str, str]:
    return {"format": fmt, **filters.query_args()}


def _export_format() -> str:
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        abort(400)
    return fmt


@bp.route("/export")
@role_required(Role.AUDITOR)
def export() -> Response:
    """Stream the matching events (all, without filters) as CSV or JSONL, sealed.

    Without a valid step-up, redirects to the confirm page. The export is recorded and
    committed before streaming starts (fail closed).
    """
    fmt = _export_format()
    filters, errors = _filters()
    if errors:
        abort(400)
    if _step_up_until() is None:
        return redirect(url_for("audit.confirm_export", **_export_args(filters, fmt)))
    plan = plan_export(portal_keys().audit_signing_key, filters)
    if plan is None:
        db.session.rollback()
        flash("No event matches these filters: there is nothing to export.", "error")
        return redirect(url_for("audit.search_page", **filters.query_args()))
    record_event(request_actor(), "audit.exported", target=f"export:{fmt}", details=plan.details(fmt))
    db.session.commit()
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    scope = "filtered" if plan.filters is not None else "full"
    name = f"audit-{scope}-{stamp}-seq{plan.first_seq}-{plan.last_seq}.{fmt}"
    response = Response(stream_with_context(iter(ExportStream(plan, fmt))), mimetype=MEDIA_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.route("/export/confirm", methods=["GET", "POST"])
@role_required(Role.AUDITOR)
@limit_attempts
def confirm_export() -> Response | tuple[str, int]:
    """The step-up: re-enter a current authenticator code, then the download starts."""
    fmt = _export_format()
    filters, errors = _filters()
    if errors:
        abort(400)
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        now = utcnow()
        lockout = auth_services.LockoutPolicy(
            threshold=current_app.config["LOCKOUT_THRESHOLD"],
            duration=timedelta(minutes=current_app.config["LOCKOUT_MINUTES"]),
        )
        token = auth_services.confirm_step_up(
            g.user_session, form.code.data or "", STEP_UP_PURPOSE, request_origin(), now, lockout
        )
        db.session.commit()
        if token is not None:
            issue_session_cookie(token)
            return redirect(url_for("audit.confirm_export", **_export_args(filters, fmt), go=1), 303)
        if g.user_session.ended_at is not None:
            clear_session_cookie()
            flash(GENERIC_FAILURE, "error")
            return redirect(url_for("auth.login"))
        flash(CODE_FAILURE, "error")
        status = 401
    until = _step_up_until()
    download = url_for("audit.export", **_export_args(filters, fmt))
    return render_template(
        "audit/confirm_export.html",
        form=form,
        fmt=fmt,
        filters=filters,
        step_up_until=until,
        download=download,
        start_download=until is not None and request.args.get("go") == "1",
        back=url_for("audit.search_page", **filters.query_args()),
        minutes=current_app.config["AUDIT_STEP_UP_MINUTES"],
    ), status


@bp.route("/clips/<string(length=32):public_id>")
@role_required(Role.AUDITOR)
def clip_report(public_id: str) -> str:
    """Who heard this clip, when, which seconds, how often."""
    if not search.CLIP_ID.match(public_id):
        abort(404)
    report = reports.clip_report(public_id)
    if report is None:
        abort(404)
    return render_template("audit/clip.html", report=report)


def _window() -> tuple[datetime, datetime, dict[str, str]]:
    """The report window from `since`/`until`, by default the last AUDIT_ANOMALY_DAYS days."""
    since, until = reports.default_window(utcnow(), current_app.config["AUDIT_ANOMALY_DAYS"])
    errors = {}
    try:
        chosen = search.parse_filters(
            {"since": request.args.get("since"), "until": request.args.get("until")}
        )
    except search.FilterError as error:
        errors[error.field] = error.message
    else:
        since, until = chosen.since or since, chosen.until or until
        if since >= until:
            errors["until"] = "The end of the time range must come after its start."
    return since, until, errors


def _window_values(since: datetime, until: datetime) -> dict[str, str]:
    return {
        "since": request.args.get("since") or since.strftime("%Y-%m-%dT%H:%M"),
        "until": request.args.get("until") or until.strftime("%Y-%m-%dT%H:%M"),
    }


@bp.route("/users/<int:user_id>")
@role_required(Role.AUDITOR)
def user_report(user_id: int) -> tuple[str, int]:
    """What one person did in a window: counts, clips streamed, anomalies, latest events."""
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    since, until, errors = _window()
    report = None if errors else reports.user_report(user, since, until, _thresholds())
    return render_template(
        "audit/user.html",
        user=user,
        report=report,
        errors=errors,
        values=_window_values(since, until),
    ), 400 if errors else 200


def _thresholds() -> reports.Thresholds:
    return reports.Thresholds.from_config(current_app.config)


@bp.route("/anomalies")
@role_required(Role.AUDITOR)
def anomalies() -> tuple[str, int]:
    """Every anomaly rule over a window, most severe first."""
    since, until, errors = _window()
    flags = [] if errors else reports.find_anomalies(since, until, _thresholds())
    return render_template(
        "audit/anomalies.html",
        flags=flags,
        errors=errors,
        values=_window_values(since, until),
        thresholds=_thresholds(),
        hours=_declared_hours(),
    ), 400 if errors else 200


def _declared_hours() -> list[tuple[str, Any]]:
    return [
        (vendor.name, reports.working_hours(vendor))
        for vendor in db.session.scalars(sa.select(Vendor).order_by(Vendor.name))
    ]
