"""The access matrix: every route × role × gate state → the expected status and redirect.

The table below is written independently of the views' own declarations. Each role × gate
state is one test, signed in once, with one subtest per route the app serves (enumerated
from `app.url_map`). A served route the table does not list fails its subtest and
`test_every_route_is_in_the_matrix`, so nobody can add a page without deciding who may use it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from portal.access import SIGN_IN_PATHS, public, role_required
from portal.auth.models import Role, UserSession
from portal.extensions import db
from tests.auth.helpers import audit_events, details, location, sign_in_password, user_sessions
from tests.conftest import Person, csrf_token


class Gate(enum.IntEnum):
    """How far along the chain a route needs the visitor to be (the test's own words)."""

    PUBLIC = 0
    PASSWORD = 1
    SECOND_FACTOR = 2
    NDA = 3


class State(enum.Enum):
    """Where the visitor is in the gate chain when the request is made."""

    ANONYMOUS = "anonymous"
    PASSWORD = "password-only"
    NDA_PENDING = "2fa-done-nda-pending"
    THROUGH = "fully-through"


@dataclass(frozen=True)
class Context:
    """What a request needs to name real rows (its own user and session)."""

    user_id: int
    session_id: int
    session_ref: str


@dataclass(frozen=True)
class Route:
    """One method on one URL rule, and what a visitor gets once the gates let them in."""

    method: str
    rule: str
    gate: Gate
    reached: dict[State, tuple[int, str | None]]
    roles: frozenset[Role] | None = None
    path: Callable[[Context], str] | None = None
    data: dict[str, str] = field(default_factory=dict)
    # The audit action of a refusal by the view itself (the gate chain's is access.denied).
    denied_action: str = "access.denied"

    def url(self, context: Context) -> str:
        return self.path(context) if self.path else self.rule


ALL_STATES = (State.ANONYMOUS, State.PASSWORD, State.NDA_PENDING, State.THROUGH)
SIGNED_IN_STATES = (State.PASSWORD, State.NDA_PENDING, State.THROUGH)
ADMIN_ONLY = frozenset({Role.ADMIN})
SUPERVISORS_ONLY = frozenset({Role.SUPERVISOR})


def everywhere(status: int, target: str | None = None) -> dict[State, tuple[int, str | None]]:
    return dict.fromkeys(ALL_STATES, (status, target))


ROUTES = [
    Route(
        "GET",
        "/static/<path:filename>",
        Gate.PUBLIC,
        everywhere(200),
        path=lambda c: "/static/css/portal.css",
    ),
    Route("GET", "/healthz", Gate.PUBLIC, everywhere(200)),
    Route("GET", "/login", Gate.PUBLIC, everywhere(200)),
    # An empty form re-renders the page; a signed-in visitor stays signed in.
    Route("POST", "/login", Gate.PUBLIC, everywhere(200)),
    Route(
        "GET",
        "/2fa",
        Gate.PASSWORD,
        {State.PASSWORD: (200, None), State.NDA_PENDING: (302, "/"), State.THROUGH: (302, "/")},
    ),
    Route(
        "POST",
        "/2fa",
        Gate.PASSWORD,
        {State.PASSWORD: (401, None), State.NDA_PENDING: (302, "/"), State.THROUGH: (302, "/")},
        data={"code": "not-a-code"},
    ),
    # Enrolled users never reach enrolment again with only a password.
    Route(
        "GET",
        "/2fa/setup",
        Gate.PASSWORD,
        {State.PASSWORD: (403, None), State.NDA_PENDING: (302, "/"), State.THROUGH: (302, "/")},
    ),
    Route(
        "POST",
        "/2fa/setup",
        Gate.PASSWORD,
        {State.PASSWORD: (403, None), State.NDA_PENDING: (302, "/"), State.THROUGH: (302, "/")},
        data={"code": "123456"},
    ),
    Route("POST", "/logout", Gate.PASSWORD, dict.fromkeys(SIGNED_IN_STATES, (302, "/login"))),
    Route("GET", "/account/sessions", Gate.NDA, {State.THROUGH: (200, None)}),
    Route(
        "POST",
        "/account/sessions/<ref>/end",
        Gate.NDA,
        {State.THROUGH: (302, "/login")},
        path=lambda c: f"/account/sessions/{c.session_ref}/end",
    ),
    Route("POST", "/account/sessions/end-all", Gate.NDA, {State.THROUGH: (302, "/login")}),
    Route("GET", "/nda", Gate.SECOND_FACTOR, {State.NDA_PENDING: (200, None), State.THROUGH: (302, "/")}),
    Route("POST", "/nda", Gate.SECOND_FACTOR, {State.NDA_PENDING: (400, None), State.THROUGH: (302, "/")}),
    Route(
        "GET", "/nda/mine", Gate.SECOND_FACTOR, {State.NDA_PENDING: (200, None), State.THROUGH: (200, None)}
    ),
    Route("GET", "/", Gate.NDA, {State.THROUGH: (200, None)}),
    Route("GET", "/admin/", Gate.NDA, {State.THROUGH: (200, None)}, roles=ADMIN_ONLY),
    Route("POST", "/admin/vendors", Gate.NDA, {State.THROUGH: (400, None)}, roles=ADMIN_ONLY),
    Route("POST", "/admin/users", Gate.NDA, {State.THROUGH: (400, None)}, roles=ADMIN_ONLY),
    Route(
        "GET",
        "/admin/users/<int:user_id>",
        Gate.NDA,
        {State.THROUGH: (200, None)},
        roles=ADMIN_ONLY,
        path=lambda c: f"/admin/users/{c.user_id}",
    ),
    Route(
        "POST",
        "/admin/users/<int:user_id>/<action>",
        Gate.NDA,
        {State.THROUGH: (302, "/admin/users/{user_id}")},
        roles=ADMIN_ONLY,
        path=lambda c: f"/admin/users/{c.user_id}/unlock",
    ),
    Route(
        "POST",
        "/admin/sessions/<int:session_id>/revoke",
        Gate.NDA,
        {State.THROUGH: (302, "/admin/users/{user_id}")},
        roles=ADMIN_ONLY,
        path=lambda c: f"/admin/sessions/{c.session_id}/revoke",
    ),
    Route("GET", "/admin/nda", Gate.NDA, {State.THROUGH: (200, None)}, roles=ADMIN_ONLY),
    Route("POST", "/admin/nda", Gate.NDA, {State.THROUGH: (400, None)}, roles=ADMIN_ONLY),
    Route("GET", "/admin/clips/", Gate.NDA, {State.THROUGH: (200, None)}, roles=ADMIN_ONLY),
    Route("POST", "/admin/clips/erase", Gate.NDA, {State.THROUGH: (400, None)}, roles=ADMIN_ONLY),
    # The admin's decision on a reported clip (issue 4, Q): unknown clips answer 404.
    Route(
        "GET",
        "/admin/clips/<string(length=32):public_id>",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=ADMIN_ONLY,
        path=lambda c: "/admin/clips/" + "0" * 32,
    ),
    Route(
        "POST",
        "/admin/clips/<string(length=32):public_id>",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=ADMIN_ONLY,
        path=lambda c: "/admin/clips/" + "0" * 32,
        data={"decision": "release"},
    ),
    # The queue (issue 4, Q): annotators only. The claim finds an empty queue and says so on
    # /tasks; every holder-only action on a task nobody holds (999999) is refused and audited.
    Route("GET", "/tasks", Gate.NDA, {State.THROUGH: (200, None)}, roles=frozenset({Role.ANNOTATOR})),
    Route("POST", "/tasks/claim", Gate.NDA, {State.THROUGH: (303, None)}, roles=frozenset({Role.ANNOTATOR})),
    *(
        Route(
            method,
            f"/tasks/<int:task_id>{suffix}",
            Gate.NDA,
            {State.THROUGH: (403, None)},
            roles=frozenset({Role.ANNOTATOR}),
            path=lambda c, suffix=suffix: f"/tasks/999999{suffix}",
            data=data,
        )
        for method, suffix, data in (
            ("GET", "", {}),
            ("POST", "/lease", {}),
            ("POST", "/draft", {}),
            ("POST", "/skip", {"reason": "other"}),
            ("POST", "/report", {"kind": "other"}),
            ("POST", "/submit", {"transcript": "text", "lease_id": "1"}),
        )
    ),
    # The service API takes API keys only: a browser session, however far along, gets 401.
    Route("POST", "/api/v1/clips", Gate.PUBLIC, everywhere(401)),
    Route("GET", "/api/v1/corrections", Gate.PUBLIC, everywhere(401)),
    # Review (issue 4, R): supervisors only; unknown ids answer 404 once the role check passed.
    Route("GET", "/review", Gate.NDA, {State.THROUGH: (200, None)}, roles=SUPERVISORS_ONLY),
    Route(
        "GET",
        "/review/<int:submission_id>",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=SUPERVISORS_ONLY,
        path=lambda c: "/review/999999",
    ),
    Route(
        "POST",
        "/review/<int:submission_id>",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=SUPERVISORS_ONLY,
        path=lambda c: "/review/999999",
        data={"decision": "accept"},
    ),
    Route("GET", "/supervisor/leases", Gate.NDA, {State.THROUGH: (200, None)}, roles=SUPERVISORS_ONLY),
    # The dashboard and its CSV tables (issue 5): supervisors only.
    Route("GET", "/supervisor", Gate.NDA, {State.THROUGH: (200, None)}, roles=SUPERVISORS_ONLY),
    Route(
        "GET",
        "/supervisor/<table>.csv",
        Gate.NDA,
        {State.THROUGH: (200, None)},
        roles=SUPERVISORS_ONLY,
        path=lambda c: "/supervisor/queue.csv",
    ),
    Route(
        "POST",
        "/supervisor/leases/<int:lease_id>/release",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=SUPERVISORS_ONLY,
        path=lambda c: "/supervisor/leases/999999/release",
    ),
    # Playback (issue 4, S): grants and progress for the lease holder only (nobody holds task
    # 999999); review grants for supervisors; media checks its grant and session itself, so
    # every visitor, signed in or not, gets a 403 for a token that is no grant.
    Route(
        "POST",
        "/tasks/<int:task_id>/playback",
        Gate.NDA,
        {State.THROUGH: (403, None)},
        roles=frozenset({Role.ANNOTATOR}),
        path=lambda c: "/tasks/999999/playback",
    ),
    Route(
        "POST",
        "/tasks/<int:task_id>/progress",
        Gate.NDA,
        {State.THROUGH: (403, None)},
        roles=frozenset({Role.ANNOTATOR}),
        path=lambda c: "/tasks/999999/progress",
    ),
    Route(
        "POST",
        "/review/<int:submission_id>/playback",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=SUPERVISORS_ONLY,
        path=lambda c: "/review/999999/playback",
    ),
    Route(
        "GET",
        "/media/<token>",
        Gate.PUBLIC,
        everywhere(403),
        path=lambda c: "/media/not-a-grant",
        denied_action="playback.denied",
    ),
    # The access log (issue 5): auditors only. An export without a fresh step-up goes to the
    # confirm page; a wrong code there is a 401; unknown clips answer 404.
    Route("GET", "/audit", Gate.NDA, {State.THROUGH: (200, None)}, roles=frozenset({Role.AUDITOR})),
    Route(
        "GET",
        "/audit/export",
        Gate.NDA,
        {State.THROUGH: (302, "/audit/export/confirm")},
        roles=frozenset({Role.AUDITOR}),
    ),
    Route(
        "GET",
        "/audit/export/confirm",
        Gate.NDA,
        {State.THROUGH: (200, None)},
        roles=frozenset({Role.AUDITOR}),
    ),
    Route(
        "POST",
        "/audit/export/confirm",
        Gate.NDA,
        {State.THROUGH: (401, None)},
        roles=frozenset({Role.AUDITOR}),
        data={"code": "not-a-code"},
    ),
    Route(
        "GET",
        "/audit/clips/<string(length=32):public_id>",
        Gate.NDA,
        {State.THROUGH: (404, None)},
        roles=frozenset({Role.AUDITOR}),
        path=lambda c: "/audit/clips/" + "0" * 32,
    ),
    Route(
        "GET",
        "/audit/users/<int:user_id>",
        Gate.NDA,
        {State.THROUGH: (200, None)},
        roles=frozenset({Role.AUDITOR}),
        path=lambda c: f"/audit/users/{c.user_id}",
    ),
    Route("GET", "/audit/anomalies", Gate.NDA, {State.THROUGH: (200, None)}, roles=frozenset({Role.AUDITOR})),
    # A vendor's declared working hours (issue 5, read by the audit's anomaly rules).
    *(
        Route(
            method,
            "/admin/vendors/<int:vendor_id>",
            Gate.NDA,
            {State.THROUGH: (404, None)},
            roles=ADMIN_ONLY,
            path=lambda c: "/admin/vendors/999999",
        )
        for method in ("GET", "POST")
    ),
]

CELLS = [(None, State.ANONYMOUS)] + [(role, state) for role in Role for state in SIGNED_IN_STATES]
CELL_IDS = ["anonymous" if role is None else f"{role.value}-{state.value}" for role, state in CELLS]


def expected(route: Route, role: Role | None, state: State) -> tuple[int, str | None]:
    """What the gate chain must answer: the first unmet gate wins, then the role check."""
    if route.gate is Gate.PUBLIC:
        return route.reached[state]
    if state is State.ANONYMOUS:
        return 302, "/login"
    if state is State.PASSWORD and route.gate >= Gate.SECOND_FACTOR:
        return 302, "/2fa"
    if state is State.NDA_PENDING and route.gate >= Gate.NDA:
        return 302, "/nda"
    if state is State.THROUGH and route.roles is not None and role not in route.roles:
        return 403, None
    return route.reached[state]


def served_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def test_every_route_is_in_the_matrix(app):
    listed = {(route.method, route.rule) for route in ROUTES}
    served = served_routes(app)
    assert served - listed == set(), "routes without an access-matrix entry"
    assert listed - served == set(), "matrix entries for routes the app does not serve"


def _sign_in(
    client: FlaskClient, person: Person, state: State, login_as: Callable[..., FlaskClient]
) -> Context:
    if state is State.PASSWORD:
        assert sign_in_password(client, person).status_code == 302
    elif state is State.NDA_PENDING:
        login_as(client, person, accept_nda=False)
    else:
        login_as(client, person)
    (live,) = [s for s in user_sessions(client.application, person.id) if s.ended_at is None]
    return Context(user_id=person.id, session_id=live.id, session_ref=live.ref)


def _is_live(app: Flask, context: Context) -> bool:
    with app.app_context():
        row = db.session.get(UserSession, context.session_id)
        return row is not None and row.ended_at is None


def _check(
    app: Flask, client: FlaskClient, route: Route, role: Role | None, state: State, context: Context
) -> None:
    url = route.url(context)
    denied_before = len(audit_events(app, route.denied_action))
    if route.method == "POST":
        response = client.post(url, data={"csrf_token": csrf_token(client, "/login"), **route.data})
    else:
        response = client.get(url)

    status, target = expected(route, role, state)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    if status == 302:
        assert target is not None
        redirect = urlsplit(location(response))
        assert redirect.netloc == ""
        assert redirect.path == target.format(user_id=context.user_id)
        if route.method == "GET" and route.reached.get(state) != (status, target):
            # A gate redirect brings the visitor back where they were going, unless that
            # is itself a sign-in step (returning there would only loop).
            expected_next = None if url.startswith(SIGN_IN_PATHS) else [url]
            assert parse_qs(redirect.query).get("next") == expected_next
    denied = audit_events(app, route.denied_action)[denied_before:]
    if status == 403:
        # An anonymous visitor (context user 0) is recorded as nobody.
        refused_as = context.user_id or None
        assert [(event.actor_id, details(event)["path"]) for event in denied] == [(refused_as, url)]
    else:
        assert denied == []


@pytest.mark.parametrize(("role", "state"), CELLS, ids=CELL_IDS)
def test_access_matrix(app, client, create_user, login_as, publish, subtests, role, state):
    """One subtest per route the app serves; a route missing from the table fails its subtest."""
    publish()
    person = None if role is None else create_user(role)
    table = {(route.method, route.rule): route for route in ROUTES}
    context = Context(user_id=0, session_id=0, session_ref="0" * 32)
    for method, rule in sorted(served_routes(app)):
        with subtests.test(msg=f"{method} {rule}"):
            route = table.get((method, rule))
            assert route is not None, f"{method} {rule} has no access-matrix entry"
            # The previous route may have ended the session (sign-out, revocation): start a new one.
            if person is not None and not _is_live(app, context):
                context = _sign_in(client, person, state, login_as)
            _check(app, client, route, role, state, context)


def test_undeclared_view_is_refused(app, client, create_user, login_as):
    """Deny by default: a view that declares no access rule is unreachable, even for an admin."""
    throwaway = Blueprint("throwaway", __name__)

    @throwaway.route("/throwaway/undeclared")
    def undeclared() -> str:
        return "should never be served"

    @throwaway.route("/throwaway/public")
    @public
    def declared_public() -> str:
        return "public page"

    @throwaway.route("/throwaway/supervisors")
    @role_required(Role.SUPERVISOR)
    def supervisors_only() -> str:
        return "supervisor page"

    app.register_blueprint(throwaway)
    admin = create_user(Role.ADMIN)

    anonymous = client.get("/throwaway/undeclared")
    assert anonymous.status_code == 403
    assert "should never be served" not in anonymous.get_data(as_text=True)
    assert client.get("/throwaway/public").get_data(as_text=True) == "public page"

    login_as(client, admin)
    response = client.get("/throwaway/undeclared")
    assert response.status_code == 403
    assert "should never be served" not in response.get_data(as_text=True)
    assert client.get("/throwaway/supervisors").status_code == 403

    denied = audit_events(app, "access.denied")
    assert [(event.actor_id, details(event)["path"]) for event in denied] == [
        (None, "/throwaway/undeclared"),
        (admin.id, "/throwaway/undeclared"),
        (admin.id, "/throwaway/supervisors"),
    ]
    assert all(event.outcome == "denied" for event in denied)
