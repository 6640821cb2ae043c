"""Does page text read as technical English? A score in 0..1 of what a reader would see.

The text is cut into runs of letters and digits (with a `$`, `#$`, `0x` or `%` prefix). Each run is judged the
way a reader of a C64 manual would: a word of the bundled vocabulary (`wordlists/`: about 40,000 common English
words plus C64/6502 terms), a number, a hex address or byte, a register name or acronym, a part number. An unknown
word counts in part: little when it is short (every common short word is in the vocabulary) or one letter away
from a vocabulary word (a misread: "Bondar", "Mebory"), otherwise as far as its letter trigrams look like English.
Runs weigh by their length (up to 8; a run longer than `MAX_RUN`, no word at all, weighs its whole length).
Stray symbols a reader sees as noise (`~^{}`, non-letter symbols outside a small typographic set, a symbol inside
a word: "t:e") weigh against the score, and so do control and replacement characters. Garbage from a bad OCR
layer or a corrupted page is mostly made of runs no reader would accept ("bqrdcr", "c0l0ur", "S$DO2O") and
scores low; register tables, hex dumps, BASIC and assembly listings score high.

Every step is a single regex scan or a loop over distinct runs whose cost is bounded per character, so the score
is linear in the length of the text (a run longer than `MAX_RUN` characters scores 0 without looking at it).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

WORDLIST_DIR = Path(__file__).resolve().parent / "wordlists"
MAX_RUN = 40  # a longer run of letters and digits is not a word, number or address
MAX_WEIGHT = 8  # a run weighs by its length up to this many characters
UNKNOWN_WORD = 0.7  # an unknown word counts this much times (share of its trigrams that English uses) cubed
SHORT_UNKNOWN = 0.25  # an unknown lower-case word of up to 4 letters (every common short word is in the vocabulary)
UNKNOWN_ACRONYM = 0.5  # an unknown all-capitals run (label, register name) counts at least this much
MISSPELLING = 0.1  # an unknown word one edit away from a vocabulary word reads as a misread of it ("Bondar")
MIN_MISSPELLING_LENGTH = 5  # shorter words are one edit away from too many others to tell
MIN_TRIGRAM_COUNT = 3  # a trigram is "English" when at least this many vocabulary words contain it
INNER_JUNK_WEIGHT = 4  # a symbol inside a word costs this many characters' weight
BAD_CHAR_PENALTY = 5.0  # each control/replacement character costs this many characters' share

# A run: (?:#?\$|0[xX]|%)?[A-Za-z0-9]+(?:['\u2019][A-Za-z]{1,2}\b)? (an optional prefix, letters and digits, an optional
# "'s"/"n't" ending). Written to start with its first character's class, which lets the regex engine skip to the next
# possible start instead of trying the optional prefix at every character (1.5x faster, the same matches): after the
# first character, "#" must go on with "$" and a letter or digit, "$" and "%" with letters or digits, "0" with "x" and
# letters or digits if it can (the "0x" prefix), and a letter or digit with more of them.
_RUN = re.compile(
    r"[#$%A-Za-z0-9](?:(?<=#)\$[A-Za-z0-9]+|(?<=[$%])[A-Za-z0-9]+|(?<=0)[xX][A-Za-z0-9]+|(?<=[A-Za-z0-9])[A-Za-z0-9]*)"
    r"(?:['\u2019][A-Za-z]{1,2}\b)?"
)
_SEGMENT = re.compile(r"[A-Za-z]+|[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_CAMEL = re.compile(r"[A-Z]?[a-z]+")
# What a reader sees as noise: anything that is not a letter, digit, space, common punctuation or a typographic mark.
_JUNK = re.compile(r"[^\w\s.,;:!?'\"()\[\]/$#%&*+=<>|@\-\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u00b7\u00b0\u00d7"
                   r"\u00b1\u00b5\u00a9\u00ae\u2026\u2190-\u2193\u00a7\u00bd\u00bc\u00be\u00b2\u00b3\u20ac\u00a3]")
# A symbol inside a lower-case word ("t:e", "d#ta", "s>ace") breaks it for a reader; formulas (v*t, a+b, f(x)) and
# addresses (name@host) keep theirs.
# Written symbol first (then the letter before it, looked behind): the regex engine skips to the next symbol instead
# of trying a look-behind at every character (3x faster; the same matches).
_INNER_JUNK = re.compile(r"[!\"#$%:;<>?\[\]\\^`{|}~](?<=[a-z][!\"#$%:;<>?\[\]\\^`{|}~])(?=[a-z])")
_BAD = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff]")
_SUFFIXES = ("s", "es", "ed", "d", "ing", "ly", "er", "ers", "al", "able")


def _read_list(name: str) -> list[str]:
    words = []
    for line in (WORDLIST_DIR / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            words.extend(line.lower().split())
    return words


@lru_cache(maxsize=1)
def technical_terms() -> frozenset[str]:
    return frozenset(_read_list("c64_terms.txt"))


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    return frozenset(_read_list("english.txt")) | technical_terms()


@lru_cache(maxsize=1)
def _trigrams() -> frozenset[str]:
    counts: dict[str, int] = {}
    for word in vocabulary():
        if word.isalpha():
            padded = f"^{word}$"
            for i in range(len(padded) - 2):
                gram = padded[i : i + 3]
                counts[gram] = counts.get(gram, 0) + 1
    return frozenset(g for g, n in counts.items() if n >= MIN_TRIGRAM_COUNT)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def misspelled(word: str) -> bool:
    """`word` (lower case, unknown) is one letter deleted, inserted or substituted away from a vocabulary word."""
    if len(word) < MIN_MISSPELLING_LENGTH:
        return False
    vocab = vocabulary()
    for i in range(len(word) + 1):
        head, tail = word[:i], word[i:]
        if tail and head + tail[1:] in vocab:
            return True
        for letter in _LETTERS:
            if head + letter + tail in vocab or (tail and head + letter + tail[1:] in vocab):
                return True
    return False


def known_word(word: str) -> bool:
    """`word` (lower case) is in the vocabulary, directly or by a common English suffix."""
    vocab = vocabulary()
    if word in vocab:
        return True
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            stem = word[: -len(suffix)]
            if stem in vocab or stem + "e" in vocab or (len(stem) > 3 and stem[-1] == stem[-2] and stem[:-1] in vocab):
                return True
    return False


def trigram_plausibility(word: str) -> float:
    """Share of the letter trigrams of `word` (lower case, with word boundaries) that English words use."""
    padded = f"^{word}$"
    grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
    seen = _trigrams()
    return sum(1 for g in grams if g in seen) / len(grams)


def _case_is_plausible(word: str) -> bool:
    return (
        word.islower()
        or word.isupper()
        or (word[0].isupper() and word[1:].islower())
        or (word[-1] == "s" and word[:-1].isupper())  # ROMs, IRQs
        or word.lower() in technical_terms()  # MHz, kB, dB
    )


def word_score(word: str) -> float:
    """0..1 for a run of letters."""
    if len(word) == 1:
        return 1.0 if word in "aAI" else 0.75 if word.isupper() else 0.25  # register names (X, Y), flags, list marks
    if not _case_is_plausible(word):
        parts = _CAMEL.findall(word)  # UserInterface, TaskMenu: identifiers joined from words
        if len(parts) > 1 and "".join(parts) == word and all(len(p) >= 3 for p in parts):
            return sum(word_score(p.lower()) for p in parts) / len(parts)
        return 0.0
    low = word.lower()
    if known_word(low):
        return 1.0
    if word.isupper():
        if len(word) <= 4 and _HEX.fullmatch(word):
            return 1.0  # a hex byte or word of letters only (FF, DEAD)
        if len(word) <= 8:
            return max(UNKNOWN_ACRONYM, UNKNOWN_WORD * trigram_plausibility(low) ** 3)
    if len(word) <= 4:
        return SHORT_UNKNOWN
    if misspelled(low):
        return MISSPELLING
    return UNKNOWN_WORD * trigram_plausibility(low) ** 3


def _mixed_score(run: str) -> float:
    """0..1 for a run of letters and digits mixed: part numbers, C64, A15, 1MHz, hex bytes."""
    if run.lower() in technical_terms():
        return 1.0
    if len(run) % 2 == 0 and _HEX.fullmatch(run) and (run.isupper() or run.islower()):
        return 1.0  # hex dump bytes and words (A9, D020, A9008D)
    segments = _SEGMENT.findall(run)
    letters = [s for s in segments if s.isalpha()]
    if len(segments) == 2:
        word = letters[0]
        if word.isupper() or (_case_is_plausible(word) and known_word(word.lower())):
            return 1.0  # C64, A15, R6510, 8K, 1MHz, 2nd, 64KB, a16
        return 0.25
    if len(segments) == 3 and segments[0].isdigit() and letters[0].isupper() and len(letters[0]) <= 3:
        return 1.0  # 74LS138, 2A03
    return 0.0


@lru_cache(maxsize=1 << 16)  # runs repeat (words, registers): each distinct one is judged once
def run_score(run: str) -> float:
    """0..1: how plausible one run (a match of `_RUN`) is to a reader of technical text."""
    prefix = ""
    if run[0] in "#$%":
        prefix = run[: len(run) - len(run.lstrip("#$%"))]
        run = run[len(prefix) :]
    elif run[:2] in ("0x", "0X") and len(run) > 2:
        prefix, run = run[:2], run[2:]
    if len(run) > MAX_RUN:
        return 0.0
    if prefix in ("$", "#$", "0x", "0X"):
        return 1.0 if len(run) <= 8 and _HEX.fullmatch(run) and (run.isupper() or run.islower() or run.isdigit()) else 0.0
    if prefix == "%" and set(run) <= {"0", "1"}:
        return 1.0
    base, _, suffix = run.replace("\u2019", "'").partition("'")
    if suffix:  # don't, it's, C64's
        if len(base) > 1 and base.isalpha() and suffix.lower() == "t" and base.lower().endswith("n"):
            return max(word_score(base), word_score(base[:-1]))
        run = base
    if run.isdigit():
        return 1.0 if len(run) <= 12 else 0.0
    if run.isalpha():
        return word_score(run)
    return _mixed_score(run)


def readability(text: str) -> float:
    """0..1: the share of the text a reader of a C64 manual would accept (see the module docstring)."""
    stripped = text.strip()
    if not stripped:
        return 0.0
    good = total = 0.0
    for run, count in Counter(_RUN.findall(stripped)).items():  # counted in C; each distinct run judged once
        n = len(run)
        if n > MAX_RUN:
            total += n * count  # no word at all, and it weighs all it covers; scores 0 (kept out of the cache)
            continue
        weight = (n if n < MAX_WEIGHT else MAX_WEIGHT) * count
        total += weight
        good += weight * run_score(run)
    junk = len(_JUNK.findall(stripped)) + INNER_JUNK_WEIGHT * len(_INNER_JUNK.findall(stripped))
    total += junk
    if not total:
        return 0.0
    bad = len(_BAD.findall(stripped))
    return round(max(0.0, 1.0 - BAD_CHAR_PENALTY * bad / len(stripped)) * good / total, 4)
