"""The NDA gate page and the user's own record of what they signed."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_login import current_user

from portal.access import after_second_factor, safe_next
from portal.audit.context import request_actor
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.nda import services
from portal.nda.forms import AcceptNdaForm

bp = Blueprint("nda", __name__)


@bp.route("/nda", methods=["GET", "POST"])
@after_second_factor
def accept() -> str | Response | tuple[str, int]:
    """Show the current NDA and take the user's acceptance."""
    next_url = safe_next(request.args.get("next")) or url_for("home.index")
    current = services.current_nda()
    if current is None or services.has_accepted_current_nda(current_user):
        return redirect(next_url)
    form = AcceptNdaForm(version=str(current.version))
    error = None
    if form.validate_on_submit():
        try:
            version = int(form.version.data or "0")
            services.accept_nda(current_user, version, form.full_name.data or "", request_actor(), utcnow())
        except (PortalError, ValueError) as refusal:
            db.session.rollback()
            error = getattr(refusal, "message", "The form was not valid.")
        else:
            db.session.commit()
            return redirect(next_url)
    status = 400 if request.method == "POST" else 200
    return render_template("nda/accept.html", nda=current, form=form, error=error), status


@bp.route("/nda/mine")
@after_second_factor
def mine() -> str:
    """Every NDA version the user accepted, with the exact text and its hash."""
    return render_template("nda/mine.html", acceptances=services.acceptances_of(current_user))
