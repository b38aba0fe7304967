"""Decoding, normalising and re-encoding clip audio, and toning over redacted words.

Every accepted clip is decoded to raw samples, downmixed to mono, resampled to 16 kHz
and encoded afresh as 16-bit FLAC. Nothing of the uploaded container is copied, so no
tag (ID3, RIFF INFO, Vorbis comments, cover art, encoder notes) can survive ingest.

Only WAV, FLAC, Ogg/Opus and MP3 are accepted, recognised by their leading bytes before
libsndfile sees them, so none of libsndfile's other parsers is exposed to uploads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

from portal.clips.refusals import IngestRefused

SAMPLE_RATE = 16_000
MEDIA_TYPE = "audio/flac"
BLOCK_FRAMES = 1 << 16
MAX_CHANNELS = 8
MIN_SOURCE_RATE, MAX_SOURCE_RATE = 8_000, 192_000
TONE_HZ = 1_000.0
TONE_LEVEL = 0.25
TONE_RAMP_SECONDS = 0.005
# Word timings from a recogniser are approximate; the tone covers a little more than the
# word so that no edge of it leaks.
TONE_PADDING_SECONDS = 0.05

CONTAINERS = {
    "wav": {"WAV", "WAVEX"},
    "flac": {"FLAC"},
    "ogg-opus": {"OGG"},
    "mp3": {"MP3"},
}


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples at `SAMPLE_RATE`, and what the upload was."""

    samples: np.ndarray
    source_format: str

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def sniff_format(head: bytes) -> str:
    """Name the container from its first bytes; refuse anything not accepted."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        if b"OpusHead" in head[:128]:
            return "ogg-opus"
        raise IngestRefused("audio_unsupported_format", "Ogg files are accepted with Opus audio only.")
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    raise IngestRefused("audio_unsupported_format", "The audio must be WAV, FLAC, Ogg/Opus or MP3.")


def _corrupt(detail: str) -> IngestRefused:
    return IngestRefused("audio_corrupt", f"The audio could not be decoded ({detail}).")


def _too_long(max_seconds: int) -> IngestRefused:
    return IngestRefused("audio_too_long", f"Clips may be at most {max_seconds} seconds long.")


def decode(stream: BinaryIO, max_seconds: int) -> DecodedAudio:
    """Decode `stream` (seekable) to mono 16 kHz float32 samples.

    Refuses unsupported containers, undecodable or truncated audio, non-finite samples
    and clips longer than `max_seconds` (checked against the header first, then against
    what actually decodes, since a header can lie).
    """
    head = stream.read(128)
    stream.seek(0)
    kind = sniff_format(head)
    try:
        with soundfile.SoundFile(stream) as source:
            if source.format not in CONTAINERS[kind] or (kind == "ogg-opus" and source.subtype != "OPUS"):
                raise IngestRefused("audio_unsupported_format", "The file is not what its first bytes claim.")
            if not MIN_SOURCE_RATE <= source.samplerate <= MAX_SOURCE_RATE:
                raise IngestRefused(
                    "audio_unsupported_format",
                    f"Sample rates from {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz are accepted.",
                )
            if not 1 <= source.channels <= MAX_CHANNELS:
                raise IngestRefused("audio_unsupported_format", f"At most {MAX_CHANNELS} channels.")
            samples = _decode_frames(source, kind, max_seconds)
    except soundfile.LibsndfileError as error:
        raise _corrupt(error.error_string) from None
    if len(samples) == 0:
        raise IngestRefused("audio_empty", "The audio holds no samples.")
    return DecodedAudio(samples=samples, source_format=kind)


def _decode_frames(source: soundfile.SoundFile, kind: str, max_seconds: int) -> np.ndarray:
    rate, declared = source.samplerate, source.frames
    # Lossy codecs add priming and padding (MP3: ~0.1 s) and MP3 headers only estimate the
    # length, so a clip cut at exactly the limit must still pass: allow half a second.
    max_frames = max_seconds * rate + rate // 2
    if declared > max_frames:
        raise _too_long(max_seconds)
    resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, quality="HQ")
    pieces: list[np.ndarray] = []
    decoded = 0
    while True:
        block = source.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        decoded += len(block)
        if decoded > max_frames:
            raise _too_long(max_seconds)
        if not np.isfinite(block).all():
            raise _corrupt("non-finite samples")
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        pieces.append(resampler.resample_chunk(mono) if resampler else mono.copy())
    if resampler is not None:
        pieces.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    if kind in ("wav", "flac") and declared > 0 and decoded < declared:
        raise _corrupt("the stream ends before its declared length")
    if not pieces:
        return np.zeros(0, np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)


def tone_over(samples: np.ndarray, spans: Iterable[tuple[float, float]]) -> int:
    """Replace each (start, end) span in seconds, padded, by a tone; return how many spans.

    Overlapping spans merge. The original audio in a span is discarded entirely (no
    cross-fade, which would leak it); only the tone's own amplitude ramps in and out.
    """
    padded = sorted(
        (max(0.0, start - TONE_PADDING_SECONDS), end + TONE_PADDING_SECONDS) for start, end in spans
    )
    merged: list[list[float]] = []
    for start, end in padded:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    ramp = int(TONE_RAMP_SECONDS * SAMPLE_RATE)
    toned = 0
    for start, end in merged:
        first, last = int(start * SAMPLE_RATE), min(len(samples), math.ceil(end * SAMPLE_RATE))
        if last <= first:
            continue
        length = last - first
        tone = TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * np.arange(length) / SAMPLE_RATE)
        edge = min(ramp, length // 2)
        if edge:
            envelope = np.linspace(0.0, 1.0, edge)
            tone[:edge] *= envelope
            tone[length - edge :] *= envelope[::-1]
        samples[first:last] = tone
        toned += 1
    return toned


def encode_flac(samples: np.ndarray) -> bytes:
    """Encode mono 16 kHz samples as 16-bit FLAC, from the samples alone."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
