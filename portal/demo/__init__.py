"""Demo data for a fresh local portal: one vendor, one user per role, NDA version 1, and
five spoken clips with fake personal data (made by scripts/make_demo_clips.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from portal.admin.services import create_user, create_vendor, generate_password
from portal.audit.services import Actor
from portal.auth.models import Role
from portal.clips.services import ingest_clip
from portal.clock import utcnow
from portal.nda.services import publish_nda

VENDOR = "Acme Transcription"
DEMO_CLIPS = Path(__file__).resolve().parent / "clips" / "manifest.jsonl"
DEMO_USERS = (
    (Role.ANNOTATOR, "annotator@acme.example", "Ada Annotator", True),
    (Role.SUPERVISOR, "supervisor@acme.example", "Sam Supervisor", True),
    (Role.AUDITOR, "auditor@portal.example", "Alex Auditor", False),
    (Role.ADMIN, "admin@portal.example", "Robin Admin", False),
)


def create_demo(actor: Actor, nda_text: str) -> list[tuple[str, str, str]]:
    """Create the demo records; return (role, email, password) for each user."""
    vendor = create_vendor(VENDOR, actor)
    credentials = []
    for role, email, name, in_vendor in DEMO_USERS:
        password = generate_password()
        create_user(email, role, vendor if in_vendor else None, password, actor, full_name=name)
        credentials.append((role.value, email, password))
    publish_nda("Confidentiality agreement for transcription contractors", nda_text, actor, utcnow())
    ingest_demo_clips(actor)
    return credentials


def ingest_demo_clips(actor: Actor) -> None:
    """Ingest the demo clips (audio paths relative to their manifest) for the demo vendor."""
    for line in DEMO_CLIPS.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        with (DEMO_CLIPS.parent / entry.pop("audio")).open("rb") as stream:
            ingest_clip(stream, entry, actor, utcnow())
