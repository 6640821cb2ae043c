"""Pinouts and signal tables: "Pin | Signal | Function" rows under a header that names pins.

A row is a pin number, a signal name and what it does ("9 | R/W | Read/write line from the processor"). Rows are
only taken below a header line that mentions pins, so bit tables ("7 | N | Negative") are not mistaken for pinouts.
The component is taken from the nearest caption or heading above the table that names it.

Pin diagrams of a DIP package read as text (often by OCR) are read too: a line holds a pin of each side of the
package, "RDY Oj 2 | 39 OM) & 2 out", and the two pin numbers facing each other always add up to the pin count plus
one. A line is only taken when its numbers make the sum most lines of the page make, and a name only when it is a
known signal name (GND, RDY, R/W, ...): OCR garbles the pin boxes next to the names, and a misread name or number is
worse than none.

Pins of one diagram or list differ mostly in their names, so the reasoning is built from what sets each pin apart on
its cited lines: its place on the package (side, row from the notch worked out from the facing pin, the corners) or in
the list (counting up, down, or out of order there), the neighbours read on the lines above and below (cited with it),
the facing pin's name, and what the name itself says (ground, a supply voltage, "in"/"out", a pair, one signal on two
pins). A pin whose reasoning would repeat, names and numbers aside, one already taught in the document is not asked:
fewer questions rather than look-alike ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from collections import Counter

from c64_pipeline.ingest.readability import known_word, technical_terms
from c64_pipeline.datasets.think_metrics import reasoning_skeleton
from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, doc_title, is_rule_row, lower_first, pick, readable, reject, where
from c64_pipeline.ingest.extraction import PageText

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
    facing: int | None = None  # in a DIP diagram: the pin across the package on the same line (its number checks this one)
    listed: tuple[tuple[int, str], ...] = ()  # the pins listed just before and after; in a DIP diagram, read beside it
    caption: EvidenceLine | None = None  # the line naming the connector, cited with the pin when it is not the row
    read_as: str | None = None  # a DIP pin number OCR garbled ("2f"), worked out from the pin facing it
    across: str | None = None  # in a DIP diagram: the name of the facing pin, when read on the same line
    context: tuple[EvidenceLine, ...] = ()  # the lines of the pins in `listed` (same order), cited with the pin

    family = "pinout"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),) + ((self.caption,) if self.caption else ()) + self.context

    def kinds(self) -> list[str]:
        return ["pin", "signal"] if self.function else [pick(f"{self.doc_id}:{self.page}:{self.line_no}:{self.pin}", ["pin", "signal"])]

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


def mine_pinouts(pages: Iterable[PageText]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    taken: set[tuple[str, int, int]] = set()
    for page in pages:
        if page.method == "none":
            continue
        lines = page.text.split("\n")
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
            found.append(Pin(page.doc_id, page.page, page.method, i + 1, line.strip(), *row, component))
            taken.add((page.doc_id, page.page, i + 1))
    return found, taken


def _dip_position(p: Pin, pins: int) -> str:
    """Where the pin sits on the package, from its number and the pin count the facing pins give."""
    half = pins // 2
    if p.pin == 1:
        return "Pin 1 is the corner beside the notch, where the count starts down the left side."
    if p.pin == pins:
        return f"It is the last pin, the corner beside the notch across from pin 1, where the count ends."
    if p.pin == half:
        return f"It is the bottom corner of the left side, at the far end from the notch, where the count turns to pin {half + 1}."
    if p.pin == half + 1:
        return f"The count turns round the far end here: pin {half} is the corner before it, and the right side runs back up to the notch."
    left = p.pin <= half
    row = p.pin if left else pins + 1 - p.pin
    middle = {half // 2, half // 2 + 1} if half % 2 == 0 else {half // 2 + 1}
    where_on_side = ("next to the corner pin at the notch" if row == 2 else "next to the corner pin at the far end" if row == half - 1
                     else "halfway along the side" if row in middle
                     else "in the half nearer the notch" if row <= half // 2 else "in the half nearer the far end")
    if left:
        return f"The left side counts down from the notch, so it is row {row} of {half} with {row - 1} {'pin' if row == 2 else 'pins'} above it: {where_on_side}."
    return (f"The right side counts up from pin {half + 1} at the far end: {p.pin} - {half} = {p.pin - half} is its place on that "
            f"side, so from the notch it is row {half} + 1 - {p.pin - half} = {row} of {half}: {where_on_side}.")


def _dip_turn(p: Pin, kind: str) -> Turn:
    key = f"{p.doc_id}:{p.page}:{p.line_no}:{p.pin}:{kind}"
    of = f" in the {p.component}" if p.component else ""
    pins = p.pin + p.facing - 1
    if kind == "pin":
        question = pick(key, [f"What is on pin {p.pin}{of}?", f"Which signal does pin {p.pin}{of} carry?"])
    else:
        question = pick(key, [f"Which pin is {p.signal}{of}?", f"On which pin{of} do I find {p.signal}?"])
    side = "left" if p.pin <= pins // 2 else "right"
    across = f"pin {p.facing}, {p.across}" if p.across else f"pin {p.facing}"
    if p.read_as:
        steps = [f"The pin diagram on {where(p.doc_id, p.page)} draws {p.signal} on the {side} side of the package, its number "
                 f"printed as {p.read_as} in the text, which is no number.",
                 f"It faces {across}{',' if p.across else ''} and facing pins of a {pins}-pin DIP add up to {pins + 1}: {pins + 1} - {p.facing} = "
                 f"{p.pin}, which fits the first digit read."]
    else:
        steps = [f"The pin diagram on {where(p.doc_id, p.page)} draws {p.signal} at pin {p.pin}, on the {side} side of the package.",
                 f"Across from it on the same line is {across}: {p.pin} + {p.facing} = {pins + 1}, which is what facing pins "
                 f"of a {pins}-pin DIP add up to, so the number was read right."]
    steps.append(_dip_position(p, pins))
    # the pins beside it on the same side, read from the lines above and below (cited with it)
    lines = {number: line.line_no for (number, _), line in zip(p.listed, p.context)}
    beside = [f"pin {n} {s} on the line {'above' if lines[n] < p.line_no else 'below'}" for n, s in p.listed]
    if len(beside) == 2:
        steps.append(f"Its neighbours on this side are {beside[0]} and {beside[1]}.")
    elif beside and len(_same_side_neighbours(p.pin, pins)) == 1:
        steps.append(f"Being a corner, it has one neighbour on this side: {beside[0]}.")
    elif beside:
        steps.append(f"Of its two neighbours on this side only {beside[0]} is read.")
    if p.signal.upper() in ("VCC", "VDD"):
        steps.append(f"{p.signal} is the supply voltage, not a logic signal.")
    elif p.signal.upper() in ("GND", "VSS"):
        steps.append(f"{p.signal} is ground, the return of the supply, not a logic signal.")
    direction = p.signal.split()[-1] if " " in p.signal else ""
    if direction in ("in", "out"):
        steps.append(f"The last word of its name, '{direction}', marks it as an {direction}put of the chip.")
    if p.method == "ocr":
        steps.append("The diagram was read by OCR; the name is kept because it is a known signal name.")
    answer = f"Pin {p.pin} is {p.signal}." if kind == "pin" else f"{p.signal} is pin {p.pin}."
    return Turn(question, " ".join(steps), answer)


# the pin box between name and number is read as 1-3 marks with no digit ("Oj", "O", "{J"); a digit there is part of
# the name ("DB 30) 4" is DB3), and such a line is left alone
_LEFT = re.compile(r"^(?P<name>[A-Za-z][A-Za-z/]{1,5})(?:\s+[^\s\d|]{1,3})?\s+(?P<pin>\d{1,2})\s*\|")
_RIGHT = re.compile(r"\|\s*(?P<pin>\d{1,2})(?:\s+[^\s\d|]{1,3})?\s+(?P<name>[A-Za-z][A-Za-z/]{1,5}(?: [a-z]{2,3})?)$")
_TERMS: frozenset[str] = frozenset()


def _signal_name(name: str) -> bool:
    global _TERMS
    _TERMS = _TERMS or technical_terms()
    words = name.split()
    return words[0].lower() in _TERMS or name.upper() in ("R/W", "GND", "VCC", "VDD", "VSS") \
        or (len(words) == 2 and known_word(words[0].lower()) and known_word(words[1]) and words[0][0].isupper())


def _same_side_neighbours(pin: int, pins: int) -> tuple[int, ...]:
    """The pins beside `pin` on its side of a DIP package (none round a corner: pin 1 and pin `pins` face each other)."""
    half = pins // 2
    side = range(1, half + 1) if pin <= half else range(half + 1, pins + 1)
    return tuple(n for n in (pin - 1, pin + 1) if n in side)


def mine_dip(pages: Iterable[PageText], taken: set[tuple[str, int, int]]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    used: set[tuple[str, int, int]] = set()
    shapes: set[str] = set()  # reasoning skeletons taught so far in the document
    for page in pages:
        lines = page.text.split("\n")
        pairs = []
        for i, line in enumerate(lines):
            m = re.search(r"(\d{1,2})\s*\|\s*(\d{1,2})", line)
            if m and line.count("|") == 1 and (page.doc_id, page.page, i + 1) not in taken:
                pairs.append((i, int(m.group(1)), int(m.group(2))))
        sums = Counter(a + b for _, a, b in pairs)
        if not sums:
            continue
        total, agree = sums.most_common(1)[0]
        if agree < 4 or total - 1 not in (8, 14, 16, 18, 20, 22, 24, 28, 40, 48, 64):
            continue
        component = doc_title(page.doc_id)
        read: list[Pin] = []
        for i, a, b in pairs:
            if a + b != total or not (1 <= a < b <= total - 1):
                reject("pin-diagram line whose facing pin numbers do not add up")
                continue
            line = lines[i].strip()
            for match, pin, facing in ((_LEFT.search(line), a, b), (_RIGHT.search(line), b, a)):
                if match and int(match.group("pin")) == pin and _signal_name(match.group("name")):
                    read.append(Pin(page.doc_id, page.page, page.method, i + 1, line, pin,
                                    match.group("name"), "", component, facing))
        # a right-hand number OCR garbled ("Cap lb 2 | 2f tJ Audio out") is the pin facing the left one: total - left,
        # taken when the garbled token starts with that number's first digit
        for i, line in enumerate(lines):
            m = re.search(r"(?<![\d|])(\d{1,2})\s*\|\s*(\d)([^\d\s|])\S*\s+(?:[^\s\d|]{1,3}\s+)?"
                          r"(?P<name>[A-Z][A-Za-z/]{1,5}(?: [a-z]{2,3})?)$", line.strip())
            if not m or (page.doc_id, page.page, i + 1) in taken or any(p.line_no == i + 1 for p in read) \
                    or not _signal_name(m.group("name")):
                continue
            left = int(m.group(1))
            pin = total - left
            if 1 <= left < pin and str(pin)[0] == m.group(2) and len(str(pin)) == 2:
                garbled = re.search(r"\|\s*(\S+)", line).group(1)
                read.append(Pin(page.doc_id, page.page, page.method, i + 1, line.strip(), pin,
                                m.group("name"), "", component, left, read_as=garbled))
        by_number = {p.pin: p for p in read}
        for p in sorted(read, key=lambda p: (p.line_no, p.pin)):
            beside = sorted((by_number[n] for n in _same_side_neighbours(p.pin, total - 1)
                             if n in by_number and by_number[n].line_no != p.line_no), key=lambda b: b.line_no)
            facing = by_number.get(p.facing)
            p = replace(p, across=facing.signal if facing and facing.line_no == p.line_no else None,
                        listed=tuple((b.pin, b.signal) for b in beside),
                        context=tuple(EvidenceLine(b.line_no, b.evidence) for b in beside))
            used.add((p.doc_id, p.page, p.line_no))
            # pins whose place and neighbours tell nothing new give the same reasoning as one already taught: asked once
            shape = reasoning_skeleton(p.turn(p.kinds()[0]).reasoning)
            if shape in shapes:
                reject("pin-diagram pin whose reasoning repeats another pin of the document")
                continue
            shapes.add(shape)
            found.append(p)
    return found, used


_LIST_ROW = re.compile(r"^(\d{1,2})\s+([A-Z+][A-Za-z0-9_/\\+-]{1,11})$")
_CONNECTOR = re.compile(r"\b(?:port\d?|connector|bus|socket|header|edge|CN\d+|J\d+|P\d+)\b", re.IGNORECASE)


def _connector_caption(lines: list[str], first: int) -> tuple[str, int] | None:
    """The caption naming the connector above a pin list ("SERIAL BUS CN4", "CONTROL PORT2 (MALE DB9) CN8")."""
    for k in range(first - 1, max(-1, first - 4), -1):
        text = lines[k].strip()
        if not text:
            continue
        parts = cells(text) or [text]
        named = " ".join(p for p in parts if re.search(r"[A-Za-z]{3,}", p))
        if _CONNECTOR.search(named) and len(named) <= 60 and not _LIST_ROW.match(text):
            return named, k
    return None


def mine_connectors(pages: Iterable[PageText], taken: set[tuple[str, int, int]]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    """Pin lists of a connector in schematics and hardware notes: a caption naming a port, bus or connector, then
    lines of pin number and signal ("5 DATA"), each pin once."""
    found: list[Mined] = []
    used: set[tuple[str, int, int]] = set()
    shapes: set[str] = set()  # reasoning skeletons taught so far in the document
    for page in pages:
        lines = page.text.split("\n")
        i = 0
        while i < len(lines):
            rows = []
            k = i
            while k < len(lines) and (m := _LIST_ROW.match(lines[k].strip())) and (page.doc_id, page.page, k + 1) not in taken:
                rows.append((k, int(m.group(1)), m.group(2)))
                k += 1
            caption = _connector_caption(lines, i) if len(rows) >= 3 else None
            if caption and len({n for _, n, _ in rows}) == len(rows):
                for r, (line, number, signal) in enumerate(rows):
                    beside = [rows[j] for j in (r - 1, r + 1) if 0 <= j < len(rows)]
                    pin = Pin(page.doc_id, page.page, page.method, line + 1, lines[line].strip(),
                              number, signal, "", caption[0], None, tuple((n, s) for _, n, s in beside),
                              EvidenceLine(caption[1] + 1, lines[caption[1]].strip()),
                              context=tuple(EvidenceLine(n + 1, lines[n].strip()) for n, _, _ in beside))
                    # pins of a list whose place and neighbours tell nothing new give the reasoning of a pin already
                    # taught (in any list of the document): asked once, the list stays cited
                    shape = reasoning_skeleton(pin.turn(pin.kinds()[0]).reasoning)
                    used.add((page.doc_id, page.page, line + 1))
                    if shape in shapes:
                        reject("connector pin whose reasoning repeats another pin of the document")
                        continue
                    shapes.add(shape)
                    found.append(pin)
            i = max(k, i + 1)
    return found, used


_SUPPLY = re.compile(r"\+?\d+(?:\.\d+)?V(?:AC|DC)?|VCC|VDD", re.IGNORECASE)


def _kind_of_name(signal: str) -> str | None:
    """What a pin's name alone says it is: ground, or a supply named by its voltage ("+5V", "+9VAC")."""
    if signal.upper() in ("GND", "VSS"):
        return f"{signal} is ground, the return of the supply, not a logic signal."
    if _SUPPLY.fullmatch(signal):
        return f"{signal} names a supply voltage, so the pin carries power, not data."
    return None


def _list_neighbour(p: Pin, number: int, signal: str, before: bool) -> str:
    """A step about the line listed before or after a pin: does the list count up, down, or jump there?"""
    line = "The line before it" if before else "The line after it"
    if abs(number - p.pin) != 1:
        return f"{line} is pin {number} {signal}, not a neighbouring number, so the list is not in pin order there."
    counting = "up" if (number < p.pin) == before else "down"
    return f"{line} is pin {number} {signal}, so the list counts {counting} {'into' if before else 'out of'} this pin."


def _list_turn(p: Pin, kind: str) -> Turn:
    key = f"{p.doc_id}:{p.page}:{p.line_no}:{kind}"
    of = f" of {p.component}" if p.component else ""
    if kind == "pin":
        question = pick(key, [f"What is on pin {p.pin}{of}?", f"Which signal is on pin {p.pin}{of}?"])
    else:
        question = pick(key, [f"Which pin{of} carries {p.signal}?", f"On which pin{of} is {p.signal}?"])
    steps = [f"{p.component} is drawn on {where(p.doc_id, p.page)} with its pins listed as number and signal name.",
             f"The line for {p.signal} reads {p.evidence}."]
    before = [listed for listed, line in zip(p.listed, p.context) if line.line_no < p.line_no]
    after = [listed for listed, line in zip(p.listed, p.context) if line.line_no > p.line_no]
    if not before:
        steps.append("It is the first line of the list.")
    else:
        steps.append(_list_neighbour(p, *before[0], before=True))
    if not after:
        steps.append("It is the last line of the list.")
    else:
        steps.append(_list_neighbour(p, *after[0], before=False))
    family = [s for _, s in p.listed if re.sub(r"\d+$", "", s) == re.sub(r"\d+$", "", p.signal) != p.signal]
    pair = [s for _, s in p.listed if len(s) == len(p.signal) >= 4 and s[:-1] == p.signal[:-1]
            and s[-1].isalpha() and p.signal[-1].isalpha() and s != p.signal]
    twin = [n for n, s in p.listed if s == p.signal]
    if twin:
        steps.append(f"Beside it, {p.signal} is listed on pin {twin[0]} too: one signal brought out on two pins.")
    if family:
        steps.append(f"{p.signal} and {family[0]} are numbered lines of one group.")
    elif pair:
        steps.append(f"{p.signal} and {pair[0]} differ only in their last letter: a pair of lines listed together.")
    if kind_of_name := _kind_of_name(p.signal):
        steps.append(kind_of_name)
    answer = f"Pin {p.pin}{of} is {p.signal}." if kind == "pin" else f"{p.signal} is on pin {p.pin}{of}."
    return Turn(question, " ".join(steps), answer)


def _turn(p: Pin, kind: str) -> Turn:
    if p.facing is not None:
        return _dip_turn(p, kind)
    if not p.function:
        return _list_turn(p, kind)
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
