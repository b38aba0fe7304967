"""The supervisor dashboard in Chromium: charts drawn, the date filter working, no CSP violation.

Four weeks of generated history (tests/analytics/history.py: five vendors, 32 annotators)
make the charts look like a working portal's; the screenshot of this test is the README's
(`PORTAL_SCREENSHOTS_DIR=... pytest tests/browser/test_dashboard.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from portal.auth.models import Role
from portal.clock import utcnow
from portal.extensions import db
from tests.analytics.history import VENDORS, HistorySpec, generate_history
from tests.browser.conftest import SQLITE_ONLY, ConsoleWatch, accept_nda, expect_path
from tests.conftest import Person

pytestmark = [pytest.mark.browser, SQLITE_ONLY]


# Five vendors, 32 annotators (a sixth of the benchmark's).
TEAMS = tuple((name, count // 6, shift) for name, count, shift in VENDORS)


def load_history(app: Flask, reviewer: Person) -> None:
    spec = HistorySpec(
        end=utcnow(),
        days=28,
        vendors=TEAMS,
        backlog=600,
        reviewer_id=reviewer.id,
    )
    with app.app_context():
        assert db.engine is not None
        with db.engine.begin() as connection:
            generate_history(connection, spec)


def sign_in(page: Page, person: Person) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("textbox", name="Code").fill(person.totp())
    page.get_by_role("button", name="Verify").click()
    accept_nda(page, "Sam Supervisor")


def test_dashboard_charts_and_date_filter(
    page: Page,
    app: Flask,
    console: ConsoleWatch,
    screenshot: Callable[[str], None],
    create_user: Callable[..., Person],
    publish: Callable[..., int],
):
    publish()
    supervisor = create_user(Role.SUPERVISOR, None, email="sam.supervisor@portal.example")
    load_history(app, supervisor)
    sign_in(page, supervisor)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect_path(page, "/supervisor")
    expect(page.get_by_role("heading", level=1)).to_have_text("Throughput and quality")
    # Three charts, drawn by the server as SVG: bars in each, a legend per vendor.
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(3)
    for index in range(3):
        assert charts.nth(index).locator("rect").count() > 0
    expect(page.locator(".legend li")).to_have_count(5 + 4)
    # One sparkline per annotator who worked this week, and the trend in the "tasks done" figure.
    rows = page.get_by_role("region", name="Annotators").locator("tbody tr").count()
    assert 20 <= rows <= sum(count for _, count, _ in TEAMS)
    expect(page.locator("svg.sparkline")).to_have_count(rows + 1)
    expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "true")
    expect(page.get_by_role("table").first).to_be_visible()
    screenshot("supervisor-dashboard")

    # The date filter: a whole week in the past (weekdays whatever today is), one vendor.
    today = utcnow().date()
    first, last = today - timedelta(days=9), today - timedelta(days=3)
    page.get_by_label("From", exact=True).fill(first.isoformat())
    page.get_by_label("To", exact=True).fill(last.isoformat())
    page.get_by_label("Vendor", exact=True).select_option(label="Globex Voice")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"from={first.isoformat()}&to={last.isoformat()}&vendor=\d+"))
    expect(page.locator(".lede")).to_contain_text(
        f"Globex Voice’s annotators, {first:%-d %b %Y} – {last:%-d %b %Y}"
    )
    expect(page.locator("svg.chart")).to_have_count(3)
    assert page.locator("svg.chart").first.locator("rect").count() > 0
    assert "acme.example" not in page.locator("#main").inner_text()
    page.get_by_role("link", name="30 days").click()
    expect(page.get_by_role("link", name="30 days")).to_have_attribute("aria-current", "true")
    expect(page.locator(".lede")).to_contain_text("Globex Voice’s annotators")

    # A bad range is refused with a message next to the fields, which stay there to fix it.
    page.get_by_label("From", exact=True).fill(last.isoformat())
    page.get_by_label("To", exact=True).fill(first.isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_have_text("The start date is after the end date.")
    expect(page.get_by_label("From", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("svg.chart")).to_have_count(0)

    # A CSV download of a table, same filters.
    page.goto("/supervisor")
    with page.expect_download() as download:
        page.locator("a.csv-link[href^='/supervisor/annotators.csv']").click()
    assert download.value.suggested_filename.startswith("annotators_")
    # The only console message is Chromium noting the refused range's 400.
    assert [message for message in console.messages if "status of 400" not in message] == []
