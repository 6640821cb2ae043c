"""Pinouts and signal tables: "Pin | Signal | Function" rows under a header that names pins.

A row is a pin number, a signal name and what it does ("9 | R/W | Read/write line from the processor"). Rows are
only taken below a header line that mentions pins, so bit tables ("7 | N | Negative") are not mistaken for pinouts.
The component is taken from the nearest caption or heading above the table that names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, is_rule_row, lower_first, pick, readable, where

_HEADER = re.compile(r"\bpins?\b", re.IGNORECASE)
_SIGNAL = re.compile(r"^[A-Z~/][A-Za-z0-9~/_+\-]{0,11}$")
_CAPTION = re.compile(r"\b(?:pinout|pin assignments?|pins of|connector|port|socket|chip)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Pin(Mined):
    doc_id: str
    page: int
    method: str
    line_no: int
    evidence: str
    pin: int
    signal: str
    function: str
    component: str | None  # "the 6526 CIA", "the user port", from the caption above the table

    family = "pinout"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),)

    def kinds(self) -> list[str]:
        return ["pin", "signal"]

    def turn(self, kind: str) -> Turn:
        return _turn(self, kind)


def parse_pin_row(parts: list[str]) -> tuple[int, str, str] | None:
    parts = [p for p in parts if p]
    if len(parts) < 3 or not re.fullmatch(r"\d{1,2}", parts[0]) or not _SIGNAL.match(parts[1]):
        return None
    function = " ".join(parts[2:])
    if not readable(function, 140):
        return None
    return int(parts[0]), parts[1], function.rstrip(".")


def _component(lines: list[str], header_index: int) -> str | None:
    for k in range(header_index, max(-1, header_index - 6), -1):
        text = lines[k].strip().lstrip("#").strip()
        if text and _CAPTION.search(text) and not cells(lines[k]):
            text = re.sub(r"^(?:Table|Figure)\s+[\d.-]+\.?\s*", "", text).rstrip(".:")
            return text if len(text) <= 80 else None
    return None


def mine_pinouts(pages: Iterable[dict]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    taken: set[tuple[str, int, int]] = set()
    for page in pages:
        if page.get("method") == "none":
            continue
        lines = page["text"].split("\n")
        header, component, misses = None, None, 0
        for i, line in enumerate(lines):
            parts = cells(line)
            if parts and _HEADER.search(parts[0]) and not re.search(r"\d", parts[0]):
                header, component, misses = i, _component(lines, i - 1) if i else None, 0
                continue
            if header is None or (parts and is_rule_row(parts)):
                continue
            row = parse_pin_row(parts) if parts else None
            if row is None:
                misses += 1 if line.strip() else 0
                if misses > 3:
                    header = None
                continue
            misses = 0
            found.append(Pin(page["doc_id"], page["page"], page.get("method", "text_layer"), i + 1, line.strip(), *row, component))
            taken.add((page["doc_id"], page["page"], i + 1))
    return found, taken


def _turn(p: Pin, kind: str) -> Turn:
    key = f"{p.doc_id}:{p.page}:{p.line_no}:{kind}"
    of = f" of the {p.component}" if p.component else ""
    place = where(p.doc_id, p.page)
    if kind == "pin":
        question = pick(key, [f"What is on pin {p.pin}{of}?", f"What does pin {p.pin}{of} carry?"])
        steps = [f"The pin table{of} on {place} lists pin {p.pin} as {p.signal}: {lower_first(p.function)}."]
        answer = f"Pin {p.pin}{of} is {p.signal}: {p.function}."
    elif kind == "signal":
        question = pick(key, [f"Which pin{of} is {p.signal}, and what does it do?", f"Where is the {p.signal} signal{of}?"])
        steps = [f"Looking for {p.signal} in the pin table{of} on {place}: it is on pin {p.pin}.",
                 f"The function column says {lower_first(p.function)}."]
        answer = f"{p.signal} is pin {p.pin}{of}: {p.function}."
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    return Turn(question, " ".join(steps), answer)
