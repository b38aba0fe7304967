"""Decoding, normalising, toning and re-encoding, without the rest of the portal."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from portal.clips import audio
from portal.clips.refusals import IngestRefused
from tests.clips import helpers


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS" + b"\x00" * 24 + b"OpusHead", "ogg-opus"),
        (b"ID3\x03\x00", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
    ],
)
def test_sniffs_accepted_containers(head, kind):
    assert audio.sniff_format(head) == kind


@pytest.mark.parametrize(
    "head",
    [
        b"FORM\x00\x00\x00\x00AIFF",
        b"OggS" + b"\x00" * 24 + b"\x01vorbis",
        b"RIFF\x00\x00\x00\x00AVI ",
        b"",
        b"\x00" * 8,
    ],
)
def test_refuses_other_containers(head):
    with pytest.raises(IngestRefused) as refusal:
        audio.sniff_format(head)
    assert refusal.value.code == "audio_unsupported_format"


def test_downmixes_and_resamples():
    stereo = helpers.encode(helpers.speech_like(2.0, 48_000, 2), 48_000, "WAV", "FLOAT")
    decoded = audio.decode(io.BytesIO(stereo), max_seconds=10)
    assert decoded.source_format == "wav"
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert len(decoded.samples) == pytest.approx(32_000, abs=2)


def test_non_finite_samples_are_corrupt():
    samples = helpers.speech_like(1.0)
    samples[100] = np.nan
    data = helpers.encode(samples, 16_000, "WAV", "FLOAT")
    with pytest.raises(IngestRefused) as refusal:
        audio.decode(io.BytesIO(data), max_seconds=10)
    assert refusal.value.code == "audio_corrupt"


def test_tone_covers_padded_spans_and_merges_overlaps():
    samples = np.zeros(16_000 * 3, np.float32)
    assert audio.tone_over(samples, [(1.0, 1.5), (1.52, 1.8), (2.9, 5.0)]) == 2
    padding = int(audio.TONE_PADDING_SECONDS * 16_000)
    assert not samples[: 16_000 - padding - 1].any()
    assert np.abs(samples[16_000:28_800]).max() == pytest.approx(audio.TONE_LEVEL, rel=0.01)
    assert not samples[int(1.85 * 16_000) + 1 : int(2.85 * 16_000) - 1].any()
    assert samples[-1] == 0 or abs(samples[-1]) <= audio.TONE_LEVEL


def test_flac_output_carries_only_samples():
    data = audio.encode_flac(helpers.speech_like(1.0))
    with soundfile.SoundFile(io.BytesIO(data)) as handle:
        assert (handle.format, handle.subtype, handle.samplerate, handle.channels) == (
            "FLAC",
            "PCM_16",
            16_000,
            1,
        )
        assert handle.title == handle.artist == handle.comment == ""
