"""Security headers, cookies in development and production, and error pages that leak nothing."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Blueprint, abort

from portal.access import public
from portal.auth.models import Role
from portal.keys import load_keys
from tests.auth.helpers import audit_events, location, page_text, sign_in_password
from tests.conftest import csrf_token, post_form

CSP_DIRECTIVES = {
    "default-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "img-src": "'self' data:",
    "media-src": "'self' blob:",
}
LEAKS = (
    "Traceback",
    'File "',
    "RuntimeError",
    "secret-internal-detail",
    "/work/",
    "site-packages",
    "sqlalchemy",
)


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    directives = [part.strip().split(None, 1) for part in policy.split(";") if part.strip()]
    return {name: value for name, value in directives}


def _assert_security_headers(response, page: bool = True) -> None:
    assert _csp(response) == CSP_DIRECTIVES
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    if page:
        assert response.headers["Cache-Control"] == "no-store"


def _assert_no_inline_code(html: str) -> None:
    """What the CSP would block (and so must not be in any page): inline scripts, styles, handlers."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.IGNORECASE), "inline <script>"
    assert not re.search(r"<style\b", html, re.IGNORECASE), "inline <style>"
    assert not re.search(r"\sstyle\s*=", html, re.IGNORECASE), "style= attribute"
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), "inline event handler"
    assert "javascript:" not in html.lower()


def test_headers_on_public_pages_redirects_and_errors(client):
    for path, status in [("/login", 200), ("/healthz", 200), ("/", 302), ("/no-such-page", 404)]:
        response = client.get(path)
        assert response.status_code == status
        _assert_security_headers(response)
    static = client.get("/static/css/portal.css")
    assert static.status_code == 200
    _assert_security_headers(static, page=False)
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_every_page_of_the_sign_in_flow_is_csp_clean(app, client, create_user, publish, clock):
    """Walk every page a person sees, from enrolment to the admin pages, checking headers and markup."""
    publish()
    admin = create_user(Role.ADMIN, enrolled=False)
    pages = [client.get("/login")]
    sign_in_password(client, admin)
    setup = client.get("/2fa/setup")
    pages.append(setup)
    secret = re.search(r'id="totp-secret"[^>]*>\s*([A-Z2-7]+)', page_text(setup))
    assert secret
    pages.append(post_form(client, "/2fa/setup", {"code": pyotp.TOTP(secret.group(1)).at(clock.now)}))
    pages.append(client.get("/nda"))
    page = page_text(pages[-1])
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert version
    post_form(client, "/nda", {"full_name": "Robin Admin", "accept": "y", "version": version.group(1)})
    for path in ("/", "/nda/mine", "/account/sessions", "/admin/", f"/admin/users/{admin.id}", "/admin/nda"):
        pages.append(client.get(path))
    pages.append(
        post_form(
            client,
            "/admin/users",
            {"email": "new@acme.example", "role": "auditor", "vendor": ""},
            form_page="/admin/",
        )
    )
    pages.append(client.get("/no-such-page"))

    other = app.test_client()
    person = create_user(Role.ANNOTATOR)
    sign_in_password(other, person)
    pages.append(other.get("/2fa"))

    for response in pages:
        assert response.status_code in (200, 404), response.request.path
        _assert_security_headers(response)
        _assert_no_inline_code(page_text(response))


@pytest.fixture
def development(app_env: dict[str, str]) -> None:
    app_env["PORTAL_ENV"] = "development"


def test_development_cookies_and_no_hsts(development, app, client, create_user):
    assert app.config["PORTAL_ENV"] == "development"
    person = create_user(Role.ANNOTATOR)
    page = client.get("/login")
    response = sign_in_password(client, person)
    assert "Strict-Transport-Security" not in response.headers
    headers = page.headers.getlist("Set-Cookie") + response.headers.getlist("Set-Cookie")
    cookies = {header.split("=", 1)[0]: header for header in headers}
    assert set(cookies) == {"portal_session", "portal_csrf"}
    for header in cookies.values():
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
        assert "Secure" not in header


def _new_keys(directory: Path) -> dict[str, str]:
    """Key files for every secret the portal knows (made the way a local start makes them), plus
    the three core secrets as environment variables, which take precedence over files."""
    load_keys(directory, True, {})
    signing_pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "PORTAL_KEYS_DIR": str(directory),
        "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
        "PORTAL_FIELD_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "PORTAL_AUDIT_SIGNING_KEY": signing_pem.decode(),
    }


@pytest.fixture
def production(app_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    keys = _new_keys(tmp_path / "production-keys")
    app_env.update(PORTAL_ENV="production", **keys)
    return keys


def test_production_cookies_and_hsts(production, app, client, create_user, clock):
    assert app.secret_key == production["PORTAL_SECRET_KEY"].encode()
    app.config["PREFERRED_URL_SCHEME"] = "https"  # the test client then speaks https
    person = create_user(Role.ANNOTATOR)

    page = client.get("/login")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    # Browsers send no Referer here (Referrer-Policy: no-referrer): sign-in must work without one.
    response = sign_in_password(client, person)
    assert response.status_code == 302, page_text(response)
    assert location(response).startswith("/2fa")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"

    headers = response.headers.getlist("Set-Cookie") + page.headers.getlist("Set-Cookie")
    names = {header.split("=", 1)[0] for header in headers}
    assert names == {"__Host-portal_session", "__Host-portal_csrf"}
    for header in headers:
        attributes = [part.strip() for part in header.split(";")]
        assert "Secure" in attributes and "HttpOnly" in attributes and "SameSite=Lax" in attributes
        assert "Path=/" in attributes
        assert not any(a.lower().startswith("domain=") for a in attributes)

    # And the second factor, over the same rules.
    assert post_form(client, "/2fa", {"code": person.totp(clock.now)}).status_code == 302
    assert client.get("/").status_code == 200


def test_production_csrf_still_refuses_forged_posts(production, app, client, create_user):
    app.config["PREFERRED_URL_SCHEME"] = "https"  # the test client then speaks https
    person = create_user(Role.ANNOTATOR)
    client.get("/login")
    response = client.post("/login", data={"email": person.email, "password": person.password})
    assert response.status_code == 400
    assert audit_events(app, "access.csrf_rejected")


@pytest.fixture
def throwaway_routes(app):
    """Routes that fail on purpose, registered before the app serves its first request."""
    bp = Blueprint("failing", __name__)

    @bp.route("/failing/crash")
    @public
    def crash() -> str:
        raise RuntimeError("secret-internal-detail at /work/main/portal/secret.py")

    @bp.route("/failing/bad-request")
    @public
    def bad_request() -> str:
        abort(400, "secret-internal-detail")

    app.register_blueprint(bp)


@pytest.fixture
def one_sign_in_per_minute(app_env: dict[str, str]) -> None:
    app_env["PORTAL_SIGN_IN_RATE_LIMIT_PER_IP"] = "1/minute"


def _error_responses(client, create_user, login_as, accept: str) -> dict[str, tuple[int, object]]:
    """One response per error status, as a browser (`text/html`) or an API client would get it."""
    headers = {"Accept": accept}
    responses = {
        "bad_request": (400, client.get("/failing/bad-request", headers=headers)),
        "csrf_failed": (400, client.post("/login", data={"email": "x@acme.example"}, headers=headers)),
        "not_found": (404, client.get("/no-such-page", headers=headers)),
        "method_not_allowed": (405, client.get("/logout", headers=headers)),
        "internal_error": (500, client.get("/failing/crash", headers=headers)),
    }
    login_as(client, create_user(Role.ANNOTATOR))
    responses["forbidden"] = (403, client.get("/admin/", headers=headers))
    # The sign-in above used this address's one attempt per minute.
    token = csrf_token(client, "/login")
    data = {"csrf_token": token, "email": "x@acme.example", "password": "x"}
    responses["rate_limited"] = (429, client.post("/login", data=data, headers=headers))
    return responses


def test_error_pages_leak_nothing(
    one_sign_in_per_minute, throwaway_routes, app, client, create_user, login_as, clock
):
    for code, (status, response) in _error_responses(client, create_user, login_as, "text/html").items():
        assert response.status_code == status, (code, page_text(response)[:500])
        assert response.mimetype == "text/html"
        body = page_text(response)
        for leak in LEAKS:
            assert leak not in body, (code, leak)
        _assert_security_headers(response)


def test_json_clients_get_json_errors(
    one_sign_in_per_minute, throwaway_routes, app, client, create_user, login_as, clock
):
    for code, (status, response) in _error_responses(
        client, create_user, login_as, "application/json"
    ).items():
        assert response.status_code == status, code
        assert response.mimetype == "application/json"
        body = response.get_json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == code
        for leak in LEAKS:
            assert leak not in response.get_data(as_text=True), (code, leak)


def test_anonymous_json_client_gets_401_not_a_redirect(client):
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json() == {"error": {"code": "authentication_required", "message": "Sign in first."}}
