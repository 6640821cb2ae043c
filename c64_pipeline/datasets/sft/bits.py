"""Bit fields of a register: what each bit (or group of bits) of one address does.

Two layouts real references use are read:
- a register row followed by its bit rows, the bit number (or range) in a column of its own:
      $D418                     Select Filter Mode and Volume
                           7    Cut-Off Voice 3 Output: 1 = Off, 0 = On
                           3-0  Select Output Volume: 0-15
  (a bit row may wrap onto a more indented line that starts in lower case or with "(");
- a register table with one column per bit, under a header whose cells are the bit numbers:
      | REG | Name | Description        | 7 | 6 | 5      | 4    | ...
      | E   | CRA  | Control register A |   |   | INMODE | LOAD | ...

The reasoning works out what a reader needs to touch the field: the mask of the bits in binary, hex and decimal,
and how many values a group of bits can hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.datasets.sft import registers
from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, hex4, is_rule_row, lower_first, pick, plain_words, readable, where
from c64_pipeline.datasets.sft.kernal import _IMPERATIVES
from c64_pipeline.ingest.extraction import PageText

_BIT_ROW = re.compile(r"^(?P<indent>\s+)(?P<hi>[0-7])(?:\s*[-–]\s*(?P<lo>[0-7]))?\s{2,}(?P<text>\S.*)$")
_BIT_ITEM = re.compile(r"^(?P<indent>\s+)(?:[*\-•]\s+)?Bits?\s*#?(?P<hi>[0-7])(?:\s*[-–]\s*#?(?P<lo>[0-7]))?\s*:\s+(?P<text>\S.*)$")
_BIT_HEADER = re.compile(r"^(?:Bit\s*|B|D)?([0-7])$", re.IGNORECASE)


def mask_steps(high: int, low: int) -> tuple[int, str]:
    """(mask, 'bits 3-0 -> %00001111 = $0F = 15') for the bits high..low of a byte."""
    mask = ((1 << (high - low + 1)) - 1) << low
    return mask, f"%{mask:08b} = ${mask:02X} = {mask}"


@dataclass(frozen=True)
class BitField(Mined):
    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]  # the register row first, then the bit row
    address: int
    register: str  # the register row's description, "Select Filter Mode and Volume"
    name: str | None
    high: int
    low: int
    meaning: str  # as printed: "Select Output Volume: 0-15"
    others: tuple[tuple[str, str], ...] = ()  # the bit rows just before and after: ("6", "Select Filter High-Pass ...")

    family = "bit_field"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def bits(self) -> str:
        return f"bit {self.high}" if self.high == self.low else f"bits {self.high}-{self.low}"

    def kinds(self) -> list[str]:
        """One question per bit row: what the bits do, or (when the row says what they do with a verb, "Select
        Output Volume") which bits do it; which side is asked rotates with the row."""
        options = ["meaning"] + (["which"] if _action(self.meaning) else [])
        return [pick(f"{self.doc_id}:{self.page}:{self.lines[-1].line_no}", options)]

    def turn(self, kind: str) -> Turn:
        key = f"{self.doc_id}:{self.page}:{self.lines[-1].line_no}:{kind}"
        addr = hex4(self.address)
        reg = f"{addr} ({self.name})" if self.name else addr
        bits = self.bits()
        place = where(self.doc_id, self.page)
        steps = [f"{reg} is listed on {place} as {plain_words(self.register)}, with a row for each bit or group of bits."]
        if kind == "meaning":
            question = pick(key, [f"What does {bits} of {reg} do?", f"What is {bits} of {reg} for?",
                                  f"What happens when I change {bits} of {addr}?"]) if self.high == self.low else \
                pick(key, [f"What do {bits} of {reg} select?", f"What are {bits} of {reg} used for?",
                           f"What is held in {bits} of {addr}?"])
            steps.append(f"The row for {bits} reads: {plain_words(self.meaning)}.")
        elif kind == "which":
            action = _action(self.meaning)
            which = "Which bit" if self.high == self.low else "Which bits"
            question = pick(key, [f"{which} of {reg} {action}?", f"In {reg}, where is the field to {action}?"])
            steps.append(f"Scanning the bit rows under it for the one to {action}: that is {bits}.")
        else:
            raise ValueError(f"unknown question kind {kind!r}")
        mask, worked = mask_steps(self.high, self.low)
        if self.high == self.low:
            steps.append(f"Bit {self.high} alone is the mask {worked}: AND with it to test the bit, OR to set it.")
        else:
            width = self.high - self.low + 1
            steps.append(f"Those {width} bits hold {1 << width} values, 0 to {(1 << width) - 1}; their mask is {worked}"
                         + (f", and values are shifted left by {self.low}." if self.low else "."))
        if self.others:
            steps.append("Next to it: " + "; ".join(f"{b}, {plain_words(m)}" for b, m in self.others) + ".")
        if self.method == "ocr":
            steps.append("The page was read by OCR, so the bit numbers are taken as printed.")
        answer = f"{bits[0].upper() + bits[1:]} of {reg}, {self.register}: {self.meaning}."
        return Turn(question, " ".join(steps), answer)


def _action(meaning: str) -> str | None:
    """'Select Output Volume: 0-15' -> 'select output volume'; None when the row does not open with a verb."""
    core = re.split(r"[:(;,=]", meaning)[0].strip().rstrip(".")
    words = core.split()
    if not (2 <= len(words) <= 8) or words[0].lower() not in _IMPERATIVES:
        return None
    return plain_words(lower_first(core))


@dataclass(frozen=True)
class BitColumns(Mined):
    """One row of a register table with a column per bit: the names of its bits."""

    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]  # the header row (bit numbers) and the register row
    register: str  # the register's id as printed ("E", "$DC0E", "4")
    name: str | None
    description: str
    bit_names: tuple[tuple[int, str], ...]  # (bit, name) for the bits the row names, high bit first
    chip: str | None  # the document or chapter title ("MOS 6526 CIA (timers)")

    family = "bit_field"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def kinds(self) -> list[str]:
        return ["names"]

    def turn(self, kind: str) -> Turn:
        key = f"{self.doc_id}:{self.page}:{self.lines[-1].line_no}:{kind}"
        of = f" of the {self.chip}" if self.chip else ""
        if self.name:
            label = self.name
            question = pick(key, [f"What are the bits of {label} ({lower_first(self.description)}){of}?",
                                  f"Which flags or fields does {label}{of} hold, bit by bit?",
                                  f"How is {label}, the {lower_first(self.description)}, laid out bit by bit?"])
        else:  # known by its description only: "FREQ Lo 1" at offset $00
            label = self.description
            question = pick(key, [f"What are the bits of {label} (register {self.register}){of}?",
                                  f"How is register {self.register}, {label}, laid out bit by bit?"])
        steps = [f"The register table on {where(self.doc_id, self.page)} has one column per bit; the row for "
                 + (f"{label} (register {self.register}) is {plain_words(self.description)}." if self.name
                    else f"register {self.register} names it {label}.")]
        named = [b for b, _ in self.bit_names]
        if len(named) < 8:
            empty = [b for b in range(7, -1, -1) if b not in named]
            steps.append(f"The columns of bit{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} are empty in that row.")
        groups: dict[str, list[int]] = {}
        for b, n in self.bit_names:
            groups.setdefault(n, []).append(b)
        repeated = [n for n, bs in groups.items() if len(bs) > 1]
        if repeated:
            steps.append(f"{repeated[0]} fills {len(groups[repeated[0]])} columns, so it is a field of {len(groups[repeated[0]])} bits.")
        answer = (f"{label} (register {self.register}, {self.description}): " if self.name else f"{label} (register {self.register}): ") + \
            ", ".join(f"bit {b} {n}" for b, n in self.bit_names) + "."
        return Turn(question, " ".join(steps), answer)


def _bit_match(raw: str) -> re.Match | None:
    return _BIT_ROW.match(raw) or _BIT_ITEM.match(raw)


def _bit_rows(lines: list[str], start: int) -> list[tuple[int, int, int, str, int]]:
    """(first line index, high, low, meaning, lines used) for the bit rows under the register row at `start`.
    A "Bits:" line may introduce them; the sub-items of a bit row (its values, "* %x01: RAM visible ...") are
    skipped."""
    rows: list[tuple[int, int, int, str, int]] = []
    k, blanks, bit_indent = start + 1, 0, None
    while k < len(lines):
        raw = lines[k].replace("\t", " " * 8).rstrip()
        if not raw.strip() or (not rows and re.fullmatch(r"\s+Bits?:", raw)):
            blanks += 1
            if blanks > 3 or (rows and not raw.strip() and not (k + 1 < len(lines) and _bit_match(lines[k + 1].rstrip()))):
                break
            k += 1
            continue
        m = _bit_match(raw)
        if not m and rows and bit_indent is not None and len(raw) - len(raw.lstrip()) >= bit_indent \
                and raw.strip()[:1] in "*-•%":
            k += 1  # a value of the bit row above, listed under it
            continue
        if not m or registers.parse_fact_line(raw.strip()) and re.search(r"\$[0-9A-Fa-f]{4}\s{2,}", raw):
            break
        bit_indent = len(raw) - len(raw.lstrip())
        high, low = int(m.group("hi")), int(m.group("lo") or m.group("hi"))
        high, low = max(high, low), min(high, low)
        meaning, used = m.group("text").strip(), 1
        column = m.start("text")
        # a wrapped bit row continues on a line indented to its text column (or past it), that is no bit row
        while k + used < len(lines):
            nxt = lines[k + used].replace("\t", " " * 8)
            text = nxt.strip()
            if text and len(nxt) - len(nxt.lstrip()) >= column and not _bit_match(nxt.rstrip()) \
                    and text[:1] not in "*-•%" and not re.search(r"\$[0-9A-Fa-f]{4}\s{2,}", text):
                meaning += " " + text
                used += 1
            else:
                break
        meaning = re.sub(r"[.;,]?\s*Values?:?$", "", " ".join(meaning.split())).rstrip(" .:")  # "... rate. Values:" and a list
        if not readable(meaning + " bits", 160) or registers.repeated_words(meaning):
            break
        rows.append((k, high, low, meaning, used))
        k += used
    return rows if len(rows) >= 2 else []


def _bit_header(parts: list[str]) -> dict[int, int] | None:
    """{column: bit} for a header row whose cells name at least four bits."""
    cols = {i: int(_BIT_HEADER.match(p).group(1)) for i, p in enumerate(parts) if _BIT_HEADER.match(p)}
    order = [cols[i] for i in sorted(cols)]
    steps = {b - a for a, b in zip(order, order[1:])}
    adjacent = all(b == a + 1 for a, b in zip(sorted(cols), sorted(cols)[1:]))
    # the bit numbers stand side by side in order (7 6 5 ... or 0 1 2 ...): not numbers scattered over a schematic
    return cols if len(cols) >= 4 and adjacent and steps in ({1}, {-1}) else None


def _columns_record(page: PageText, lines: list[str], header: int, cols: dict[int, int], i: int, parts: list[str],
                    width: int, chip: str | None) -> BitColumns | None:
    if len(parts) != width:
        return None
    labels = [p for j, p in enumerate(parts) if j not in cols and p]
    names = [(b, parts[j]) for j, b in sorted(cols.items(), key=lambda jb: -jb[1]) if parts[j] and not re.fullmatch(r"[01x]|[-–—]+", parts[j])]
    description = next((p for p in labels if re.search(r"[a-z]{3,}", p) and readable(p + " words", 80)), None)
    # "| $00 | FREQ Lo 1 | F7 | ...": a register named but not described is described by its name
    description = description or next((p for p in labels[1:] if re.search(r"[A-Za-z]{2,}", p) and len(p) <= 24), None)
    if not names or not description or len(labels) < 2:
        return None
    name = next((p for p in labels if p != description and re.fullmatch(r"[A-Z][A-Z0-9/ ]{1,11}", p) and len(p) > 1), None)
    register = labels[0] if labels[0] not in (name, description) else (name or "")
    evidence = (EvidenceLine(header + 1, lines[header].strip()), EvidenceLine(i + 1, lines[i].strip()))
    return BitColumns(page.doc_id, page.page, page.method, evidence, register, name,
                      description, tuple(names), chip)


def mine_bits(pages: Iterable[PageText]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    """Bit fields from page records, and the (doc_id, page, line) of the bit rows they took (the register row stays
    the register family's: it is cited here as context only)."""
    from c64_pipeline.datasets.sft.prose import top_heading

    found: list[Mined] = []
    taken: set[tuple[str, int, int]] = set()
    chip: dict[str, str | None] = {}
    for page in pages:
        if page.method == "none":
            continue
        lines = page.text.split("\n")
        doc, number, method = page.doc_id, page.page, page.method
        chip[doc] = top_heading(lines) or chip.get(doc)
        header: tuple[int, dict[int, int], int] | None = None
        for i, line in enumerate(lines):
            parts = cells(line)
            if parts and not is_rule_row(parts):
                cols = _bit_header(parts)
                if cols:
                    header = (i, cols, len(parts))
                    continue
                if header:
                    record = _columns_record(page, lines, header[0], header[1], i, parts, header[2], chip[doc])
                    if record:
                        found.append(record)
                        taken.add((doc, number, i + 1))
                    continue
            elif not line.strip() or not parts:
                header = None if not line.strip() else header
            parsed = registers.parse_fact_line(line.strip())
            if not parsed or parsed[1] is not None or line[:1].isspace():
                continue
            address, _, _, name, description = parsed
            description, used = registers.wrapped(line, description, lines[i + 1 : i + 3])
            rows = _bit_rows(lines, i + used)
            if not rows:
                continue
            head = EvidenceLine(i + 1, "\n".join(lines[i : i + 1 + used]).strip())
            for r, (k, high, low, meaning, n) in enumerate(rows):
                others = tuple((f"bit {h}" if h == lo else f"bits {h}-{lo}", m)
                               for _, h, lo, m, _ in (rows[j] for j in (r - 1, r + 1) if 0 <= j < len(rows)))
                evidence = (head, EvidenceLine(k + 1, "\n".join(lines[k : k + n]).strip()))
                found.append(BitField(doc, number, method, evidence, address, description, name, high, low, meaning, others))
                taken.update((doc, number, k + 1 + m) for m in range(n))
    return found, taken
