"""The supervisor dashboard (`GET /supervisor`) and its CSV downloads (`GET /supervisor/<table>.csv`).

Filters (query string, all optional): `from` and `to` (YYYY-MM-DD, UTC days, both
included; default the last seven days) and, for internal supervisors, `vendor` (an id).
A vendor supervisor who names another vendor is refused (403, audited as denied).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from flask_login import current_user

from portal.access import role_required
from portal.analytics import exports, formatting, rollup, services
from portal.analytics.charts import dashboard_charts, meter
from portal.analytics.services import FilterError
from portal.audit.context import request_actor
from portal.audit.services import record_event
from portal.auth.models import Role
from portal.clock import utcnow
from portal.extensions import db

bp = Blueprint("analytics", __name__)

QUICK_RANGES = ((7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "12 months"))


@bp.route("/supervisor")
@role_required(Role.SUPERVISOR)
def dashboard() -> tuple[str, int]:
    """Throughput and quality of the supervisor's vendor (or every vendor), for a date range."""
    now = utcnow()
    scope = services.scope_for(current_user, request.args.get("vendor"))
    vendors = services.selectable_vendors(current_user)
    try:
        period = services.parse_period(request.args.get("from"), request.args.get("to"), now.date())
    except FilterError as error:
        return (
            render_template(
                "analytics/dashboard.html",
                error=error.message,
                scope=scope,
                vendors=vendors,
                raw_from=request.args.get("from", "")[:40],
                raw_to=request.args.get("to", "")[:40],
            ),
            400,
        )
    rollup.refresh(now)
    db.session.commit()
    board = services.dashboard(scope, period, now)
    quick_ranges = [
        (label, services.Period(now.date() - timedelta(days=days - 1), now.date()))
        for days, label in QUICK_RANGES
    ]
    return (
        render_template(
            "analytics/dashboard.html",
            error=None,
            scope=scope,
            vendors=vendors,
            raw_from=period.first_day.isoformat(),
            raw_to=period.last_day.isoformat(),
            board=board,
            charts=dashboard_charts(board),
            tables=exports.TABLES,
            meter=meter,
            fmt=formatting,
            filters={**period.as_args(), **scope.as_args()},
            quick_ranges=[
                (label, quick, {**quick.as_args(), **scope.as_args()}) for label, quick in quick_ranges
            ],
        ),
        200,
    )


@bp.route("/supervisor/<table>.csv")
@role_required(Role.SUPERVISOR)
def download(table: str) -> Response:
    """One of the dashboard's tables as CSV, with the page's filters and scope; audited."""
    if table not in exports.TABLES:
        abort(404)
    now = utcnow()
    scope = services.scope_for(current_user, request.args.get("vendor"))
    period = services.parse_period(request.args.get("from"), request.args.get("to"), now.date())
    rollup.refresh(now)
    record_event(
        request_actor(),
        "analytics.exported",
        target=f"table:{table}",
        details={**period.as_args(), "vendor": scope.vendor_id},
    )
    db.session.commit()
    filename = f"{table}_{period.first_day.isoformat()}_{period.last_day.isoformat()}.csv"
    return Response(
        stream_with_context(exports.stream_table(table, scope, period, now)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
