"""The work loop in Chromium, end to end: claim, listen, type, submit; reject; someone else gets it.

An annotator signs in, claims the only task, plays the whole clip at 2× through the
in-memory player, and the test checks what a person trying to keep the audio would try:
no media element and no media URL anywhere in the page, and the grant URL (taken from
the network log, the only place it appears) refused when opened in a new tab, while it is
still valid. The annotator types and submits; a supervisor listens with their own grant
and rejects with feedback; a second annotator of the vendor gets the task back and reads
the feedback. TOTP codes come from the real clock (no `clock` fixture here).
"""

from __future__ import annotations

import io
import json
import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from portal.audit.models import AuditEvent
from portal.auth.models import Role
from portal.clips.services import ingest_clip
from portal.clock import utcnow
from portal.extensions import db
from tests.browser.conftest import SQLITE_ONLY, ConsoleWatch, LiveServer, expect_path, sign_out
from tests.clips.helpers import ACME, metadata, wav
from tests.conftest import TEST_ACTOR, Person

pytestmark = [pytest.mark.browser, SQLITE_ONLY]

CLIP_SECONDS = 2.5
MACHINE = "hello there this is a test"
CORRECTED = "Hello there, this is the test."
FEEDBACK = "The last word is 'test', not 'the test'. Listen again."
MEDIA_URL = re.compile(r"/media/[A-Za-z0-9_-]{43}$")


def sign_in(page: Page, person: Person) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()
    expect_path(page, "/2fa")
    page.get_by_role("textbox", name="Code").fill(person.totp())
    page.get_by_role("button", name="Verify").click()
    expect_path(page, "/")


def ingest(live_server: LiveServer) -> str:
    with live_server.app.app_context():
        meta = metadata(passes=1, transcript=MACHINE, vendors=[ACME])
        result = ingest_clip(io.BytesIO(wav(CLIP_SECONDS)), meta, TEST_ACTOR, utcnow())
        db.session.commit()
        return result.clip.public_id


def playback_denials(live_server: LiveServer) -> list[str]:
    with live_server.app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEvent.details)
            .where(AuditEvent.action == "playback.denied")
            .order_by(AuditEvent.seq)
        )
        return [re.search(r'"reason":"([a-z_]+)"', text).group(1) for text in rows]


def refusals(live_server: LiveServer) -> list[tuple[str, str]]:
    """Every event that is not `allowed`, as (action, reason), in order."""
    with live_server.app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.details)
            .where(AuditEvent.outcome != "allowed")
            .order_by(AuditEvent.seq)
        )
        return [(action, json.loads(details).get("reason", "")) for action, details in rows]


def actions_of_lease(live_server: LiveServer, task_path: str) -> list[tuple[str, bool | None]]:
    """The task's submission or skip and its progress reports, as (action, final), in order."""
    task_id = int(task_path.rsplit("/", 1)[1])
    with live_server.app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.target, AuditEvent.details)
            .where(AuditEvent.action.in_(("playback.progress", "task.submitted", "task.skipped")))
            .order_by(AuditEvent.seq)
        )
        return [
            (action, json.loads(details).get("final"))
            for action, target, details in rows
            if target == f"task:{task_id}" or json.loads(details).get("task") == task_id
        ]


def seconds(text: str) -> float:
    minutes, rest = text.split(":")
    return int(minutes) * 60 + float(rest)


def wait_for_player(page: Page) -> None:
    expect(page.locator("#workspace")).to_have_class(re.compile(r"\bready\b"))
    expect(page.locator("#player-status")).to_contain_text("Ready")


def claim_next_task(page: Page, live_server: LiveServer, person: Person) -> str:
    """Sign `person` in, claim the next task and wait for its player; return the task's path."""
    sign_in(page, person)
    page.goto("/tasks")
    page.get_by_role("button", name="Start the next task").click()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    wait_for_player(page)
    return page.url.split(live_server.url, 1)[1]


def assert_no_media_in_dom(page: Page) -> None:
    found = page.evaluate(
        """() => ({
            elements: document.querySelectorAll("audio, video, source, object, embed").length,
            withSrc: [...document.querySelectorAll("[src]")].map((e) => e.getAttribute("src"))
                .filter((src) => !src.startsWith("/static/")),
            media: document.documentElement.outerHTML.includes("/media/"),
            blob: document.documentElement.outerHTML.includes("blob:"),
        })"""
    )
    assert found == {"elements": 0, "withSrc": [], "media": False, "blob": False}


def test_claim_listen_submit_reject_and_reassign(
    page: Page, live_server: LiveServer, console: ConsoleWatch, create_user, screenshot
):
    first = create_user(Role.ANNOTATOR, ACME)
    supervisor = create_user(Role.SUPERVISOR, ACME)
    second = create_user(Role.ANNOTATOR, ACME)
    public_id = ingest(live_server)
    media_requests: list[str] = []
    page.on(
        "request", lambda request: media_requests.append(request.url) if "/media/" in request.url else None
    )

    # The first annotator claims the task; the page loads the clip through a grant.
    task_path = claim_next_task(page, live_server, first)
    expect(page.locator("#submit")).to_be_disabled()

    # Nothing in the page names or holds the audio; the grant URL exists only on the wire.
    assert_no_media_in_dom(page)
    assert media_requests and all(MEDIA_URL.search(url) for url in media_requests)
    tab = page.context.new_page()
    refused = tab.goto(media_requests[0])
    assert refused is not None and refused.status == 403
    assert "playback_refused" in tab.content()
    assert b"fLaC" not in refused.body()
    tab.close()
    assert playback_denials(live_server) == ["opened_as_document"]

    # Play the whole clip at 2×; the server then allows submitting.
    for _ in range(4):
        page.locator("#faster").click()
    expect(page.locator("#speed")).to_have_text("2×")
    page.locator("#play").click()
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#submit")).to_be_enabled(timeout=15_000)
    expect(page.locator("#heard")).to_have_text("100% heard")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")
    assert_no_media_in_dom(page)

    # Drag a region on the waveform and loop it: playback stays inside the region.
    box = page.locator("#waveform").bounding_box()
    assert box is not None
    middle = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, middle)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, middle, steps=5)
    page.mouse.up()
    expect(page.locator("#position")).to_have_text("0:01.0")
    page.locator("#loop").click()
    expect(page.locator("#loop")).to_have_attribute("aria-pressed", "true")

    # The player's keys work while typing in the transcript box.
    transcript = page.locator("#transcript")
    transcript.fill(CORRECTED)
    transcript.press("Escape")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(1500)  # at 2×, three times round the 1 s region
    assert 0.95 <= seconds(page.locator("#position").inner_text()) <= 2.05
    transcript.press("Escape")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")
    expect(transcript).to_be_focused()
    expect(transcript).to_have_value(CORRECTED)
    screenshot("work-page")

    page.locator("#submit").click()
    expect_path(page, "/tasks")
    expect(page.locator(".flash")).to_contain_text("Submitted")
    # The player's last report went out before the submission ended the lease; none after it.
    *_, (last_report, final), (ended, _) = actions_of_lease(live_server, task_path)
    assert (last_report, final, ended) == ("playback.progress", True, "task.submitted")
    assert refusals(live_server) == [("playback.denied", "opened_as_document")]
    sign_out(page)

    # The supervisor listens with their own grant and rejects with feedback.
    sign_in(page, supervisor)
    page.goto("/review")
    page.get_by_role("link", name="Review").last.click()
    expect(page).to_have_url(re.compile(r"/review/\d+$"))
    expect(page.locator("main")).to_contain_text(public_id[:12])
    wait_for_player(page)
    assert_no_media_in_dom(page)
    page.get_by_label("Feedback for the annotator").fill(FEEDBACK)
    page.get_by_role("button", name="Reject and send back").click()
    expect_path(page, "/review")
    expect(page.locator(".flash")).to_contain_text("Rejected")
    sign_out(page)

    # Another annotator of the vendor gets the task back, with the reviewer's feedback.
    sign_in(page, second)
    page.goto("/tasks")
    page.get_by_role("button", name="Start the next task").click()
    expect(page).to_have_url(re.compile(re.escape(task_path) + "$"))
    expect(page.locator(".feedback-notice")).to_contain_text(FEEDBACK)
    wait_for_player(page)
    assert playback_denials(live_server) == ["opened_as_document"]
    assert refusals(live_server) == [("playback.denied", "opened_as_document")]
    assert console.messages == []


def test_skipping_sends_the_last_report_first_and_nothing_after(
    page: Page, live_server: LiveServer, console: ConsoleWatch, create_user
):
    """Leaving through a form of the page must not leave a refused report in the audit log.

    The player reports what was heard when the page goes away; sent after the skip had
    ended the lease, that report was refused and recorded as a denied attempt, enough of
    which flag an honest annotator (see the audit's anomaly rules).
    """
    annotator = create_user(Role.ANNOTATOR, ACME)
    ingest(live_server)
    task_path = claim_next_task(page, live_server, annotator)
    page.locator("#play").click()
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(600)

    page.get_by_role("button", name="Skip…").click()
    page.get_by_label("I cannot play or hear it properly").check()
    page.get_by_role("button", name="Skip task").click()
    expect_path(page, "/tasks")
    expect(page.locator(".flash")).to_contain_text("Task skipped")
    page.wait_for_timeout(500)  # room for a late report to arrive, were one still sent

    *_, (last_report, final), (ended, _) = actions_of_lease(live_server, task_path)
    assert (last_report, final, ended) == ("playback.progress", True, "task.skipped")
    assert refusals(live_server) == []
    assert console.messages == []
