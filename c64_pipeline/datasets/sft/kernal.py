"""KERNAL and ROM routine entries: name, call address, purpose, registers in and out, preparatory routines, errors.

Three layouts real references use are read:
- jump-table rows: "$FFD2 | 65490 | CHROUT | Print the character in the accumulator | In: A character";
- entry blocks: a header "$FFD2  CHROUT  Output a character" followed by labelled lines
  ("* Communication registers: A", "* Preparatory routines: (CHKOUT,OPEN)", "* Error returns: ...");
- sentences: "CHROUT at $FFD2 prints the character in the accumulator ...".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.datasets.sft import registers
from c64_pipeline.ingest.extraction import PageText
from c64_pipeline.datasets.sft.common import (
    EvidenceLine,
    Mined,
    Turn,
    cells,
    hex4,
    hex_to_decimal_steps,
    lower_first,
    pick,
    where,
)

_LABELS = {
    # "communication registers" carry data in either direction (A for CHROUT, A out of CHRIN): asked as such
    "communication registers": "communication", "entry requirements": "inputs", "input": "inputs",
    "output": "outputs", "returns": "outputs",
    "preparatory routines": "preparatory", "setup routines": "preparatory",
    "error returns": "errors", "errors": "errors",
    "registers affected": "affected", "registers used": "affected",
}
_LABELLED = re.compile(r"^\s*(?:[*\-•]\s*)?(?:\*\*)?(" + "|".join(_LABELS) + r")(?:\*\*)?\s*:\s*(?:\*\*)?\s*(.+)$", re.IGNORECASE)
_REG_SPLIT = re.compile(r"\s*[|;]?\s*\b(?=(?:In|Out)\s*:|Uses\s+[AXY]\b)")
_REG_PART = re.compile(r"\b(In|Out)\s*:\s*(.+?)(?=;?\s*\b(?:In|Out)\s*:|;?\s*\bUses\b|$)|\bUses\s+([AXY](?:\s*,\s*[AXY])*)")


@dataclass(frozen=True)
class Routine(Mined):
    doc_id: str
    page: int
    method: str
    name: str
    address: int
    purpose: str  # as printed: "Print the character in the accumulator" or "prints the character ..."
    decimal_confirmed: bool
    lines: tuple[EvidenceLine, ...]
    inputs: str | None = None
    outputs: str | None = None
    affected: str | None = None
    preparatory: str | None = None
    errors: str | None = None
    communication: str | None = None
    neighbour: tuple[int, str] | None = None  # (address, name) of the entry listed just before it

    family = "kernal_routine"

    @property
    def description(self) -> str:  # the register family's field name, for old callers
        return self.purpose

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def kinds(self) -> list[str]:
        kinds = ["routine", "routine_meaning"]
        kinds += [k for k in ("inputs", "outputs", "communication", "preparatory", "errors") if getattr(self, k)]
        return kinds

    def turn(self, kind: str) -> Turn:
        return _turn(self, kind)


def registers_text(spec: str) -> str:
    """'A file, X device, Y secondary address' -> 'A = file, X = device, Y = secondary address': the table's register
    shorthand made readable ('A byte' is the byte in A, not 'a byte'); other text stays as printed."""
    items = []
    for item in re.split(r",\s+(?=[AXY](?:/[AXY])?\s)", spec):
        m = re.match(r"^([AXY](?:/[AXY])?)\s+(?!=)(.+)$", item)
        items.append(f"{m.group(1)} = {m.group(2)}" if m else item)
    return ", ".join(items)


def _infinitive(purpose: str) -> str:
    """'prints the character' -> 'print the character'; 'Print the character' -> 'print the character'."""
    first, _, rest = purpose.partition(" ")
    low = first.lower()
    if first[:1].islower() or low.endswith("s") and not low.endswith("ss"):
        if re.search(r"(?:ss|sh|ch|x)es$", low):
            low = low[:-2]
        elif low.endswith("ies"):
            low = low[:-3] + "y"
        elif low.endswith("s") and not low.endswith("ss"):
            low = low[:-1]
    return f"{low} {rest}".strip()


_IMPERATIVES = set(
    "accept activate add advance allocate call change check choose clear close command compare convert copy define "
    "delete disable display enable end fetch find get give handle init initialise initialize input list load look "
    "make move open output perform plot print put read receive reset restore return save scan search select send set "
    "show start stop store switch take test transfer transmit turn unlisten untalk update verify wait write".split()
)


def _is_verb_phrase(purpose: str) -> bool:
    first = purpose.split()[0] if purpose.split() else ""
    base = re.split(r"[/,]", first.lower())[0]
    if base in _IMPERATIVES or (base.endswith("s") and base[:-1] in _IMPERATIVES) or \
            (base.endswith("es") and base[:-2] in _IMPERATIVES):
        return True
    return bool(re.fullmatch(r"[A-Za-z]+", first)) and not first.isupper() and \
        bool(re.match(r"^\S+\s+(?:the|a|an|one|all|or|and|to|from|whether|if|pages?|memory|\w+ing)\b", purpose, re.IGNORECASE))


def _split_registers(text: str) -> tuple[str, dict[str, str]]:
    """'Print the character ... | In: A character' -> ('Print the character ...', {'inputs': 'A character'})."""
    parts = _REG_SPLIT.split(text, maxsplit=1)
    purpose, found = parts[0].strip(" |;,."), {}
    if len(parts) > 1:
        for m in _REG_PART.finditer(parts[1]):
            if m.group(1):
                found["inputs" if m.group(1).lower() == "in" else "outputs"] = m.group(2).strip(" ;,.")
            elif m.group(3):
                found["affected"] = m.group(3)
    return purpose, found


def _entry_labels(lines: list[str], start: int) -> tuple[dict[str, str], list[EvidenceLine]]:
    """Labelled lines of an entry block that begins after line `start` (0-based index of the header)."""
    found: dict[str, str] = {}
    used: list[EvidenceLine] = []
    for k in range(start + 1, min(len(lines), start + 16)):
        text = lines[k].strip()
        if k > start + 1 and registers.parse_fact_line(text) and re.match(r"^\$[0-9A-Fa-f]{4}\s", text):
            break  # the next entry
        m = _LABELLED.match(text)
        if m:
            key = _LABELS[m.group(1).lower()]
            value = m.group(2).strip(" *").rstrip(".")
            if re.fullmatch(r"\([^()]*\)", value):
                value = value[1:-1]  # "(CHKOUT,OPEN)"
            if key not in found and value and len(value) <= 120 and value.lower() not in ("none", "n/a", "-"):
                found[key] = value
                used.append(EvidenceLine(k + 1, lines[k].strip()))
    return found, used


def mine_routines(pages: Iterable[PageText]) -> tuple[list[Routine], set[tuple[str, int, int]]]:
    """Routines from page records, and the (doc_id, page, line) of every line they took."""
    routines: list[Routine] = []
    taken: set[tuple[str, int, int]] = set()
    for page in pages:
        if page.method == "none":
            continue
        lines = page.text.split("\n")
        previous: tuple[int, str] | None = None
        for i, line in enumerate(lines):
            parsed = registers.parse_fact_line(line.strip())
            if not parsed:
                continue
            address, end, confirmed, name, description = parsed
            if not name or not (registers.names_routine(address, end, name, description)
                                or (cells(line) is None and end is None)):
                continue
            purpose, regs = _split_registers(description)
            evidence = [EvidenceLine(i + 1, line.strip())]
            if cells(line) is None:  # a sentence: take the lines it wrapped onto
                purpose, used = registers.wrapped(line, purpose, lines[i + 1 : i + 5])
                if used:
                    evidence = [EvidenceLine(i + 1, "\n".join(lines[i : i + 1 + used]).strip())]
            else:
                labelled, label_lines = _entry_labels(lines, i)
                if labelled:
                    regs = {**regs, **{k: v for k, v in labelled.items() if k not in regs}}
                    evidence += label_lines
            if not registers.is_description(purpose):
                continue
            routine = Routine(page.doc_id, page.page, page.method, name, address, purpose,
                              confirmed, tuple(evidence), neighbour=previous, **regs)
            routines.append(routine)
            taken.update((page.doc_id, page.page, e.line_no) for e in evidence)
            previous = (address, name)
    return routines, taken


def _turn(r: Routine, kind: str) -> Turn:
    key = f"{r.doc_id}:{r.page}:{r.lines[0].line_no}:{kind}"
    addr = hex4(r.address)
    task = _infinitive(r.purpose) if _is_verb_phrase(r.purpose) else None
    place = where(r.doc_id, r.page)
    steps: list[str] = []
    if kind == "routine":
        if task:
            question = pick(key, [
                f"Which KERNAL routine do I call to {task}, and at what address?",
                f"How do I {task} from machine language through the ROM?",
                f"Is there a ROM routine to {task}? Where is it?",
            ])
            steps.append(f"The job is to {task}. On {place} that is {r.name}, entered at {addr}.")
        else:
            question = pick(key, [f"Where do I call the {r.name} routine?", f"What is the entry address of {r.name}?"])
            steps.append(f"{place[0].upper() + place[1:]} gives {r.name} at {addr}, for {lower_first(r.purpose)}.")
        decimal = hex_to_decimal_steps(r.address)
        steps.append(f"From machine code that is JSR {addr}; from BASIC, SYS needs the decimal form, {decimal}"
                     + (", which the decimal column of the row also prints." if r.decimal_confirmed else "."))
        if r.inputs:
            steps.append(f"It expects {registers_text(r.inputs)} on entry, so those registers are loaded first.")
        answer = f"{r.name} at {addr}: {r.purpose}. Call it with JSR {addr} (SYS {r.address} from BASIC)" + \
            (f"; in: {registers_text(r.inputs)}." if r.inputs else ".")
    elif kind == "routine_meaning":
        question = pick(key, [
            f"What does the {r.name} routine at {addr} do?",
            f"My disassembly has JSR {addr}. What does that call?",
        ])
        steps.append(f"{addr} is listed on {place} as the entry of {r.name}: {lower_first(r.purpose)}.")
        if r.neighbour:
            gap = r.address - r.neighbour[0]
            if gap == 3:
                steps.append(f"The entry before it, {r.neighbour[1]} at {hex4(r.neighbour[0])}, is {hex4(r.neighbour[0])} + 3 = {addr}: "
                             "jump-table slots are three-byte JMP instructions.")
            else:
                steps.append(f"It follows {r.neighbour[1]} ({hex4(r.neighbour[0])}) in the same list.")
        if r.affected:
            steps.append(f"Registers it changes: {r.affected}.")
        answer = f"JSR {addr} calls {r.name}: {r.purpose}."
    elif kind == "inputs":
        question = pick(key, [
            f"What must be in the registers before calling {r.name}?",
            f"How do I pass parameters to {r.name} ({addr})?",
            f"Which registers does {r.name} read on entry?",
        ])
        steps.append(f"The entry for {r.name} on {place} lists what it expects on entry: {registers_text(r.inputs)}.")
        if task:
            steps.append(f"That fits its job, to {task}.")
        answer = f"Before JSR {addr} ({r.name}), set up: {registers_text(r.inputs)}."
    elif kind == "outputs":
        question = pick(key, [
            f"What does {r.name} return, and where?",
            f"After JSR {addr} ({r.name}), where is the result?",
        ])
        steps.append(f"For {r.name} the reference on {place} gives the result as: {registers_text(r.outputs)}.")
        if r.inputs:
            steps.append(f"Its inputs are listed separately ({registers_text(r.inputs)}), so the two are not confused.")
        answer = f"{r.name} returns: {registers_text(r.outputs)}."
    elif kind == "communication":
        question = pick(key, [f"Which registers does {r.name} use to pass its data?",
                              f"Through which registers does {r.name} ({addr}) exchange data with the caller?"])
        steps.append(f"The {r.name} entry on {place} gives its communication registers as {r.communication}.")
        steps.append(f"Its job is to {task}, so that is where the data goes in or comes out." if task
                     else f"It is described as {lower_first(r.purpose)}; those registers carry that data.")
        answer = f"{r.name} passes its data through: {r.communication}."
    elif kind == "preparatory":
        question = pick(key, [
            f"Which routines must I call before {r.name}?",
            f"What has to be set up before using {r.name} at {addr}?",
        ])
        steps.append(f"The {r.name} entry on {place} names its preparatory routines: {r.preparatory}.")
        steps.append(f"{r.name} itself only does this: {lower_first(r.purpose)}; what it relies on has to be prepared first.")
        answer = f"Before {r.name}, call {r.preparatory}."
    elif kind == "errors":
        question = pick(key, [f"What errors can {r.name} report?", f"How does {r.name} ({addr}) signal an error?"])
        steps.append(f"Under error returns, the {r.name} entry on {place} says: {r.errors}.")
        steps.append(f"That applies to what {r.name} does: {lower_first(r.purpose)}.")
        answer = f"{r.name} error returns: {r.errors}."
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    if r.method == "ocr":
        steps.append("The page was read by OCR, so the address is checked against the decimal form above.")
    return Turn(question, " ".join(steps), answer)
