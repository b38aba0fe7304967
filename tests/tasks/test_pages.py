"""The annotator's pages: the queue home and the work page's contract with player.js / work.js."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import ClassVar

from portal.config import PROJECT_ROOT

PLAYER_IDS = {
    "player": "section",
    "waveform": "canvas",
    "play": "button",
    "back": "button",
    "forward": "button",
    "slower": "button",
    "faster": "button",
    "loop": "button",
    "speed": "span",
    "position": "span",
    "duration": "span",
    "heard": "span",
    "player-status": "p",
}


class Elements(HTMLParser):
    """Every start tag with its attributes and the ids of its open ancestors."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "link",
        "input",
        "br",
        "img",
        "hr",
        "source",
        "col",
        "area",
        "base",
        "wbr",
    }

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.found: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.found.append((tag, attributes, [i for _, i in self.stack if i]))
        if tag not in self.VOID:
            self.stack.append((tag, attributes.get("id")))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def by_id(self, element_id: str) -> tuple[str, dict[str, str | None], list[str]]:
        matches = [found for found in self.found if found[1].get("id") == element_id]
        assert len(matches) == 1, f"#{element_id} appears {len(matches)} times"
        return matches[0]


def test_home_shows_the_queue_and_the_task_in_hand(worker, ingest):
    ingest(passes=2)
    ingest()
    ingest(vendors=("Other Vendor",))
    annotator = worker()
    page = annotator.client.get("/tasks").get_data(as_text=True)
    assert "2 clips are waiting for you." in page
    assert 'action="/tasks/claim"' in page
    task_id = annotator.claim()
    page = annotator.client.get("/tasks").get_data(as_text=True)
    assert f"You are working on task {task_id}." in page
    assert f"Continue task {task_id}</button>" in page
    # Continuing from another session (a new sign-in) brings the lease to that session.
    elsewhere = worker(person=annotator.person)
    assert f"Continue task {task_id}</button>" in elsewhere.client.get("/tasks").get_data(as_text=True)
    assert elsewhere.claim() == task_id
    assert elsewhere.client.get(f"/tasks/{task_id}").status_code == 200


def test_home_lists_recent_submissions_without_revealing_gold(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    annotator.listen(task_id)
    annotator.submit(task_id, "my correction")
    page = annotator.client.get("/tasks").get_data(as_text=True)
    assert "Your recent submissions" in page
    row = re.search(r"<tbody>(.*?)</tbody>", page, re.DOTALL)
    assert row and f"<td>{task_id}</td>" in row.group(1) and ">Submitted<" in row.group(1)
    assert "my correction" not in page
    assert "The queue is empty" in page


def test_work_page_follows_the_player_contract(worker, ingest):
    ingest(seconds=1.5)
    annotator = worker()
    task_id = annotator.claim()
    response = annotator.client.get(f"/tasks/{task_id}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    page = Elements(html)

    tag, workspace, _ = page.by_id("workspace")
    assert workspace["data-grant-url"] == f"/tasks/{task_id}/playback"
    assert workspace["data-progress-url"] == f"/tasks/{task_id}/progress"
    assert workspace["data-draft-url"] == f"/tasks/{task_id}/draft"
    assert workspace["data-renew-url"] == f"/tasks/{task_id}/lease"
    assert float(workspace["data-duration"] or 0) == 1.5
    for element_id, expected_tag in PLAYER_IDS.items():
        found_tag, _, ancestors = page.by_id(element_id)
        assert found_tag == expected_tag, element_id
        assert "workspace" in ancestors, element_id
        if element_id != "player":
            assert "player" in ancestors, element_id
    tag, transcript, ancestors = page.by_id("transcript")
    assert (tag, transcript["name"]) == ("textarea", "transcript")
    assert "submit-form" in ancestors and "workspace" in ancestors
    tag, submit, ancestors = page.by_id("submit")
    assert tag == "button" and "disabled" in submit and "submit-form" in ancestors

    # No way to the audio in the page: no media element, no media URL, no inline script or style.
    assert not any(tag in ("audio", "video", "source", "embed", "object") for tag, _, _ in page.found)
    assert "/media/" not in html
    scripts = [attributes for tag, attributes, _ in page.found if tag == "script"]
    assert scripts and all(s.get("type") == "module" and s.get("src") for s in scripts)
    assert "/static/js/work.js" in {s["src"] for s in scripts}
    assert not any("style" in attributes for _, attributes, _ in page.found)
    assert "<style" not in html


def test_every_player_shortcut_is_listed_on_the_page(worker, ingest):
    """The keys player.js and work.js react to are the keys the page documents."""
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    html = annotator.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    keys = re.search(r'<dl class="keys">(.*?)</dl>', html, re.DOTALL)
    assert keys, "no list of keys"
    listed = set(re.findall(r"<kbd>([^<]+)</kbd>", keys.group(1)))
    player = (PROJECT_ROOT / "static/js/player.js").read_text()
    handled = set(re.findall(r"^\s+(Escape|F\d+):", player, re.MULTILINE))
    assert handled, "player.js shortcuts not found"
    assert {"Esc" if key == "Escape" else key for key in handled} <= listed
    work = (PROJECT_ROOT / "static/js/work.js").read_text()
    assert 'event.key === "Enter"' in work and "Enter" in listed
    assert 'event.key === "s"' in work and "S" in listed
