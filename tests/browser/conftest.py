"""Browser fixtures: the portal on a live local server, and headless Chromium driving it.

The live server serves the `app` fixture of tests/conftest.py, that is
`create_app(make_env(database_url, ...))` on a fresh migrated database, through
`werkzeug.serving.make_server` on 127.0.0.1 and a free port, in a background thread.
Browser tests run on SQLite only (see `SQLITE_ONLY`): what they check is the pages, and
the database behaviour is covered on both backends by the other suites.

Chromium is Debian's `/usr/bin/chromium`, never a downloaded build. If it is missing the
tests fail (CI installs it; a skipped browser suite would pass silently).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 720}
TIMEOUT_MS = 10_000
SCREENSHOTS_ENV = "PORTAL_SCREENSHOTS_DIR"

# Put in a test module's `pytestmark`: run on SQLite even when PostgreSQL is configured.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class LiveServer:
    """The portal served over real HTTP; `url` has no trailing slash."""

    app: Flask
    url: str


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """Serve `app` on 127.0.0.1 and a free port until the test ends."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium, shared by every browser test of the run."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get install chromium; .ci/run does this). Never `playwright install`."
        )
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


@dataclass
class ConsoleWatch:
    """What the pages of one test wrote to the console: CSP violations and script errors."""

    messages: list[str] = field(default_factory=list)

    def record(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.messages.append(f"{message.type}: {message.text} ({message.location.get('url', '')})")

    def record_page_error(self, error: Exception) -> None:
        self.messages.append(f"pageerror: {error}")

    @property
    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]


@pytest.fixture
def console() -> ConsoleWatch:
    """The console messages of the test's pages; checked for CSP violations at teardown."""
    return ConsoleWatch()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer, console: ConsoleWatch) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280×720, with the live server as base URL.

    Fails the test at teardown if any page it visited violated the Content Security
    Policy (inline script or style, a foreign origin).
    """
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.on("console", console.record)
    tab.on("pageerror", console.record_page_error)
    yield tab
    context.close()
    assert not console.csp_violations, "\n".join(console.csp_violations)


@pytest.fixture
def screenshot(page: Page) -> Callable[[str], None]:
    """screenshot(name): save the viewport as NAME.png if PORTAL_SCREENSHOTS_DIR is set.

    Used to review the pages' look and to refresh docs/screenshots/; a no-op otherwise.
    """
    target = os.environ.get(SCREENSHOTS_ENV)

    def take(name: str) -> None:
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(target) / f"{name}.png"))
            page.screenshot(path=str(Path(target) / f"{name}-full.png"), full_page=True)

    return take


def expect_path(page: Page, path: str) -> None:
    """Wait until the page is at `path` on the live server, whatever its query string."""
    expect(page).to_have_url(re.compile(rf"^https?://[^/]+{re.escape(path)}(\?.*)?$"))


def accept_nda(page: Page, full_name: str) -> None:
    """Type the name, tick the box and accept, as a person would."""
    page.get_by_label("Your full name").fill(full_name)
    page.get_by_label("I have read this agreement and accept it.").check()
    page.get_by_role("button", name="Accept and continue").click()


def sign_out(page: Page) -> None:
    """Use the sign-out button of the top bar."""
    page.get_by_role("banner").get_by_role("button", name="Sign out").click()
