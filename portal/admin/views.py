"""Admin pages: vendors, users, sessions, second-factor resets, NDA versions."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from wtforms.fields import SelectChoice

from portal.access import role_required
from portal.admin import services
from portal.admin.forms import UserForm, VendorForm, WorkingHoursForm
from portal.audit.context import request_actor
from portal.auth import sessions
from portal.auth.forms import ConfirmForm
from portal.auth.models import Role, User, UserSession, Vendor
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.nda import services as nda_services
from portal.nda.forms import PublishNdaForm
from portal.nda.models import NdaVersion

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _user_form() -> UserForm:
    form = UserForm()
    form.vendor.choices = [SelectChoice("", "Internal (no vendor)")] + [
        SelectChoice(str(vendor.id), vendor.name) for vendor, _ in services.list_vendors()
    ]
    return form


def _overview(vendor_form: VendorForm, user_form: UserForm, status: int = 200) -> tuple[str, int]:
    return render_template(
        "admin/index.html",
        vendors=services.list_vendors(),
        users=services.list_users(),
        vendor_form=vendor_form,
        user_form=user_form,
        now=utcnow(),
    ), status


@bp.route("/")
@role_required(Role.ADMIN)
def index() -> tuple[str, int]:
    """Vendors and users at a glance, with forms to add both."""
    return _overview(VendorForm(), _user_form())


@bp.route("/vendors", methods=["POST"])
@role_required(Role.ADMIN)
def create_vendor() -> Response | tuple[str, int]:
    form = VendorForm()
    if form.validate_on_submit():
        try:
            vendor = services.create_vendor(form.name.data or "", request_actor())
        except PortalError as refusal:
            db.session.rollback()
            form.name.errors = [refusal.message]
        else:
            db.session.commit()
            flash(f"Vendor {vendor.name} created.", "info")
            return redirect(url_for("admin.index"))
    return _overview(form, _user_form(), 400)


@bp.route("/users", methods=["POST"])
@role_required(Role.ADMIN)
def create_user() -> str | tuple[str, int]:
    """Create an account with a generated password, shown to the admin exactly once."""
    form = _user_form()
    if form.validate_on_submit():
        vendor = db.session.get(Vendor, int(form.vendor.data)) if form.vendor.data else None
        password = services.generate_password()
        try:
            user = services.create_user(
                form.email.data or "",
                Role(form.role.data),
                vendor,
                password,
                request_actor(),
                full_name=form.full_name.data or "",
            )
        except PortalError as refusal:
            db.session.rollback()
            form.email.errors = [refusal.message]
        else:
            db.session.commit()
            return render_template("admin/user_created.html", user=user, password=password)
    return _overview(VendorForm(), form, 400)


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users/<int:user_id>")
@role_required(Role.ADMIN)
def user_detail(user_id: int) -> str:
    """One account: its state, its live sessions, and what an admin can do to it."""
    user = _user_or_404(user_id)
    return render_template(
        "admin/user.html",
        user=user,
        sessions=sessions.live_sessions(user),
        form=ConfirmForm(),
        now=utcnow(),
    )


@bp.route("/users/<int:user_id>/<action>", methods=["POST"])
@role_required(Role.ADMIN)
def user_action(user_id: int, action: str) -> Response:
    """Deactivate, reactivate, reset 2FA, unlock or sign out everywhere."""
    user = _user_or_404(user_id)
    actor, now = request_actor(), utcnow()
    if action == "deactivate":
        services.set_user_active(user, False, actor, now)
        message = f"{user.email} is deactivated and signed out everywhere."
    elif action == "reactivate":
        services.set_user_active(user, True, actor, now)
        message = f"{user.email} can sign in again."
    elif action == "reset-2fa":
        services.reset_second_factor(user, actor, now)
        message = f"{user.email} will enrol a new authenticator at next sign-in."
    elif action == "unlock":
        services.unlock_user(user, actor)
        message = f"{user.email} is unlocked."
    elif action == "sign-out-everywhere":
        count = sessions.end_all_sessions(user, sessions.EndReason.REVOKED, now, actor)
        message = f"{count} session(s) of {user.email} ended."
    else:
        abort(404)
    db.session.commit()
    flash(message, "info")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/sessions/<int:session_id>/revoke", methods=["POST"])
@role_required(Role.ADMIN)
def revoke_session(session_id: int) -> Response:
    user_session = db.session.get(UserSession, session_id)
    if user_session is None:
        abort(404)
    services.revoke_session(user_session, request_actor(), utcnow())
    db.session.commit()
    flash("Session revoked.", "info")
    return redirect(url_for("admin.user_detail", user_id=user_session.user_id))


@bp.route("/nda", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def nda() -> str | Response | tuple[str, int]:
    """Publish a new NDA version; everybody accepts it at their next request."""
    form = PublishNdaForm()
    if form.validate_on_submit():
        try:
            version = nda_services.publish_nda(
                form.title.data or "", form.body.data or "", request_actor(), utcnow()
            )
        except PortalError as refusal:
            db.session.rollback()
            form.body.errors = [refusal.message]
        else:
            db.session.commit()
            flash(f"NDA version {version.version} is published.", "info")
            return redirect(url_for("admin.nda"))
    versions = db.session.scalars(sa.select(NdaVersion).order_by(NdaVersion.version.desc())).all()
    status = 400 if form.errors else 200
    return render_template("admin/nda.html", form=form, versions=versions), status


def _vendor_or_404(vendor_id: int) -> Vendor:
    vendor = db.session.get(Vendor, vendor_id)
    if vendor is None:
        abort(404)
    return vendor


@bp.route("/vendors/<int:vendor_id>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def vendor_detail(vendor_id: int) -> Response | tuple[str, int]:
    """A vendor's declared working hours (read by the audit's anomaly rules)."""
    vendor = _vendor_or_404(vendor_id)
    form = WorkingHoursForm(obj=vendor)
    status = 200
    if form.is_submitted():
        status = 400
        if form.validate():
            try:
                services.set_working_hours(
                    vendor, form.work_start.data, form.work_end.data, form.work_timezone.data, request_actor()
                )
            except PortalError as refusal:
                db.session.rollback()
                form.work_timezone.errors = [refusal.message]
            else:
                db.session.commit()
                flash(f"Working hours of {vendor.name} saved.", "info")
                return redirect(url_for("admin.vendor_detail", vendor_id=vendor.id), 303)
    return render_template("admin/vendor.html", vendor=vendor, form=form), status
