"""Every page, visited in Chromium: none breaks the Content Security Policy.

The policy forbids inline script and style; a template that slips one in only shows up as
a console message in a real browser. The tour also takes the screenshots used to review
the pages (set PORTAL_SCREENSHOTS_DIR to keep them).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from portal.auth.models import Role, User
from portal.config import PROJECT_ROOT
from portal.extensions import db
from tests.browser.conftest import SQLITE_ONLY, ConsoleWatch, accept_nda, sign_out
from tests.conftest import Person

pytestmark = [pytest.mark.browser, SQLITE_ONLY]

DEMO_NDA = (PROJECT_ROOT / "portal" / "demo" / "nda-v1.txt").read_text(encoding="utf-8")


def rename(app: Flask, person: Person, full_name: str) -> None:
    """Give a fixture user a realistic name: the screenshots end up in the README."""
    with app.app_context():
        user = db.session.get(User, person.id)
        assert user is not None
        user.full_name = full_name
        db.session.commit()


def test_every_page_renders_without_a_csp_violation(
    page: Page, app: Flask, console: ConsoleWatch, screenshot: Callable[[str], None], create_user, publish
):
    publish(DEMO_NDA, title="Confidentiality agreement for transcription contractors")
    admin = create_user(Role.ADMIN, email="robin.admin@portal.example", enrolled=False)
    annotator = create_user(Role.ANNOTATOR, email="ada@acme.example")
    rename(app, admin, "Robin Admin")
    rename(app, annotator, "Ada Annotator")

    def look(name: str) -> None:
        expect(page.locator("h1"), f"{name}: one main heading").to_have_count(1)
        screenshot(name)

    page.goto("/login")
    look("login")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    look("login-error")
    page.get_by_label("Password").fill(admin.password)
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(re.compile(r"/2fa/setup"))
    look("2fa-setup")
    page.get_by_role("textbox", name="Code").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_contain_text("That code did not work")
    look("2fa-setup-error")
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_role("textbox", name="Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    look("recovery-codes")
    page.locator("#continue").click()

    expect(page).to_have_url(re.compile(r"/nda"))
    look("nda")
    accept_nda(page, "Robin Admin")
    expect(page.get_by_role("heading", name="Welcome, Robin Admin")).to_be_visible()
    look("home")

    page.get_by_role("navigation").get_by_role("link", name="My sessions").click()
    expect(page.get_by_role("heading", name="My sessions")).to_be_visible()
    look("sessions")
    page.goto("/nda/mine")
    expect(page.get_by_role("heading", name="Agreements you signed")).to_be_visible()
    look("nda-mine")

    page.get_by_role("navigation").get_by_role("link", name=re.compile("Users")).click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    look("admin-index")
    page.get_by_label("Email").fill("sam.supervisor@acme.example")
    page.get_by_label("Full name").fill("Sam Supervisor")
    page.get_by_label("Role").select_option("supervisor")
    page.get_by_label("Vendor", exact=True).select_option(label="Acme Transcription")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-password")).to_be_visible()
    look("admin-user-created")
    page.get_by_role("link", name="Back to users").click()
    page.get_by_role("link", name=admin.email).click()
    expect(page.get_by_role("heading", name=admin.email)).to_be_visible()
    look("admin-user")
    page.get_by_role("navigation").get_by_role("link", name="NDA").click()
    expect(page.get_by_role("heading", name="Publish a new NDA version")).to_be_visible()
    look("admin-nda")

    assert page.goto("/no/such/page").status == 404
    look("error-404")

    sign_out(page)
    page.get_by_label("Email").fill(annotator.email)
    page.get_by_label("Password").fill(annotator.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/2fa(\?|$)"))
    look("2fa")
    page.get_by_role("textbox", name="Code").fill(annotator.totp())
    page.get_by_role("button", name="Verify").click()
    accept_nda(page, "Ada Annotator")
    assert page.goto("/admin/").status == 403
    look("error-403")

    assert console.csp_violations == []


def test_the_console_watch_sees_inline_script_and_style(page: Page, console: ConsoleWatch):
    """The check above is only worth something if a violation would be caught."""
    page.goto("/login")
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.evaluate(
        "const s = document.createElement('script'); s.textContent = 'window.x = 1'; document.body.append(s)"
    )
    for _ in range(40):
        if len(console.csp_violations) >= 2:
            break
        page.wait_for_timeout(50)
    assert len(console.csp_violations) == 2, console.messages
    console.messages.clear()
