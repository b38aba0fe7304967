"""Sign-in pages: password, second factor, enrolment, sign-out, and "my sessions"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import segno
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup

from portal.access import after_password, public, safe_next, signed_in
from portal.audit.context import request_actor, request_origin
from portal.auth import second_factor, services, sessions
from portal.auth.cookies import clear_session_cookie, issue_session_cookie, session_policy
from portal.auth.forms import CodeForm, ConfirmForm, LoginForm
from portal.auth.models import EndReason
from portal.clock import utcnow
from portal.exceptions import AccessDenied
from portal.extensions import RATE_LIMITED, db, limiter

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "Sign-in failed. Check your email and password, or try again later."
CODE_FAILURE = "That code did not work. Codes can be used once; wait for the next one."
CLEAR_SITE_DATA = '"cache", "cookies", "storage"'


def _lockout_policy() -> services.LockoutPolicy:
    config = current_app.config
    return services.LockoutPolicy(
        threshold=config["LOCKOUT_THRESHOLD"],
        duration=timedelta(minutes=config["LOCKOUT_MINUTES"]),
    )


def _account_key() -> str:
    """Rate-limit key for the account being tried, whether or not it exists."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "email:" + services.normalise_email(request.form.get("email", ""))


def _per_ip_limit() -> str:
    return current_app.config["SIGN_IN_RATE_LIMIT_PER_IP"]


def _per_account_limit() -> str:
    return current_app.config["SIGN_IN_RATE_LIMIT_PER_ACCOUNT"]


_limit_per_ip = limiter.limit(_per_ip_limit, methods=["POST"])
_limit_per_account = limiter.limit(_per_account_limit, methods=["POST"], key_func=_account_key)

F = TypeVar("F", bound=Callable[..., Any])


def limit_attempts(view: F) -> F:
    """Rate-limit the view's POSTs (password or code attempts) per IP address and per account.

    The mark tells the limiter's app-wide hook that this view has limits to check
    (`portal.extensions.RATE_LIMITED`); views without it are skipped.
    """
    limited = _limit_per_ip(_limit_per_account(view))
    setattr(limited, RATE_LIMITED, True)
    return limited


def _signed_out_response() -> Response:
    """Back to the sign-in page, with the browser told to forget this site's data."""
    session.clear()
    clear_session_cookie()
    response = redirect(url_for("auth.login"))
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response


def _next_url() -> str:
    return safe_next(request.args.get("next")) or url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
@public
@limit_attempts
def login() -> str | Response | tuple[str, int]:
    """The password step. Always opens a new session; a previous one ends."""
    form = LoginForm()
    if form.validate_on_submit():
        now = utcnow()
        if current_user.is_authenticated:
            services.sign_out(g.user_session, request_origin(), now)
        result = services.sign_in_with_password(
            form.email.data or "",
            form.password.data or "",
            request_origin(),
            now,
            _lockout_policy(),
            session_policy(),
        )
        db.session.commit()
        if result is None:
            flash(GENERIC_FAILURE, "error")
            return render_template("auth/login.html", form=form), 401
        user_session, token = result
        session.clear()
        issue_session_cookie(token)
        step = "auth.second_factor" if user_session.user.totp_enrolled else "auth.setup_second_factor"
        return redirect(url_for(step, next=safe_next(request.args.get("next"))))
    return render_template("auth/login.html", form=form)


@bp.route("/2fa", methods=["GET", "POST"], endpoint="second_factor")
@after_password
@limit_attempts
def second_factor_step() -> str | Response | tuple[str, int]:
    """The second factor: a TOTP code or an unused recovery code."""
    if g.user_session.mfa_verified:
        return redirect(_next_url())
    if not current_user.totp_enrolled:
        return redirect(url_for("auth.setup_second_factor", next=request.args.get("next")))
    form = CodeForm()
    if form.validate_on_submit():
        token = services.verify_second_factor(
            g.user_session, form.code.data or "", request_origin(), utcnow(), _lockout_policy()
        )
        db.session.commit()
        if token is None:
            if g.user_session.ended_at is not None:
                clear_session_cookie()
                flash(GENERIC_FAILURE, "error")
                return redirect(url_for("auth.login"))
            flash(CODE_FAILURE, "error")
            return render_template("auth/second_factor.html", form=form), 401
        issue_session_cookie(token)
        return redirect(_next_url())
    return render_template("auth/second_factor.html", form=form)


@bp.route("/2fa/setup", methods=["GET", "POST"])
@after_password
@limit_attempts
def setup_second_factor() -> str | Response | tuple[str, int]:
    """TOTP enrolment on first sign-in (or after an admin reset); shows recovery codes once."""
    if current_user.totp_enrolled:
        if g.user_session.mfa_verified:
            return redirect(_next_url())
        raise AccessDenied("already enrolled; re-enrolment needs an admin reset", f"user:{current_user.id}")
    secret = services.begin_enrolment(current_user)
    db.session.commit()
    form = CodeForm()
    if form.validate_on_submit():
        result = services.confirm_enrolment(g.user_session, form.code.data or "", request_origin(), utcnow())
        db.session.commit()
        if result is not None:
            codes, token = result
            issue_session_cookie(token)
            return render_template("auth/recovery_codes.html", codes=codes, next_url=_next_url())
        flash(CODE_FAILURE, "error")
        status = 401
    else:
        status = 200
    uri = second_factor.provisioning_uri(secret, current_user.email)
    # segno writes the SVG from the URI alone; it contains no user-controlled markup.
    qr_svg = Markup(  # noqa: S704
        segno.make(uri, error="m").svg_inline(scale=5, dark="#1d2733", light="#ffffff")
    )
    return render_template(
        "auth/setup_second_factor.html", form=form, secret=secret, qr_svg=qr_svg, uri=uri
    ), status


@bp.route("/logout", methods=["POST"])
@after_password
def logout() -> Response:
    """End this session and ask the browser to forget everything of this site."""
    services.sign_out(g.user_session, request_origin(), utcnow())
    db.session.commit()
    return _signed_out_response()


@bp.route("/account/sessions")
@signed_in
def my_sessions() -> str:
    """The user's live sessions, with a way to end any of them."""
    return render_template(
        "auth/sessions.html",
        sessions=sessions.live_sessions(current_user),
        current=g.user_session,
        form=ConfirmForm(),
        remaining_codes=second_factor.remaining_recovery_codes(current_user),
    )


@bp.route("/account/sessions/<ref>/end", methods=["POST"])
@signed_in
def end_my_session(ref: str) -> Response:
    """End one of the user's own sessions (another device, say)."""
    target = next((s for s in sessions.live_sessions(current_user) if s.ref == ref), None)
    if target is None:
        raise AccessDenied("not one of your live sessions", f"session:{ref[:32]}")
    sessions.end_session(target, EndReason.REVOKED, utcnow(), request_actor())
    db.session.commit()
    if target.id == g.user_session.id:
        return _signed_out_response()
    flash("That session has been signed out.", "info")
    return redirect(url_for("auth.my_sessions"))


@bp.route("/account/sessions/end-all", methods=["POST"])
@signed_in
def end_all_my_sessions() -> Response:
    """Sign out everywhere, this browser included."""
    sessions.end_all_sessions(current_user, EndReason.SIGNED_OUT_EVERYWHERE, utcnow(), request_actor())
    db.session.commit()
    return _signed_out_response()
