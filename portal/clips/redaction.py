"""Finding personal data in machine transcripts and replacing it by typed placeholders.

`redact_text` returns the redacted text and how many of each kind were found, never the
values. `redact_words` does the same on word timings and returns the time spans of the
redacted words, so the audio under them can be replaced by a tone.

Detectors favour precision where a false positive would damage transcripts (numbers,
dates, street names) and use checksums where the format has one (Luhn for cards, mod-97
for IBANs, range checks for IPs and US SSNs). Dates are only taken as dates of birth
after words that say so. Names and free-form addresses are out of reach of patterns;
see docs/clips.md for what is and is not covered.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IBAN = "IBAN"
IP_ADDRESS = "IP_ADDRESS"
URL = "URL"
NATIONAL_ID = "NATIONAL_ID"
ADDRESS = "ADDRESS"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
KINDS = (EMAIL, PHONE, CARD, IBAN, IP_ADDRESS, URL, NATIONAL_ID, ADDRESS, DATE_OF_BIRTH)


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its kind and where it is (character offsets)."""

    kind: str
    start: int
    end: int


def placeholder(kind: str) -> str:
    return f"[{kind}]"


# --- emails ---------------------------------------------------------------------------

EMAIL_PATTERN = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![\w-])"
)
SPOKEN_TLDS = "com|org|net|edu|gov|io|co|uk|de|fr|nl|es|it|info|biz|me"
SPOKEN_EMAIL_PATTERN = re.compile(
    rf"\b([a-z0-9._-]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9_-]+)*)\s+at\s+"
    rf"[a-z0-9-]+(?:\s+dot\s+[a-z0-9-]+)*\s+dot\s+(?:{SPOKEN_TLDS})\b",
    re.IGNORECASE,
)
# "I work at example dot com" names a company, not a mailbox.
NOT_A_MAILBOX = frozenset(
    (
        "i",
        "me",
        "you",
        "we",
        "us",
        "they",
        "them",
        "he",
        "him",
        "she",
        "her",
        "it",
        "this",
        "that",
        "is",
        "was",
        "are",
        "be",
        "been",
        "work",
        "works",
        "worked",
        "working",
        "look",
        "looking",
        "looked",
        "shop",
        "shopping",
        "buy",
        "bought",
        "job",
        "here",
        "there",
        "stuff",
    )
)


def _emails(text: str) -> Iterable[Finding]:
    for match in EMAIL_PATTERN.finditer(text):
        yield Finding(EMAIL, match.start(), match.end())
    for match in SPOKEN_EMAIL_PATTERN.finditer(text):
        if match.group(1).lower() not in NOT_A_MAILBOX:
            yield Finding(EMAIL, match.start(), match.end())


# --- URLs -----------------------------------------------------------------------------

URL_TLDS = "com|org|net|edu|gov|io|co|uk|de|fr|nl|es|it|info|biz|me|app|dev|ly|be|eu"
URL_PATTERN = re.compile(
    rf"(?:\b(?:https?|ftp)://|\bwww\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:{URL_TLDS})(?=[/?#]))[^\s<>\"']*",
    re.IGNORECASE,
)
PROFILE_SEGMENTS = frozenset(
    (
        "u",
        "user",
        "users",
        "profile",
        "profiles",
        "account",
        "accounts",
        "id",
        "member",
        "members",
        "people",
        "in",
        "p",
        "customer",
        "customers",
        "patient",
        "patients",
        "order",
        "orders",
        "invoice",
        "invoices",
        "track",
        "tracking",
        "reset",
        "verify",
        "confirm",
        "unsubscribe",
    )
)
IDENTIFIER_SEGMENT = re.compile(r"\d{3,}|^(?=.*\d)(?=.*[a-z])[a-z0-9_-]{12,}$|^@|[=@]", re.IGNORECASE)


def _url_identifies(url: str) -> bool:
    """Whether a URL carries something that may point at a person: a query, a fragment,
    credentials, or a path segment that looks like an id or follows a profile keyword."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        return True
    segments = [segment for segment in parts.path.split("/") if segment]
    for index, segment in enumerate(segments):
        if IDENTIFIER_SEGMENT.search(segment):
            return True
        if segment.lower() in PROFILE_SEGMENTS and index + 1 < len(segments):
            return True
    return False


def _urls(text: str) -> Iterable[Finding]:
    for match in URL_PATTERN.finditer(text):
        url = match.group(0).rstrip(".,;:!?)]}'\"")
        if _url_identifies(url):
            yield Finding(URL, match.start(), match.start() + len(url))


# --- IP addresses ---------------------------------------------------------------------

IPV4_PATTERN = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
IPV6_PATTERN = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])"
)
VERSION_CONTEXT = re.compile(r"(?:version|ver\.?|release|build|firmware|update|v)\s*$", re.IGNORECASE)


def _ip_addresses(text: str) -> Iterable[Finding]:
    for match in IPV4_PATTERN.finditer(text):
        if VERSION_CONTEXT.search(text[max(0, match.start() - 12) : match.start()]):
            continue
        try:
            ipaddress.IPv4Address(match.group(0))
        except ValueError:
            continue
        yield Finding(IP_ADDRESS, match.start(), match.end())
    for match in IPV6_PATTERN.finditer(text):
        candidate = match.group(0)
        if candidate.count(":") < 2 or not any(c.isalnum() for c in candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield Finding(IP_ADDRESS, match.start(), match.end())


# --- IBANs ----------------------------------------------------------------------------

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
IBAN_PATTERN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{1,4}){2,8}+", re.IGNORECASE)
IBAN_GROUP = re.compile(r"[ -]?[A-Z0-9]{1,4}", re.IGNORECASE)


def iban_valid(candidate: str) -> bool:
    """ISO 13616: known country, its exact length, and the mod-97 check equals 1."""
    compact = re.sub(r"[ -]", "", candidate).upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterable[Finding]:
    for match in IBAN_PATTERN.finditer(text):
        # The greedy match may run into the following words ("... 32 by Friday"): try the
        # longest prefix of whole groups that still forms a valid IBAN.
        head = match.start() + 4
        ends = [head + group.end() for group in IBAN_GROUP.finditer(text[head : match.end()])]
        for end in reversed(ends):
            if (end >= len(text) or not text[end].isalnum()) and iban_valid(text[match.start() : end]):
                yield Finding(IBAN, match.start(), end)
                break


# --- numbers: cards, phone numbers, national ids ----------------------------------------

NUMBER_RUN = re.compile(r"(?<![\w.+/-])(?:\+\s?)?\(?\d++(?:(?:\)?[ .-]\(?|\))\d++)*+\)?(?![\w])")
SPOKEN_DIGITS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
SPOKEN_WORD = r"(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple|\d)"
SPOKEN_RUN = re.compile(rf"\b{SPOKEN_WORD}(?:[\s,-]+{SPOKEN_WORD}){{6,}}\b", re.IGNORECASE)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def classify_number(run: str) -> str | None:
    """The kind of personal data a run of digits and separators is, if any."""
    digits = re.sub(r"\D", "", run)
    count = len(digits)
    groups = [len(group) for group in re.split(r"\D+", run.strip("+() ")) if group]
    separators = set(re.sub(r"[\d+]", "", run))
    if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", run) or (separators == {"."} and len(groups) != 3):
        return None
    if 13 <= count <= 19 and separators <= {" ", "-"} and luhn_valid(digits):
        card_shapes = (
            len(groups) == 1,
            all(size == 4 for size in groups[:-1]) and 1 <= groups[-1] <= 4,
            groups in ([4, 6, 4], [4, 6, 5]),
        )
        if any(card_shapes):
            return CARD
    if groups == [3, 2, 4] and len(separators) == 1 and separators <= {" ", "-"}:
        area, group, serial = re.findall(r"\d+", run)
        return NATIONAL_ID if _ssn_valid(area, group, serial) else None
    if run.startswith("+"):
        return PHONE if 7 <= count <= 15 else None
    if digits.startswith("00") and 10 <= count <= 15 and len(groups) > 1:
        return PHONE
    if count == 10 and digits[0] in "23456789" and (groups in ([3, 3, 4], [10]) or "(" in run):
        return PHONE
    if count == 11 and digits[0] == "1" and groups == [1, 3, 3, 4]:
        return PHONE
    if count == 7 and groups == [3, 4]:
        return PHONE
    if digits[0] == "0" and digits[1] != "0" and 9 <= count <= 11 and separators <= {" ", "-", "(", ")"}:
        return PHONE
    return None


def _spoken_digits(run: str) -> str:
    digits: list[str] = []
    repeat = 1
    for word in re.findall(r"[a-z]+|\d", run.lower()):
        if word in ("double", "triple"):
            repeat = 2 if word == "double" else 3
            continue
        digits.append((word if word.isdigit() else SPOKEN_DIGITS[word]) * repeat)
        repeat = 1
    return "".join(digits)


def _numbers(text: str) -> Iterable[Finding]:
    for match in NUMBER_RUN.finditer(text):
        kind = classify_number(match.group(0))
        if kind:
            yield Finding(kind, match.start(), match.end())
    # Digits read out one by one ("four one one one ..."), or written one word each as
    # recognisers emit them in word timings.
    for match in SPOKEN_RUN.finditer(text):
        digits = _spoken_digits(match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield Finding(CARD, match.start(), match.end())
        elif 7 <= len(digits) <= 15:
            yield Finding(PHONE, match.start(), match.end())


UK_NINO_PATTERN = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)


def _national_ids(text: str) -> Iterable[Finding]:
    for match in UK_NINO_PATTERN.finditer(text):
        yield Finding(NATIONAL_ID, match.start(), match.end())


# --- street addresses and postcodes -----------------------------------------------------

STREET_TYPES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
    "Square|Sq|Parkway|Pkwy|Highway|Hwy|Close|Crescent|Gardens|Strasse|Straße"
)
NOT_A_STREET_NAME = (
    "The|A|An|Of|To|In|On|At|By|My|Your|Our|Their|His|Her|This|That|These|Those|Next|Last|First|"
    "Down|Up|Along|Across|Over|And|Or|For|From|Best|Top|Few|Many|More|Most|Other|Same|Each|Every"
)
STREET_PATTERN = re.compile(
    rf"(?<![\w.-])\d{{1,5}}[A-Za-z]?,?\s+(?:(?!(?:{NOT_A_STREET_NAME})\b)[A-Z][a-z'’-]+\s+){{1,3}}"
    rf"(?i:{STREET_TYPES})\b(?:\s+(?:N|S|E|W|NE|NW|SE|SW)\b)?"
    r"(?:,?\s+(?i:apt|apartment|suite|unit|flat)\.?\s*#?\w{1,6})?"
)
UK_POSTCODE_PATTERN = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2}\b")


def _addresses(text: str) -> Iterable[Finding]:
    for pattern in (STREET_PATTERN, UK_POSTCODE_PATTERN):
        for match in pattern.finditer(text):
            yield Finding(ADDRESS, match.start(), match.end())


# --- dates of birth -------------------------------------------------------------------

MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
ORDINAL = r"\d{1,2}(?:st|nd|rd|th)?"
DATE_EXPRESSION = (
    rf"(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}"
    rf"|(?:the\s+)?{ORDINAL}\s+(?:of\s+)?{MONTHS}(?:,?\s+\d{{4}})?"
    rf"|{MONTHS}\s+(?:the\s+)?{ORDINAL}(?:,?\s+\d{{4}})?)"
)
DOB_PATTERN = re.compile(
    rf"\b(?:born(?:\s+on)?|date\s+of\s+birth(?:\s+is)?|d\.?o\.?b\.?|birth\s*date(?:\s+is)?|"
    rf"birthday(?:\s+is)?)\s*[:,]?\s*(?:on\s+)?({DATE_EXPRESSION}|(?<=in\s)\d{{4}})(?!\d)"
    rf"|\bborn\s+in\s+(\d{{4}})\b",
    re.IGNORECASE,
)


def _dates_of_birth(text: str) -> Iterable[Finding]:
    for match in DOB_PATTERN.finditer(text):
        group = 1 if match.group(1) else 2
        yield Finding(DATE_OF_BIRTH, match.start(group), match.end(group))


DETECTORS = (_urls, _emails, _ibans, _ip_addresses, _numbers, _national_ids, _addresses, _dates_of_birth)


def find_pii(text: str) -> list[Finding]:
    """Every finding in `text`, without overlaps (the earlier, then the longer, wins)."""
    candidates = sorted(
        (finding for detector in DETECTORS for finding in detector(text)),
        key=lambda finding: (finding.start, -(finding.end - finding.start)),
    )
    findings: list[Finding] = []
    for finding in candidates:
        if not findings or finding.start >= findings[-1].end:
            findings.append(finding)
    return findings


def _replace(text: str, findings: Sequence[Finding], offset: int = 0) -> str:
    pieces, position = [], offset
    for finding in findings:
        pieces.append(text[position - offset : finding.start - offset])
        pieces.append(placeholder(finding.kind))
        position = finding.end
    pieces.append(text[position - offset :])
    return "".join(pieces)


@dataclass(frozen=True)
class RedactedText:
    """A redacted text and the number of findings of each kind."""

    text: str
    counts: dict[str, int]


def redact_text(text: str) -> RedactedText:
    """Replace every finding by its placeholder, e.g. `[EMAIL]`."""
    findings = find_pii(text)
    return RedactedText(_replace(text, findings), dict(Counter(finding.kind for finding in findings)))


@dataclass(frozen=True)
class RedactedWords:
    """Word timings with redacted words merged into placeholder entries, and their spans."""

    words: list[dict[str, Any]]
    spans: list[tuple[float, float]]


def redact_words(words: Sequence[Mapping[str, Any]]) -> RedactedWords:
    """Redact word timings: detection runs on the words joined by spaces.

    A finding may cover several words ("jordan dot lee at example dot com"); they become
    one entry from the first word's start to the last word's end, whose text is the
    placeholder plus whatever of the first and last word lay outside the finding.
    """
    offsets, position = [], 0
    for word in words:
        offsets.append((position, position + len(word["word"])))
        position += len(word["word"]) + 1
    joined = " ".join(word["word"] for word in words)
    findings = find_pii(joined)
    result: list[dict[str, Any]] = []
    spans: list[tuple[float, float]] = []
    index, cursor = 0, 0
    while index < len(words):
        start, end = offsets[index]
        while cursor < len(findings) and findings[cursor].end <= start:
            cursor += 1
        if cursor == len(findings) or findings[cursor].start >= end:
            word = words[index]
            result.append({"word": word["word"], "start": word["start"], "end": word["end"]})
            index += 1
            continue
        last, group_end, group = index, end, []
        while cursor < len(findings) and findings[cursor].start < group_end:
            group.append(findings[cursor])
            while last + 1 < len(words) and offsets[last][1] < findings[cursor].end:
                last += 1
            group_end = offsets[last][1]
            cursor += 1
        entry = {
            "word": _replace(joined[start:group_end], group, start),
            "start": words[index]["start"],
            "end": words[last]["end"],
        }
        result.append(entry)
        spans.append((float(entry["start"]), float(entry["end"])))
        index = last + 1
    return RedactedWords(words=result, spans=spans)
