"""Shared pieces of the SFT families: evidence lines, turns, the `[THINK]` answer form and conversation records.

A family module turns page text into records (`Mined` subclasses); each record knows the evidence lines it was read
from, which question kinds it can answer, and how to write one turn of each kind. Questions, reasoning and answers
are built from the evidence itself: the reasoning steps that appear depend on what the evidence holds (a decimal
column to cross-check, a register list, a neighbouring entry), never on a fixed pool of sentences with slots.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from c64_pipeline.conversation import assistant_turn


@dataclass(frozen=True)
class Turn:
    question: str
    reasoning: str
    answer: str


@dataclass(frozen=True)
class EvidenceLine:
    line_no: int  # 1-based line on the page
    text: str  # verbatim, possibly several consecutive lines joined by newlines when a cell or sentence wrapped


class Mined:
    """Base of every mined record: where it was found and how to ask about it."""

    family: str = ""
    doc_id: str
    page: int
    method: str

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        raise NotImplementedError

    def kinds(self) -> list[str]:
        raise NotImplementedError

    def turn(self, kind: str) -> Turn:
        raise NotImplementedError

    def refs(self) -> list[dict]:
        return [{"doc_id": self.doc_id, "page": self.page, "line": e.line_no, "evidence": e.text}
                for e in self.evidence_lines()]


def assistant_content(turn: Turn) -> str:
    return assistant_turn(turn.reasoning, turn.answer)


def pick(key: str, options: Sequence[str]) -> str:
    """A stable choice among phrasings, so reruns give identical datasets."""
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def hex4(value: int) -> str:
    return f"${value:04X}"


def hex_to_decimal_steps(value: int, width: int = 4) -> str:
    digits = f"{value:0{width}X}"
    terms = [f"{int(d, 16)}*{16 ** (width - 1 - i)}" for i, d in enumerate(digits) if d != "0"]
    return f"${digits} = " + (" + ".join(terms) if terms else "0") + f" = {value}"


def doc_title(doc_id: str) -> str:
    # a key ends in its suffix, or for a name not in canonical form in a hash of the name (documents.partition_key)
    stem = re.sub(r"(-(pdf|md|markdown|txt|html?))?(-[0-9a-f]{10})?$", "", doc_id)
    return stem.replace("_", " ").replace("-", " ")


def where(doc_id: str, page: int) -> str:
    return f"page {page} of the {doc_title(doc_id)} manual"


def cells(line: str) -> list[str] | None:
    """Cells of a table row: ' | ' from the layout step or Markdown, or runs of 2+ spaces in plain-text references."""
    stripped = line.strip()
    if "|" in stripped and (" | " in stripped or stripped.startswith("|")):
        parts = [c.strip() for c in stripped.strip("|").split("|")]
        return parts if len(parts) >= 2 else None
    if re.search(r"\S {2,}\S", stripped):
        return [c.strip() for c in re.split(r" {2,}", stripped)]
    return None


def is_rule_row(parts: Sequence[str]) -> bool:
    """A Markdown separator row (|---|---|)."""
    return all(re.fullmatch(r":?-{2,}:?", p) or not p for p in parts)


def lower_first(text: str) -> str:
    """'Border colour' -> 'border colour'; acronyms and names stay ('BASIC ROM', 'CIA 1')."""
    words = text.split()
    first = words[0] if words else ""
    if first in ("A", "An", "The"):
        return first.lower() + text[len(first):]
    if not first or first.isupper() or not first[1:].islower():
        return text
    small = {"of", "and", "or", "the", "a", "an", "to", "in", "on", "for", "at", "by", "with", "from"}
    if len(words) >= 2 and all(w[:1].isupper() or not w[:1].isalpha() or w in small for w in words):
        return text  # a Title Case name or heading ("Time of Day Clock Seconds")
    if len(words) >= 2 and (words[1][:1].isdigit() or words[1].isupper()):
        return text  # "Commodore 64", "Voice 3" stays a name
    return text[0].lower() + text[1:]


_WORD = re.compile(r"[A-Za-z]{3,}")


def readable(text: str, max_len: int = 200) -> bool:
    """Reject OCR debris ("466.16 oe ee 7647"): at least two real words, mostly words with a vowel."""
    words = _WORD.findall(text)
    vowels = [w for w in words if re.search(r"[aeiouyAEIOUY]", w)]
    return len(words) >= 2 and len(vowels) >= 0.6 * len(words) and len(text) <= max_len


def repeated_words(text: str) -> bool:
    """'ram ram ram ram', 'RAM RAM RAM': a row of a table whose cells repeat, not a description."""
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
    return len(words) >= 2 and len(set(words)) <= max(1, len(words) // 2)


def plain_words(text: str) -> str:
    """'Border Color Register' -> 'border color register': a Title Case label read as words in reasoning; acronyms
    and names with digits ('CIA', 'VIC-II', 'M0X') stay."""
    return " ".join(w if (w.isupper() and len(w) > 1) or re.search(r"\d", w) else w.lower() for w in text.split())


def mask(text: str, limit: int = 14) -> str:
    """The first `limit` words of `text` (for reasoning that quotes the evidence without copying it whole)."""
    words = text.split()
    if len(words) <= limit:
        return text
    return " ".join(words[:limit]).rstrip(",;:(") + " ..."


_REJECTED: ContextVar[Counter | None] = ContextVar("sft_rejected", default=None)


def reject(reason: str) -> None:
    """Count a row a family found but refused (a misread, debris, a duplicate of what is taught), by reason."""
    counter = _REJECTED.get()
    if counter is not None:
        counter[reason] += 1


@contextmanager
def counting_rejections() -> Iterator[Counter]:
    """The rows refused while mining inside the block, {reason: count}."""
    counter: Counter = Counter()
    token = _REJECTED.set(counter)
    try:
        yield counter
    finally:
        _REJECTED.reset(token)
