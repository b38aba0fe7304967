"""How far two transcripts are apart: WER, CER and character edits, after normalisation.

Both texts are normalised the same way first, so that a correction is not counted as
an error for casing, punctuation or spacing: lower case, punctuation stripped (an
apostrophe inside a word is dropped, "don't" → "dont"; any other punctuation separates
words), whitespace collapsed. Redaction placeholders such as `[EMAIL]` stay whole,
upper-case tokens, so that an annotator writing the word "email" where the transcript
says `[EMAIL]` counts as one substitution, not as a match.

The reference is the text taken as right (the annotator's correction when measuring the
recogniser, the gold transcript when scoring an annotator); the hypothesis is the text
measured against it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jiwer

PLACEHOLDER = re.compile(r"(\[[A-Z][A-Z_]*\])")
APOSTROPHES = frozenset("'\u2019\u02bc")


@dataclass(frozen=True)
class ErrorRates:
    """Word and character error rates of a hypothesis against a reference.

    `edit_distance` is the number of character edits (substitutions, deletions,
    insertions) between the normalised texts.
    """

    wer: float
    cer: float
    edit_distance: int


def _plain(text: str) -> str:
    characters = []
    for character in text.casefold():
        if character in APOSTROPHES:
            continue
        characters.append(" " if unicodedata.category(character).startswith("P") else character)
    return "".join(characters)


def normalise(text: str) -> str:
    """Lower case, punctuation stripped, whitespace collapsed; placeholders kept as tokens."""
    words: list[str] = []
    for piece in PLACEHOLDER.split(unicodedata.normalize("NFC", text)):
        if PLACEHOLDER.fullmatch(piece):
            words.append(piece)
        else:
            words.extend(_plain(piece).split())
    return " ".join(words)


def error_rates(reference: str, hypothesis: str) -> ErrorRates:
    """WER, CER and character edits of `hypothesis` against `reference`, both normalised.

    An empty reference gives the number of inserted words (characters) as the rate, as
    jiwer defines it; two empty texts give 0.
    """
    ref, hyp = normalise(reference), normalise(hypothesis)
    words = jiwer.process_words(ref, hyp)
    characters = jiwer.process_characters(ref, hyp)
    return ErrorRates(
        wer=float(words.wer),
        cer=float(characters.cer),
        edit_distance=int(characters.substitutions + characters.deletions + characters.insertions),
    )
