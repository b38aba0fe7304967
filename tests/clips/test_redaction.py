"""The redaction table: what must be found (with its kind) and what must be left alone."""

from __future__ import annotations

import pytest

from portal.clips.redaction import iban_valid, luhn_valid, redact_text, redact_words

# (text, expected redacted text)
POSITIVE = [
    ("mail jordan.lee@example.com today", "mail [EMAIL] today"),
    ("write to J.Doe+news@mail.example.co.uk.", "write to [EMAIL]."),
    ("it's jordan dot lee at example dot com", "it's [EMAIL]"),
    ("call 415 555 0134 now", "call [PHONE] now"),
    ("call (415) 555-0134", "call [PHONE]"),
    ("call 415.555.0134", "call [PHONE]"),
    ("call +1 (415) 555-0134", "call [PHONE]"),
    ("call 1-800-555-0199", "call [PHONE]"),
    ("ring +44 20 7946 0958", "ring [PHONE]"),
    ("ring 020 7946 0958", "ring [PHONE]"),
    ("ruf +49 30 12345678 an", "ruf [PHONE] an"),
    ("ring 0033 1 23 45 67 89", "ring [PHONE]"),
    ("dial 555-0134", "dial [PHONE]"),
    ("it is five five five one two three four five six seven", "it is [PHONE]"),
    ("card 4111 1111 1111 1111 expires", "card [CARD] expires"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("card 5500005555555559", "card [CARD]"),
    ("amex 3782 822463 10005", "amex [CARD]"),
    ("four one one one one one one one one one one one one one one one", "[CARD]"),
    ("IBAN GB82 WEST 1234 5698 7654 32 by Friday", "IBAN [IBAN] by Friday"),
    ("iban de89 3704 0044 0532 0130 00 thanks", "iban [IBAN] thanks"),
    ("to FR1420041010050500013M02606.", "to [IBAN]."),
    ("router 192.168.1.20 drops", "router [IP_ADDRESS] drops"),
    ("from 2001:db8::ff00:42:8329 today", "from [IP_ADDRESS] today"),
    ("host fe80::1 down", "host [IP_ADDRESS] down"),
    ("open https://example.com/reset?token=9f8e7d now", "open [URL] now"),
    ("see https://shop.example.com/orders/123456.", "see [URL]."),
    ("see example.com/users/jordan", "see [URL]"),
    ("see https://user:pw@example.com/", "see [URL]"),
    ("SSN 123-45-6789 please", "SSN [NATIONAL_ID] please"),
    ("NI number AB 12 34 56 C", "NI number [NATIONAL_ID]"),
    ("I live at 221 Baker Street.", "I live at [ADDRESS]."),
    ("send it to 1600 Pennsylvania Avenue NW", "send it to [ADDRESS]"),
    ("flat at 12 Rose Lane, Apt 4B", "flat at [ADDRESS]"),
    ("postcode NW1 6XE", "postcode [ADDRESS]"),
    ("born on March 3rd, 1985 in Leeds", "born on [DATE_OF_BIRTH] in Leeds"),
    ("my date of birth is 03/03/1985", "my date of birth is [DATE_OF_BIRTH]"),
    ("DOB: 1985-03-03", "DOB: [DATE_OF_BIRTH]"),
    ("my birthday is the 3rd of March", "my birthday is [DATE_OF_BIRTH]"),
    ("I was born in 1985", "I was born in [DATE_OF_BIRTH]"),
]

NEGATIVE = [
    "the card 4111 1111 1111 1112 fails the Luhn check",
    "order 1234 5678 9012 3456 is not a card either",
    "IBAN GB82 WEST 1234 5698 7654 33 has a wrong check digit",
    "upgrade to version 10.2.3.4 tonight",
    "firmware v1.2.3.4 and release 2.0.1",
    "the value 999.1.1.1 is no address",
    "meet at 10:30:45 sharp",
    "we sold 1,250,000 units for $12.50",
    "in 2019 and 2020 sales grew",
    "the meeting is on 2024-01-15 at 10",
    "the meeting is on March 3rd, 2024",
    "order 12345678 shipped",
    "pi is 3.14159",
    "one two three go",
    "see https://example.com/help and www.example.org",
    "I work at example dot com",
    "I walked 3 blocks down the street",
    "the 5 best road trips",
    "SSN 000-12-3456 is not valid",
    "room 101 on floor 3",
    "call me at 5",
    "email me at home",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVE, ids=[t for t, _ in POSITIVE])
def test_finds_personal_data(text, expected):
    result = redact_text(text)
    assert result.text == expected
    kinds = expected.count("[")
    assert sum(result.counts.values()) == kinds


@pytest.mark.parametrize("text", NEGATIVE)
def test_leaves_ordinary_text_alone(text):
    result = redact_text(text)
    assert result.text == text
    assert result.counts == {}


def test_counts_kinds_never_values():
    result = redact_text("a@example.com, b@example.org, 415 555 0134, 4111 1111 1111 1111")
    assert result.counts == {"EMAIL": 2, "PHONE": 1, "CARD": 1}
    assert "example" not in str(result.counts)


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("XX82 WEST 1234 5698 7654 32")


def test_word_timings_follow_the_redaction():
    sentence = "mail jordan.lee@example.com, or jordan dot lee at example dot com today"
    words = [{"word": w, "start": i * 0.5, "end": i * 0.5 + 0.4} for i, w in enumerate(sentence.split())]
    result = redact_words(words)
    assert [w["word"] for w in result.words] == ["mail", "[EMAIL],", "or", "[EMAIL]", "today"]
    assert result.words[3] == {"word": "[EMAIL]", "start": 1.5, "end": 4.9}
    assert result.spans == [(0.5, 0.9), (1.5, 4.9)]


def test_word_timings_of_a_spoken_card_number():
    digits = list("4111111111111111")
    words = [{"word": "card", "start": 0.0, "end": 0.3}] + [
        {"word": d, "start": 0.5 + i * 0.2, "end": 0.65 + i * 0.2} for i, d in enumerate(digits)
    ]
    result = redact_words(words)
    assert [w["word"] for w in result.words] == ["card", "[CARD]"]
    assert result.spans == [(0.5, 0.65 + 15 * 0.2)]


def test_long_inputs_stay_fast():
    import time

    text = ("1" * 5000 + "x ") * 20 + "a" * 50_000
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 2.0
