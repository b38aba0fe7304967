"""The dashboard page: who may see it, whose numbers it shows, its filters and its charts."""

from __future__ import annotations

import re

import pytest

from portal.auth.models import Role
from tests.auth.helpers import audit_events, details


def page(client, query: str = ""):
    return client.get("/supervisor" + query)


def test_only_supervisors(app, figures, create_user, login_as):
    for role in (Role.ANNOTATOR, Role.AUDITOR, Role.ADMIN):
        client = login_as(app.test_client(), create_user(role))
        for path in ("/supervisor", "/supervisor/annotators.csv"):
            response = client.get(path)
            assert response.status_code == 403, (role, path)
            assert "a1@acme.example" not in response.get_data(as_text=True)
    denied = audit_events(app, "access.denied")
    assert len(denied) == 6
    assert all(event.outcome == "denied" for event in denied)


def test_vendor_supervisor_sees_only_their_vendor(client, figures, login_as):
    login_as(client, figures.acme_supervisor)
    response = page(client)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "a1@acme.example" in html and "a2@acme.example" in html
    assert "g1@globex.example" not in html
    assert "Globex" not in html
    # No vendor picker for a vendor supervisor.
    assert 'name="vendor"' not in html
    # Acme's figures only: 7 tasks done, 2 rubber stamps.
    assert re.search(r"Tasks done</p>\s*<p class=\"kpi-value\">7 ", html)
    assert re.search(r"Rubber-stamp flags</p>\s*<p class=\"kpi-value\">2<", html)


@pytest.mark.parametrize("asked", ["own", "other", "missing", "garbage"])
def test_vendor_filter_of_a_vendor_supervisor(app, client, figures, login_as, asked):
    login_as(client, figures.globex_supervisor)
    vendor = {
        "own": str(figures.globex_id),
        "other": str(figures.acme_id),
        "missing": "999999",
        "garbage": "1 OR 1=1",
    }[asked]
    for path in ("/supervisor", "/supervisor/annotators.csv"):
        response = client.get(path, query_string={"vendor": vendor})
        body = response.get_data(as_text=True)
        assert "a1@acme.example" not in body
        if asked == "own":
            assert response.status_code == 200
            assert "g1@globex.example" in body
        else:
            # Asking for anything but their own vendor is an attempt: refused and audited.
            assert response.status_code == 403
    denied = audit_events(app, "access.denied")
    if asked == "own":
        assert denied == []
    else:
        assert [(event.actor_id, event.target, details(event)["path"]) for event in denied] == [
            (figures.globex_supervisor.id, f"vendor:{vendor}", "/supervisor"),
            (figures.globex_supervisor.id, f"vendor:{vendor}", "/supervisor/annotators.csv"),
        ]


def test_internal_supervisor_sees_all_or_picks_one(client, figures, login_as):
    login_as(client, figures.internal_supervisor)
    html = page(client).get_data(as_text=True)
    assert all(email in html for email in ("a1@acme.example", "a2@acme.example", "g1@globex.example"))
    assert re.search(r"Tasks done</p>\s*<p class=\"kpi-value\">9 ", html)
    assert f'<option value="{figures.globex_id}">Globex Voice</option>' in html

    html = page(client, f"?vendor={figures.globex_id}").get_data(as_text=True)
    assert "g1@globex.example" in html
    assert "a1@acme.example" not in html
    assert re.search(r"Tasks done</p>\s*<p class=\"kpi-value\">2 ", html)
    assert f'<option value="{figures.globex_id}" selected>' in html

    for bad in ("999999", "acme"):
        response = page(client, f"?vendor={bad}")
        assert response.status_code == 400
        assert "vendor" in response.get_data(as_text=True).lower()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?from=2026-13-01", "The start date must be a date like 2026-11-30"),
        ("?from=yesterday", "The start date must be a date like 2026-11-30"),
        ("?to=2026-11-3", "The end date must be a date like 2026-11-30"),
        ("?from=2026-11-29&to=2026-11-20", "The start date is after the end date."),
        ("?from=2025-01-01&to=2026-11-30", "Choose at most 366 days; this range has 699."),
        ("?to=2026-12-01", "The end date 2026-12-01 is in the future"),
    ],
)
def test_bad_dates_are_refused_clearly(client, figures, login_as, query, message):
    login_as(client, figures.acme_supervisor)
    response = page(client, query)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html
    assert 'role="alert"' in html and 'aria-invalid="true"' in html
    # The form stays there to be corrected, and no figures are shown.
    assert 'name="from"' in html and "a1@acme.example" not in html
    csv = client.get("/supervisor/queue.csv" + query)
    assert csv.status_code == 400
    assert message in csv.get_data(as_text=True)


def test_date_range(client, figures, login_as):
    login_as(client, figures.internal_supervisor)
    html = page(client).get_data(as_text=True)
    assert "24 Nov 2026 – 30 Nov 2026" in html
    assert 'value="2026-11-24"' in html and 'value="2026-11-30"' in html
    html = page(client, "?from=2026-11-27&to=2026-11-27").get_data(as_text=True)
    assert re.search(r"Tasks done</p>\s*<p class=\"kpi-value\">2 ", html)
    assert "a1@acme.example" not in html
    # Only a start: up to today.
    html = page(client, "?from=2026-11-29").get_data(as_text=True)
    assert "29 Nov 2026 – 30 Nov 2026" in html
    assert re.search(r"Tasks done</p>\s*<p class=\"kpi-value\">2 ", html)


def test_charts_are_svg_without_inline_script_or_style(client, figures, login_as):
    login_as(client, figures.internal_supervisor)
    response = page(client)
    html = response.get_data(as_text=True)
    assert html.count('<svg class="chart') == 3
    bars = re.findall(
        r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" class="(series-\w+)"><title>([^<]*)</title>',
        html,
    )
    titles = {title for _, title in bars}
    assert "2026-11-24 · Acme Transcription: 2" in titles
    assert "2026-11-27 · Globex Voice: 2" in titles
    assert "2026-11-24 10:00: 2" in titles
    assert html.count('class="sparkline"') == 4
    assert "style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert 'href="/static/css/analytics.css"' in html
    assert "Content-Security-Policy" in response.headers


def test_nav_link_for_supervisors(client, figures, login_as):
    login_as(client, figures.acme_supervisor)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/supervisor"' in html


def test_a_range_without_work(client, figures, login_as):
    login_as(client, figures.acme_supervisor)
    response = page(client, "?from=2026-10-01&to=2026-10-07")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count("No tasks done in this range") == 3
    assert "No work in this range." in html and "No rubber stamps in this range." in html
    # The queue is now, whatever the range.
    assert re.search(r"Queued now</p>\s*<p class=\"kpi-value\">2<", html)
