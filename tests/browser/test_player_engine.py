"""The player's audio engine (static/js/player-worklet.js), rendered offline in Chromium.

A 220 Hz tone is played through the worklet in an OfflineAudioContext at each speed: the
output must last clip / speed, keep its pitch (no chipmunk voices at 2×), have no clicks,
equal the input sample for sample at 1×, and report the played stretch of the clip so the
page can tell the server what was heard.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import SQLITE_ONLY

pytestmark = [pytest.mark.browser, SQLITE_ONLY]

RENDER = """async ({ speed, seek }) => {
  const rate = 16000, seconds = 2, hz = 220;
  const input = new Float32Array(rate * seconds);
  for (let i = 0; i < input.length; i++) input[i] = 0.5 * Math.sin((2 * Math.PI * hz * i) / rate);
  const context = new OfflineAudioContext(1, Math.ceil((rate * seconds) / speed) + rate, rate);
  await context.audioWorklet.addModule("/static/js/player-worklet.js");
  const node = new AudioWorkletNode(context, "wsola-player", {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
  });
  const states = [];
  node.port.onmessage = (event) => states.push(event.data);
  node.connect(context.destination);
  node.port.postMessage({ type: "load", samples: input.slice() });
  node.port.postMessage({ type: "speed", value: speed });
  if (seek) node.port.postMessage({ type: "seek", position: seek });
  node.port.postMessage({ type: "play" });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const out = (await context.startRendering()).getChannelData(0);
  await new Promise((resolve) => setTimeout(resolve, 100));
  let last = 0;
  for (let i = 0; i < out.length; i++) if (Math.abs(out[i]) > 1e-4) last = i;
  let crossings = 0, step = 0, error = 0;
  for (let i = 1000; i < last - 1000; i++) {
    if (out[i - 1] < 0 && out[i] >= 0) crossings++;
    step = Math.max(step, Math.abs(out[i] - out[i - 1]));
  }
  const from = Math.round((seek || 0) * rate);
  for (let i = 600; i < last - 600; i++) error = Math.max(error, Math.abs(out[i] - input[from + i]));
  const segments = states.filter((s) => s.segment).map((s) => s.segment);
  return {
    seconds: (last + 1) / rate,
    pitch: crossings / ((last - 2000) / rate),
    step,
    error,
    ended: states.filter((s) => s.ended).map((s) => s.position),
    heard: [Math.min(...segments.map((s) => s[0])), Math.max(...segments.map((s) => s[1]))],
  };
}"""

# The largest sample-to-sample change of a 0.5-amplitude 220 Hz tone at 16 kHz.
TONE_STEP = 0.5 * 2 * 3.14159 * 220 / 16000


@pytest.mark.parametrize("speed", [0.5, 0.75, 1, 1.5, 2])
def test_speed_changes_duration_but_not_pitch(page: Page, speed: float):
    page.goto("/login")
    result = page.evaluate(RENDER, {"speed": speed, "seek": 0})

    assert result["seconds"] == pytest.approx(2 / speed, abs=0.05)
    assert result["pitch"] == pytest.approx(220, rel=0.01)
    assert result["step"] < TONE_STEP * 1.5  # no clicks where frames join
    assert result["ended"] == [2]
    assert result["heard"] == [0, 2]
    if speed == 1:
        assert result["error"] < 1e-6  # at 1× the clip itself, sample for sample


def test_playing_from_a_position_reports_only_what_was_played(page: Page):
    page.goto("/login")
    result = page.evaluate(RENDER, {"speed": 1, "seek": 1.25})

    assert result["seconds"] == pytest.approx(0.75, abs=0.02)
    assert result["heard"] == [1.25, 2]
    assert result["error"] < 1e-6
