"""WER, CER and edit counts on examples worked out by hand."""

from __future__ import annotations

import pytest

from portal.tasks.quality import error_rates, normalise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("  spaced \t out\n\nlines  ", "spaced out lines"),
        ("Don't stop — it’s fine.", "dont stop its fine"),
        ("Write to [EMAIL], please.", "write to [EMAIL] please"),
        ("call [PHONE]or [IP_ADDRESS]!", "call [PHONE] or [IP_ADDRESS]"),
        ("[email] is not a placeholder", "email is not a placeholder"),
        ("", ""),
    ],
)
def test_normalise(text, expected):
    assert normalise(text) == expected


def test_one_substituted_word_in_six():
    rates = error_rates("the cat sat on the mat", "the cat sat on a mat")
    assert rates.wer == pytest.approx(1 / 6)
    # "the" → "a": one substitution and two deletions over 22 characters.
    assert rates.edit_distance == 3
    assert rates.cer == pytest.approx(3 / 22)


def test_case_punctuation_and_spacing_are_not_errors():
    rates = error_rates("Well, I think   so.", "well i think so")
    assert (rates.wer, rates.cer, rates.edit_distance) == (0.0, 0.0, 0)


def test_placeholder_is_one_token_that_a_word_does_not_match():
    rates = error_rates("mail me at [EMAIL]", "mail me at email")
    assert rates.wer == pytest.approx(1 / 4)
    # "[EMAIL]" (7 characters) against "email" (5): 5 substitutions and 2 deletions, over 18.
    assert rates.edit_distance == 7
    assert rates.cer == pytest.approx(7 / 18)


def test_insertions_and_deletions_count_against_the_reference_length():
    deleted = error_rates("one two three four", "one three four")
    assert deleted.wer == pytest.approx(1 / 4)
    inserted = error_rates("one two", "one and two too")
    assert inserted.wer == pytest.approx(2 / 2)


def test_empty_texts():
    assert error_rates("", "").wer == 0.0
    assert error_rates("some words", "").wer == 1.0
    assert error_rates("", "two words").wer == 2.0
