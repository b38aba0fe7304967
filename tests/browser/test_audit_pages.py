"""The auditor's pages in Chromium: search, a clip's report, anomalies, a step-up export.

A week of playback is written into the log the way the playback service writes it (three
annotators of two vendors, one of them replaying a clip again and again late at night),
then an auditor searches it, opens the clip's report, looks at the anomalies and exports
the clip's events: the confirm page asks for a fresh code, the download starts by itself,
and the file verifies offline. Time is frozen (`clock`) so that the step-up can use the
next TOTP step without waiting for it. The search screenshot is the README's
(`PORTAL_SCREENSHOTS_DIR=... pytest tests/browser/test_audit_pages.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Page, expect

from portal.audit.models import Outcome
from portal.audit.services import Actor, record_event
from portal.audit.verify import verify_file
from portal.auth.models import Role, User, Vendor
from portal.clips.models import Clip, ClipStatus
from portal.extensions import db
from portal.keys import portal_keys
from tests.browser.conftest import SQLITE_ONLY, ConsoleWatch, accept_nda, expect_path
from tests.conftest import Person, Traveller

pytestmark = [pytest.mark.browser, SQLITE_ONLY]

CLIP = "5e0c2a9f4b1d47e8a3c6f0b2d9e8a7c1"
SIZE = 480_000
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _actor(person: Person, vendor: str, ip: str) -> Actor:
    return Actor(
        user_id=person.id,
        label=person.email,
        role=person.role.value,
        vendor=vendor,
        session_ref=f"{person.id:032x}",
        ip=ip,
        user_agent=AGENT,
    )


def load_week(app: Flask, clock: Traveller, people: dict[str, Person]) -> None:
    """Seven days of claims and playback, and one annotator replaying a clip at night."""
    with app.app_context():
        db.session.add(
            Clip(
                public_id=CLIP,
                subject_pseudonym="9" * 64,
                locale="en-GB",
                duration_ms=24_000,
                consent_opt_in=True,
                consent_recorded_at=clock.now,
                consent_scope="human_review",
                transcript="",
                passes=2,
                status=ClipStatus.ACTIVE,
                ingested_at=clock.now,
                retain_until=clock.now + timedelta(days=90),
            )
        )
        acme = db.session.scalar(sa.select(Vendor).where(Vendor.name == "Acme Transcription"))
        acme.work_start, acme.work_end, acme.work_timezone = time(8), time(18), "Europe/London"
        for person, name in ((people["ada"], "Ada Lovelace"), (people["grace"], "Grace Hopper")):
            db.session.get(User, person.id).full_name = name
        db.session.commit()

    def emit(actor: Actor, action: str, target: str | None, outcome: Outcome = Outcome.ALLOWED, **details):
        with app.app_context():
            record_event(actor, action, outcome=outcome, target=target, details=details)
            db.session.commit()

    ada = _actor(people["ada"], "Acme Transcription", "203.0.113.24")
    grace = _actor(people["grace"], "Acme Transcription", "203.0.113.51")
    linus = _actor(people["linus"], "Blue Lagoon Typing", "198.51.100.8")
    grant = 0
    for day in range(7):
        clock.advance(hours=1 if day == 0 else 24)
        for number, actor in enumerate((ada, grace, linus)):
            task = 100 + day * 3 + number
            clip = CLIP if task in (100, 101) else f"{task:032x}"
            clock.advance(minutes=7)
            emit(actor, "auth.sign_in", f"user:{actor.user_id}", step="password", next="totp")
            emit(actor, "task.claimed", f"task:{task}", lease=task, clip=clip, priority=0)
            grant += 1
            emit(actor, "playback.granted", f"clip:{clip}", grant=grant, task=task, lease=task, expires_in=60)
            emit(
                actor,
                "playback.range",
                f"clip:{clip}",
                grant=grant,
                task=task,
                lease=task,
                first=0,
                last=SIZE - 1,
                length=SIZE,
                size=SIZE,
            )
            emit(
                actor,
                "playback.progress",
                f"clip:{clip}",
                task=task,
                lease=task,
                position=24.0,
                speed=1.0,
                heard_share=1.0,
                fully_heard=True,
                final=True,
                heard=[[0.0, 24.0]],
            )
            clock.advance(minutes=3)
            emit(actor, "task.submitted", f"task:{task}", lease=task, wer=0.08)
    # The last night: Grace comes back to the first clip before dawn, again and again.
    clock.advance(hours=14)
    for _ in range(4):
        grant += 1
        clock.advance(minutes=4)
        emit(grace, "playback.granted", f"clip:{CLIP}", grant=grant, task=101, lease=101, expires_in=60)
        emit(
            grace,
            "playback.range",
            f"clip:{CLIP}",
            grant=grant,
            task=101,
            lease=101,
            first=0,
            last=SIZE - 1,
            length=SIZE,
            size=SIZE,
        )
        emit(
            grace,
            "playback.progress",
            f"clip:{CLIP}",
            task=101,
            lease=101,
            position=9.5,
            speed=1.0,
            heard_share=1.0,
            fully_heard=True,
            final=False,
            heard=[[3.0, 9.5]],
        )
    emit(
        linus,
        "access.denied",
        None,
        Outcome.DENIED,
        reason="role annotator may not use review.queue",
        method="GET",
        path="/review",
    )
    emit(linus, "playback.denied", f"clip:{CLIP}", Outcome.DENIED, reason="other_user", grant=grant)
    clock.advance(hours=7)


def sign_in(page: Page, person: Person, clock: Traveller) -> None:
    clock.advance(seconds=30)
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("textbox", name="Code").fill(person.totp(clock.now))
    page.get_by_role("button", name="Verify").click()
    accept_nda(page, "Alex Auditor")
    expect_path(page, "/")


def test_search_report_anomalies_and_a_stepped_up_export(
    page: Page,
    app: Flask,
    clock: Traveller,
    console: ConsoleWatch,
    screenshot: Callable[[str], None],
    create_user,
    publish,
    tmp_path: Path,
):
    publish()
    people = {
        "ada": create_user(Role.ANNOTATOR, email="ada@acme.example"),
        "grace": create_user(Role.ANNOTATOR, email="grace@acme.example"),
        "linus": create_user(Role.ANNOTATOR, "Blue Lagoon Typing", email="linus@bluelagoon.example"),
    }
    auditor = create_user(Role.AUDITOR, email="alex.auditor@portal.example")
    load_week(app, clock, people)

    sign_in(page, auditor, clock)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect_path(page, "/audit")
    expect(page.get_by_role("heading", name="Audit", exact=True)).to_be_visible()
    rows = page.locator("table.audit-table tbody tr")
    expect(rows).to_have_count(50)
    expect(page.get_by_role("link", name="Older →")).to_be_visible()

    # Narrow to one clip, newest first; the search is in the URL, so it can be shared.
    page.get_by_label("Clip pseudonym").fill(CLIP)
    page.get_by_label("Action").fill("playback.")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"clip={CLIP}"))
    expect(rows).to_have_count(19)
    expect(rows.first).to_contain_text("playback.denied")
    expect(rows.first).to_contain_text("denied")
    screenshot("audit-search")

    # The clip's report: who heard it, which seconds, how often.
    rows.nth(3).get_by_role("link", name=re.compile(r"^clip:")).click()
    expect(page.get_by_role("heading", name=re.compile("Who heard clip"))).to_be_visible()
    listeners = page.locator("table.audit-table").first.locator("tbody tr")
    expect(listeners).to_have_count(3)
    expect(listeners.nth(1)).to_contain_text("grace@acme.example")
    expect(listeners.nth(1).locator("td.num").nth(1)).to_have_text("5")
    expect(listeners.nth(1).locator("svg.seconds-bar rect.heard")).to_have_count(1)
    screenshot("audit-clip")

    # Anomalies: Grace's replays and her night, Linus's refusals are not enough (threshold 10).
    page.get_by_role("link", name="Access log", exact=True).click()
    page.get_by_role("link", name="Anomalies").click()
    flags = page.locator("table.audit-table tbody tr")
    expect(flags.filter(has_text="Repeated full replays of one clip")).to_contain_text("grace@acme.example")
    expect(flags.filter(has_text="Access outside the vendor's working hours")).to_contain_text(
        "grace@acme.example"
    )
    screenshot("audit-anomalies")

    # Export the clip's events: a fresh code first, then the download starts by itself.
    page.goto(f"/audit?clip={CLIP}")
    page.get_by_role("link", name="Export JSONL").click()
    expect_path(page, "/audit/export/confirm")
    expect(page.get_by_role("heading", name="Confirm the export")).to_be_visible()
    screenshot("audit-confirm-export")
    clock.advance(seconds=30)
    page.get_by_role("textbox", name="Code").fill(auditor.totp(clock.now))
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Confirm and download").click()
    download = download_info.value
    assert re.fullmatch(r"audit-filtered-\d{8}T\d{6}Z-seq\d+-\d+\.jsonl", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    expect(page.get_by_role("heading", name="Your download is starting")).to_be_visible()
    with app.app_context():
        result = verify_file(saved, portal_keys().audit_signing_key.public_key())
    assert result.ok and result.filters == {"clip": CLIP} and result.events == 19, result.problems
    assert not console.messages, console.messages
