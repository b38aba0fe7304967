"""Generate the demo clips in portal/demo/clips/ with eSpeak NG, offline.

Each clip is a short spoken sentence carrying fake personal data (an email address, phone
numbers, a card number that passes Luhn, an IBAN with a valid check, an IP address, a
street address, a date of birth). The machine transcript is the sentence itself and the
word timings come from eSpeak NG's own word events, so `flask demo` shows the redaction
of the transcript and the tone over the redacted words.

Needs the eSpeak NG library (Debian: `apt-get install espeak-ng`); run it only to change
the demo clips, which are committed:

    .venv/bin/python scripts/make_demo_clips.py
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile
import soxr

OUT = Path(__file__).resolve().parent.parent / "portal" / "demo" / "clips"
VENDOR = "Acme Transcription"
SENTENCES = (
    "Hi, this is Jordan. Please email me at jordan.lee@example.com when the parcel arrives.",
    "You can reach me on 415 555 0134 after six, or at the office on 020 7946 0958.",
    "Please charge my card 4111 1111 1111 1111 for the yearly plan, thanks.",
    "Send the deposit to IBAN GB82 WEST 1234 5698 7654 32 before Friday.",
    "I was born on March 3rd, 1985, I live at 221 Baker Street, and my router is 192.168.1.20.",
)

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1


class EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class Event(ctypes.Structure):
    """`espeak_EVENT` from speak_lib.h."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", EventId),
    )


Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


class Speaker:
    """eSpeak NG in synchronous mode: samples and word events for one text at a time."""

    def __init__(self, voice: str = "en-us", rate: int = 155) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.sample_rate <= 0:
            raise RuntimeError("eSpeak NG did not initialise")
        self.lib.espeak_SetVoiceByName(voice.encode())
        self.lib.espeak_SetParameter(1, rate, 0)
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []
        self._callback = Callback(self._receive)
        self.lib.espeak_SetSynthCallback(self._callback)

    def _receive(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == EVENT_WORD:
                self._words.append((event.text_position - 1, event.audio_position))
            index += 1
        return 0

    def say(self, text: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Samples (int16) and (character offset, milliseconds) of every word event."""
        self._chunks, self._words = [], []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks), self._words


def word_timings(text: str, events: list[tuple[int, int]], duration: float) -> list[dict[str, object]]:
    """One entry per whitespace-separated token: from its first word event to the next token's."""
    tokens = [(match.group(0), match.start(), match.end()) for match in re.finditer(r"\S+", text)]
    starts = []
    for _, first, last in tokens:
        inside = [ms for offset, ms in events if first <= offset < last]
        starts.append(min(inside) / 1000 if inside else None)
    words = []
    for index, (token, _, _) in enumerate(tokens):
        if starts[index] is None:
            continue
        later = [start for start in starts[index + 1 :] if start is not None]
        end = later[0] if later else duration
        words.append({"word": token, "start": round(starts[index], 3), "end": round(end, 3)})
    return words


def main() -> int:
    speaker = Speaker()
    OUT.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, text in enumerate(SENTENCES, 1):
        samples, events = speaker.say(text)
        duration = len(samples) / speaker.sample_rate
        name = f"clip-{number}.flac"
        # 16 kHz keeps the committed files small; ingest would resample anyway.
        resampled = soxr.resample(samples.astype(np.float32) / 32768, speaker.sample_rate, 16_000)
        soundfile.write(OUT / name, resampled, 16_000, format="FLAC", subtype="PCM_16")
        lines.append(
            {
                "audio": name,
                "source_user_id": f"demo-user-{(number + 1) // 2}",
                "device_id": f"demo-phone-{number}",
                "consent": {
                    "opt_in": True,
                    "recorded_at": "2025-06-01T09:00:00Z",
                    "scope": ["human_review", "model_training"],
                },
                "locale": "en-US",
                "transcript": text,
                "words": word_timings(text, events, duration),
                "passes": 2 if number % 2 else 1,
                "priority": number,
                "vendors": [VENDOR],
                "idempotency_key": f"demo-clip-{number}",
            }
        )
        print(f"{name}: {duration:.1f} s, {len(lines[-1]['words'])} words")
    (OUT / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
