"""Tracing a leaked recording back to the clip it came from, and to who was served that clip.

The leaked file is decoded exactly as ingest decodes an upload (WAV, FLAC, Ogg/Opus or MP3,
any rate and channel count, to 16 kHz mono), then compared with every clip whose audio can
still be decrypted (active or quarantined). Erased and expired clips are crypto-shredded:
their audio no longer exists anywhere, so a leak of one can never be matched.

The fingerprint is the log energy of a few frequency bands (150 Hz – 4 kHz, where speech
lives and lossy codecs keep most) over 32 ms frames every 10 ms. It survives re-encoding,
resampling and volume changes (a gain is a constant in the log domain, and the score is a
correlation, which ignores constants). Trimming is handled by alignment: the band envelopes
are cross-correlated to find the few most likely offsets, and each is scored exactly as the
mean, over bands, of the Pearson correlation of the overlapping frames. Speed or pitch
changes, heavy noise and mixing with other audio are not handled.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

import numpy as np
import sqlalchemy as sa

from portal.audit.reports import clip_report
from portal.clips import audio, crypto
from portal.clips.models import LIVE_STATUSES, Clip
from portal.clips.storage import StorageError, clip_storage
from portal.extensions import db
from portal.keys import portal_keys

logger = logging.getLogger(__name__)

FRAME = 512  # 32 ms at 16 kHz
HOP = 160  # 10 ms: the precision of the reported offset
FRAMES_PER_SECOND = audio.SAMPLE_RATE / HOP
BAND_EDGES_HZ = np.geomspace(150.0, 4000.0, 13)
# Below this (relative to the recording's mean band energy) a band counts as silent, so
# that codec noise in pauses, which a gain change would scale, does not weigh in.
FLOOR = 1e-4
MIN_SECONDS = 1.5
# The leak and the clip must overlap over most of the shorter of the two: a chance
# resemblance over a sliver at either end is not a match.
MIN_COVERAGE = 0.8
SILENCE_DB = 40.0
MATCH_THRESHOLD = 0.6
CANDIDATE_OFFSETS = 5
CHUNK_FRAMES = 4096


class UnusableAudio(Exception):
    """The leaked file cannot be decoded, or is too short to trace reliably."""


def band_energies(samples: np.ndarray) -> np.ndarray:
    """The fingerprint: one row per 10 ms frame; loudness, then each band's log energy above it.

    Column 0 is the frame's mean log band energy (the loudness envelope); the others are
    each band's log energy minus that mean (the spectral shape, which a gain leaves alone).
    """
    bands_count = len(BAND_EDGES_HZ) - 1
    if len(samples) < FRAME:
        return np.zeros((0, bands_count + 1), np.float32)
    frequencies = np.fft.rfftfreq(FRAME, 1 / audio.SAMPLE_RATE)
    bands = np.stack(
        [(frequencies >= low) & (frequencies < high) for low, high in pairwise(BAND_EDGES_HZ)],
        axis=1,
    ).astype(np.float32)
    window = np.hanning(FRAME).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float32), FRAME)[::HOP]
    pieces = [
        (np.abs(np.fft.rfft(frames[start : start + CHUNK_FRAMES] * window, axis=1)) ** 2) @ bands
        for start in range(0, len(frames), CHUNK_FRAMES)
    ]
    energy = np.concatenate(pieces)
    logs = np.log(energy + FLOOR * max(float(energy.mean()), 1e-20))
    loudness = logs.mean(axis=1, keepdims=True)
    return np.concatenate([loudness, logs - loudness], axis=1).astype(np.float32)


def _audible(features: np.ndarray) -> np.ndarray:
    """Which frames are sound rather than silence or padding (within SILENCE_DB of the loudest)."""
    loudness = features[:, 0]
    return loudness > np.percentile(loudness, 95) - SILENCE_DB / 10 * np.log(10)


def _standardised(features: np.ndarray, audible: np.ndarray) -> np.ndarray:
    kept = features[audible]
    spread = kept.std(axis=0)
    scaled = (features - kept.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return scaled * audible[:, None]


def _min_overlap(query: np.ndarray, reference: np.ndarray) -> int:
    shorter = min(len(query), len(reference))
    return max(min(int(MIN_SECONDS * FRAMES_PER_SECOND), shorter), int(MIN_COVERAGE * shorter))


def _candidate_lags(query: np.ndarray, reference: np.ndarray) -> list[int]:
    """The offsets (reference frame where the query starts) with the largest cross-correlation."""
    size = len(query) + len(reference) - 1
    n = 1 << (size - 1).bit_length()
    spectrum = np.fft.rfft(_standardised(reference, _audible(reference)), n, axis=0) * np.conj(
        np.fft.rfft(_standardised(query, _audible(query)), n, axis=0)
    )
    summed = np.fft.irfft(spectrum.sum(axis=1), n)
    lags = np.arange(-(len(query) - 1), len(reference))
    values = summed[lags % n]
    overlap = np.minimum(len(reference), lags + len(query)) - np.maximum(0, lags)
    values[overlap < _min_overlap(query, reference)] = -np.inf
    best = np.argsort(values)[::-1][:CANDIDATE_OFFSETS]
    return [int(lags[i]) for i in best if np.isfinite(values[i])]


def similarity(query: np.ndarray, reference: np.ndarray, lag: int) -> float:
    """Mean over features of the correlation of the overlapping frames, the query starting at `lag`.

    Frames where the leak is silent (padding, pauses) are left out: silence added around a
    leak says nothing about where it came from.
    """
    start, end = max(0, lag), min(len(reference), lag + len(query))
    q = query[start - lag : end - lag]
    r = reference[start:end]
    audible = _audible(query)[start - lag : end - lag]
    if audible.sum() < 2:
        return 0.0
    q, r = q[audible], r[audible]
    q = q - q.mean(axis=0)
    r = r - r.mean(axis=0)
    norms = np.sqrt((q * q).sum(axis=0) * (r * r).sum(axis=0))
    per_feature = np.where(norms > 0, (q * r).sum(axis=0) / np.where(norms > 0, norms, 1.0), 0.0)
    return float(per_feature.mean())


def align(query: np.ndarray, reference: np.ndarray) -> tuple[float, int, int]:
    """The best (score, lag in frames, overlapping frames) of `query` against `reference`."""
    best = (-1.0, 0, 0)
    for lag in _candidate_lags(query, reference):
        score = similarity(query, reference, lag)
        if score > best[0]:
            overlap = min(len(reference), lag + len(query)) - max(0, lag)
            best = (score, lag, overlap)
    return best


def leak_fingerprint(data: bytes, max_seconds: int) -> np.ndarray:
    """Decode the leaked file as ingest would and fingerprint it; raise UnusableAudio if we cannot."""
    try:
        decoded = audio.decode(io.BytesIO(data), max_seconds)
    except audio.IngestRefused as refusal:
        raise UnusableAudio(refusal.message) from None
    if decoded.duration_seconds < MIN_SECONDS:
        raise UnusableAudio(f"it lasts {decoded.duration_seconds:.2f} s; at least {MIN_SECONDS} s are needed")
    return band_energies(decoded.samples)


@dataclass(frozen=True)
class Match:
    """How well the leak matches one clip, and where in the clip it starts (negative: before)."""

    public_id: str
    status: str
    score: float
    offset_seconds: float
    overlap_seconds: float


@dataclass
class TraceResult:
    """Every searched clip's match, best first, and what could not be searched."""

    matches: list[Match] = field(default_factory=list)
    shredded: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def found(self) -> list[Match]:
        return [match for match in self.matches if match.score >= MATCH_THRESHOLD]


def _clip_samples(clip: Clip, max_seconds: int) -> np.ndarray:
    """The clip's decrypted audio; quarantined clips too, which `read_clip_audio` refuses."""
    assert clip.storage_name is not None and clip.wrapped_key is not None
    with clip_storage().open(clip.storage_name) as handle:
        blob = handle.read()
    plain = crypto.open_sealed(blob, clip.public_id, clip.wrapped_key, portal_keys().master_key)
    return audio.decode(io.BytesIO(plain), max_seconds).samples


def trace_leak(query: np.ndarray, max_seconds: int) -> TraceResult:
    """Compare the leak's fingerprint with every clip that can still be decrypted."""
    result = TraceResult()
    result.shredded = (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(Clip).where(Clip.status.not_in(LIVE_STATUSES))
        )
        or 0
    )
    clips = db.session.scalars(
        sa.select(Clip)
        .where(Clip.status.in_(LIVE_STATUSES), Clip.wrapped_key.is_not(None), Clip.storage_name.is_not(None))
        .order_by(Clip.id)
    )
    for clip in clips:
        try:
            reference = band_energies(_clip_samples(clip, max_seconds))
        except (StorageError, crypto.IntegrityError, audio.IngestRefused) as error:
            logger.warning("cannot read clip %s for a trace: %s", clip.public_id, error)
            result.unreadable.append(clip.public_id)
            continue
        if len(reference) == 0:
            continue
        score, lag, overlap = align(query, reference)
        result.matches.append(
            Match(
                public_id=clip.public_id,
                status=clip.status.value,
                score=round(score, 3),
                offset_seconds=round(lag / FRAMES_PER_SECOND, 2),
                overlap_seconds=round(overlap / FRAMES_PER_SECOND, 2),
            )
        )
    result.matches.sort(key=lambda match: match.score, reverse=True)
    return result


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment is not None else "-"


def report_lines(result: TraceResult, top: int) -> list[str]:
    """The trace's answer as text: the matches, then who was served the best one."""
    searched = len(result.matches)
    lines = [f"searched {searched} clip(s) that can still be decrypted (active or quarantined)"]
    if result.shredded:
        lines.append(
            f"{result.shredded} erased or expired clip(s) are not searchable: their audio was "
            "crypto-shredded, so a leak of one cannot be matched"
        )
    if result.unreadable:
        lines.append(f"could not read {len(result.unreadable)} clip(s): {', '.join(result.unreadable)}")
    found = result.found[:top]
    if not found:
        best = f" (best score {result.matches[0].score:.3f})" if result.matches else ""
        lines.append(f"no clip matches above the threshold {MATCH_THRESHOLD}{best}")
        return lines
    lines.append(f"matches (score ≥ {MATCH_THRESHOLD}; 1.0 is identical):")
    for match in found:
        lines.append(
            f"  clip {match.public_id} [{match.status}]  score {match.score:.3f}  "
            f"leak starts at {match.offset_seconds:+.2f} s of the clip, {match.overlap_seconds:.2f} s overlap"
        )
    report = clip_report(found[0].public_id)
    lines.append(f"who was served clip {found[0].public_id}, from the audit log:")
    listeners = report.listeners if report is not None else []
    if not listeners:
        lines.append("  nobody: the audit log records no playback of this clip")
    for listener in listeners:
        ranges = sum(len(use.ranges) for use in listener.grants.values())
        lines.append(
            f"  {listener.actor or listener.actor_id}  vendor {listener.vendor or '-'}  "
            f"grants {listener.granted}  bytes served {listener.bytes_served} in {ranges} range(s)  "
            f"denied {listener.denied}  first {_when(listener.first_at)}  "
            f"last {_when(listener.last_at)}"
        )
    return lines


def event_details(result: TraceResult, data: bytes) -> dict[str, object]:
    """What `audit.traced` records: the outcome and the leak's digest, never its audio."""
    best = result.found[0] if result.found else None
    return {
        "match": best.public_id if best else None,
        "score": best.score if best else (result.matches[0].score if result.matches else None),
        "searched": len(result.matches),
        "not_searchable": result.shredded,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
