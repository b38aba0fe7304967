"""`flask demo` ingests real speech clips whose transcripts carry fake personal data."""

from __future__ import annotations

import json

import numpy as np
import sqlalchemy as sa

from portal.clips.models import Clip
from portal.extensions import db
from tests.clips import helpers


def test_demo_ingests_the_spoken_clips(app, runner):
    with app.app_context():  # `flask demo` gets one from FlaskGroup; the test runner does not push it
        result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "Demo clips" in result.output
    with app.app_context():
        clips = db.session.scalars(sa.select(Clip).order_by(Clip.id)).all()
    assert len(clips) == 5
    kinds = set()
    for event in helpers.audit_rows(app, "clips.ingested"):
        kinds |= set(event["details"]["redactions"])
    assert {"EMAIL", "PHONE", "CARD", "IBAN", "IP_ADDRESS", "ADDRESS", "DATE_OF_BIRTH"} <= kinds
    assert all(clip.toned_spans >= 1 for clip in clips)
    assert "jordan.lee@example.com" not in helpers.database_text(app)
    assert "[EMAIL]" in clips[0].transcript

    email = next(word for word in json.loads(clips[0].words or "[]") if word["word"] == "[EMAIL]")
    samples, rate = helpers.decode_flac(helpers.decrypt_stored(app, clips[0]))
    middle = samples[int((email["start"] + 0.1) * rate) : int((email["end"] - 0.1) * rate)]
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.fft.rfftfreq(len(middle), 1 / rate)[np.argmax(spectrum)] - 1000) < 5
