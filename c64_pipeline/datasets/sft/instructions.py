"""CPU instruction tables: opcode rows (mnemonic, addressing mode, opcode, bytes, cycles) and mnemonic lists
(mnemonic, operation, flags).

Layouts read: "LDA #$0F | Immediate | $A9 | 169 | 2 | 2" (an example operand, the mode, the opcode in hex and
decimal, bytes, cycles; a + marks a page-crossing cycle), "A9  LDA   #d8" (opcode, mnemonic, operand symbol), and
"ADC | Add memory and carry to the accumulator | NVZC" or "ADC  Add with Carry". A row is only taken when its
mnemonic is one of the 56 documented 6502 mnemonics and its numbers agree with each other (decimal column, length
of the mode), which keeps OCR misreads out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, pick, readable, reject, where
from c64_pipeline.ingest.extraction import PageText

MNEMONICS = set(
    "ADC AND ASL BCC BCS BEQ BIT BMI BNE BPL BRK BVC BVS CLC CLD CLI CLV CMP CPX CPY DEC DEX DEY EOR INC INX INY "
    "JMP JSR LDA LDX LDY LSR NOP ORA PHA PHP PLA PLP ROL ROR RTI RTS SBC SEC SED SEI STA STX STY TAX TAY TSX TXA "
    "TXS TYA".split()
)
# mode -> operand bytes after the opcode
MODES = {
    "implied": 0, "accumulator": 0, "immediate": 1, "zero page": 1, "zero page,x": 1, "zero page,y": 1,
    "relative": 1, "(indirect,x)": 1, "(indirect),y": 1, "absolute": 2, "absolute,x": 2, "absolute,y": 2,
    "indirect": 2,
}
_MODE_NAMES = {m: m[0].upper() + m[1:] if not m.startswith("(") else "(" + m[1].upper() + m[2:] for m in MODES}
_MODE_NAMES.update({"(indirect,x)": "(Indirect,X)", "(indirect),y": "(Indirect),Y", "zero page,x": "Zero page,X",
                    "zero page,y": "Zero page,Y", "absolute,x": "Absolute,X", "absolute,y": "Absolute,Y"})


def mode_of_operand(operand: str) -> str | None:
    """The addressing mode an operand is written in: '#$0F', '$FB,X', '($FB),Y', 'a16', '#d8', 'r8', 'A', ''."""
    o = operand.replace(" ", "").upper()
    if o in ("", "IMPLIED"):
        return "implied"
    if o == "A":
        return "accumulator"
    if o.startswith("#"):
        return "immediate"
    o = re.sub(r"\$[0-9A-F]{1,2}(?![0-9A-F])|A8", "ZP", o)
    o = re.sub(r"\$[0-9A-F]{3,4}|A16", "ABS", o)
    if o in ("R8", "REL") or re.fullmatch(r"[A-Z][A-Z0-9_]*", o) and o not in ("ZP", "ABS"):
        return "relative"
    return {"ZP": "zero page", "ZP,X": "zero page,x", "ZP,Y": "zero page,y", "ABS": "absolute",
            "ABS,X": "absolute,x", "ABS,Y": "absolute,y", "(ABS)": "indirect", "(ZP,X)": "(indirect,x)",
            "(ZP),Y": "(indirect),y"}.get(o)


@dataclass(frozen=True)
class Opcode(Mined):
    doc_id: str
    page: int
    method: str
    line_no: int
    evidence: str
    mnemonic: str
    mode: str  # a key of MODES
    opcode: int
    example: str | None  # "LDA #$0F" when the table gives one
    decimal_confirmed: bool
    length: int | None
    cycles: str | None  # "4", "4+", "2*"
    operation: str | None = None  # what the mnemonic does, from the document's mnemonic list (reasoning only)

    family = "instruction"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),)

    def kinds(self) -> list[str]:
        """One question per row (an opcode table has 151 rows that differ in one or two cells): which side is asked
        rotates with the row, so the table as a whole is asked from every side."""
        options = ["opcode", "decode"] + (["cycles"] if self.cycles else [])
        return [pick(f"{self.doc_id}:{self.page}:{self.line_no}", options)]

    def turn(self, kind: str) -> Turn:
        return _opcode_turn(self, kind)


@dataclass(frozen=True)
class Mnemonic(Mined):
    doc_id: str
    page: int
    method: str
    line_no: int
    evidence: str
    mnemonic: str
    operation: str
    flags: str | None
    modes: tuple[tuple[str, int], ...] = ()  # (mode, opcode) of the same mnemonic in the document's opcode table

    family = "instruction"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),)

    def kinds(self) -> list[str]:
        return ["operation"] + (["flags"] if self.flags else [])

    def turn(self, kind: str) -> Turn:
        return _mnemonic_turn(self, kind)


_OPCODE_CELL = re.compile(r"^\$?([0-9A-F]{2})$")
_CYCLES_CELL = re.compile(r"^([2-7])([+*]?)$")
_FLAGS_CELL = re.compile(r"^(?:[NVBDIZC] ?){1,7}$|^all$")


def parse_opcode_row(parts: list[str]) -> tuple[str, str, int, str | None, bool, int | None, str | None] | None:
    """(mnemonic, mode, opcode, example, decimal agrees, bytes, cycles) of an opcode-table row, or None."""
    parts = [p for p in parts if p]
    if len(parts) < 2:
        return None
    # "A9  LDA   #d8": opcode first, then the mnemonic and its operand symbol
    first = _OPCODE_CELL.match(parts[0])
    if first and parts[1][:3] in MNEMONICS and not parts[0].startswith("$") and len(parts) <= 3:
        mnemonic = parts[1][:3]
        operand = (parts[1][3:] + " " + (parts[2] if len(parts) > 2 else "")).strip()
        mode = mode_of_operand(operand)
        return (mnemonic, mode, int(first.group(1), 16), None, False, None, None) if mode else None
    head = re.match(r"^([A-Z]{3})\b\s*(.*)$", parts[0])
    if not head or head.group(1) not in MNEMONICS:
        return None
    mnemonic, operand = head.group(1), head.group(2)
    rest = parts[1:]
    mode = None
    if rest and rest[0].lower().replace(" ", "").replace("page", " page") in MODES:
        mode = rest[0].lower().replace(" ", "").replace("page", " page")
        rest = rest[1:]
    example_mode = mode_of_operand(operand)
    if mode is None:
        mode = example_mode
    elif example_mode and example_mode != mode and not (example_mode == "relative" and mode == "relative"):
        return None
    if mode is None or not rest:
        return None
    code = _OPCODE_CELL.match(rest[0])
    if not code or not rest[0].startswith("$"):
        return None
    opcode = int(code.group(1), 16)
    numbers = rest[1:]
    confirmed = False
    if numbers and re.fullmatch(r"\d{1,3}", numbers[0]) and len(numbers) >= 3:
        if int(numbers[0]) != opcode:
            reject("opcode row whose decimal column disagrees with its hex opcode")
            return None  # the decimal column disagrees: a misread
        confirmed, numbers = True, numbers[1:]
    length = cycles = None
    if numbers:
        if not re.fullmatch(r"[1-3]", numbers[0]) or int(numbers[0]) != 1 + MODES[mode]:
            reject("opcode row whose length does not fit its addressing mode")
            return None
        length = int(numbers[0])
        if len(numbers) > 1:
            c = _CYCLES_CELL.match(numbers[1])
            if not c:
                return None
            cycles = numbers[1]
    return mnemonic, mode, opcode, f"{mnemonic} {operand}".strip() if operand else mnemonic, confirmed, length, cycles


def parse_mnemonic_row(parts: list[str]) -> tuple[str, str, str | None] | None:
    """(mnemonic, operation, flags) of a row 'ADC | Add memory and carry ... | NVZC' or 'ADC  Add with Carry'."""
    parts = [p for p in parts if p]
    if len(parts) < 2 or parts[0] not in MNEMONICS:
        return None
    operation = parts[1]
    if not operation[:1].isupper() or not readable(operation, 120) or re.search(r"[→←↑↓]|\$[0-9A-F]{2}\b(?!\w)", operation):
        return None
    if not re.match(r"^[A-Z][a-z]", operation):
        return None
    flags = parts[2] if len(parts) > 2 and _FLAGS_CELL.match(parts[2]) else None
    return parts[0], operation, flags


def mine_instructions(pages: Iterable[PageText]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    taken: set[tuple[str, int, int]] = set()
    for page in pages:
        if page.method == "none":
            continue
        for line_no, line in enumerate(page.text.split("\n"), start=1):
            parts = cells(line)
            if not parts:
                continue
            base = (page.doc_id, page.page, page.method, line_no, line.strip())
            row = parse_opcode_row(parts)
            if row:
                found.append(Opcode(*base, *row))
                taken.add((page.doc_id, page.page, line_no))
                continue
            mn = parse_mnemonic_row(parts)
            if mn:
                found.append(Mnemonic(*base, *mn))
                taken.add((page.doc_id, page.page, line_no))
    operations = {(m.doc_id, m.mnemonic): m.operation for m in found if isinstance(m, Mnemonic)}
    modes: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for o in found:
        if isinstance(o, Opcode) and (o.mode, o.opcode) not in modes.setdefault((o.doc_id, o.mnemonic), []):
            modes[(o.doc_id, o.mnemonic)].append((o.mode, o.opcode))
    found = [replace(o, operation=operations.get((o.doc_id, o.mnemonic))) if isinstance(o, Opcode)
             else replace(o, modes=tuple(modes.get((o.doc_id, o.mnemonic), ()))) for o in found]
    return found, taken


def _plain(operation: str) -> str:
    """'Load Accumulator' -> 'load accumulator' (a Title Case list entry read as words); acronyms stay."""
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in operation.split())


def _mode_name(mode: str) -> str:
    return _MODE_NAMES[mode]


def _length_step(o: Opcode) -> str:
    operand = MODES[o.mode]
    if operand == 0:
        return f"{_mode_name(o.mode)} mode has no operand, so the instruction is the opcode byte alone"
    kind = "a one-byte operand" if operand == 1 else "a two-byte address, low byte first"
    return f"{_mode_name(o.mode)} mode adds {kind}: 1 + {operand} = {1 + operand} bytes"


def _cycle_step(o: Opcode) -> str | None:
    if not o.cycles:
        return None
    base = int(o.cycles[0])
    if o.cycles.endswith("+"):
        return f"the + after {base} means {base} cycles, or {base + 1} when the indexed address crosses a page boundary"
    if o.cycles.endswith("*"):
        return f"{base} cycles when the branch is not taken, {base + 1} when it is, {base + 2} if it lands on another page"
    return f"it always takes {base} cycles"


def _opcode_turn(o: Opcode, kind: str) -> Turn:
    key = f"{o.doc_id}:{o.page}:{o.line_no}:{kind}"
    mode = _mode_name(o.mode)
    code = f"${o.opcode:02X}"
    place = where(o.doc_id, o.page)
    steps: list[str] = []
    shown = f" (written {o.example})" if o.example and o.example != o.mnemonic else ""
    if kind == "opcode":
        question = pick(key, [
            f"What is the opcode of {o.mnemonic} in {mode.lower()} mode?",
            f"Which byte does an assembler emit for {o.example or o.mnemonic}?",
            f"Give me the machine code for {o.mnemonic} with {mode.lower()} addressing.",
        ])
        steps.append(f"The opcode table on {place} has {o.mnemonic} {mode.lower()}{shown} as {code}.")
        if o.operation:
            steps.append(f"{o.mnemonic} is the instruction to {_plain(o.operation)}, per the mnemonic list of the same document.")
        if o.decimal_confirmed:
            steps.append(f"Check: {code} = {o.opcode >> 4}*16 + {o.opcode & 15} = {o.opcode}, the decimal column of that row.")
        if o.length:
            steps.append(_length_step(o) + ".")
        answer = f"{o.mnemonic} {mode.lower()} is opcode {code}" + (f" ({o.opcode} decimal)" if o.decimal_confirmed else "") + \
            (f", {o.length} bytes long." if o.length else ".")
    elif kind == "decode":
        question = pick(key, [
            f"Which instruction has the opcode {code}?",
            f"I found the byte {code} in a machine code dump. What instruction is it?",
        ])
        steps.append(f"Searching the opcode column of the table on {place} for {code} finds the {o.mnemonic} row, mode {mode.lower()}.")
        if o.operation:
            steps.append(f"In the instruction list, {o.mnemonic}: {_plain(o.operation)}.")
        if o.length:
            steps.append(_length_step(o) + f", so the next {o.length - 1} byte(s) belong to it." if o.length > 1 else _length_step(o) + ".")
        answer = f"{code} is {o.mnemonic} in {mode.lower()} mode" + (f", e.g. {o.example}." if shown else ".")
    elif kind == "cycles":
        question = pick(key, [
            f"How many cycles does {o.mnemonic} {mode.lower()} take?",
            f"What is the cycle count of {o.example or o.mnemonic}?",
            f"How long does {o.mnemonic} with {mode.lower()} addressing run, in clock cycles?",
        ])
        steps.append(f"The row for {o.mnemonic} {mode.lower()} ({code}) on {place} gives {o.cycles} cycles; {_cycle_step(o)}.")
        if o.length:
            steps.append(f"The same row gives {o.length} bytes.")
        if o.operation:
            steps.append(f"(What it does: {_plain(o.operation)}.)")
        answer = f"{o.mnemonic} {mode.lower()} ({code}) takes {o.cycles} cycles."
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    return Turn(question, " ".join(steps), answer)


def _mnemonic_turn(m: Mnemonic, kind: str) -> Turn:
    key = f"{m.doc_id}:{m.page}:{m.line_no}:{kind}"
    place = where(m.doc_id, m.page)
    if kind == "operation":
        question = pick(key, [f"What does the {m.mnemonic} instruction do?", f"What is {m.mnemonic} on the 6510?",
                              f"Explain the mnemonic {m.mnemonic}."])
        steps = [f"The instruction list on {place} gives {m.mnemonic} as: {_plain(m.operation)}."]
        if m.flags:
            steps.append(f"Its flag column reads {m.flags}, the flags it can change.")
        if m.modes:
            listed = ", ".join(f"{_mode_name(mode).lower()} ${code:02X}" for mode, code in m.modes[:4])
            steps.append(f"The opcode table of the same document has it in {len(m.modes)} addressing mode(s): {listed}"
                         + (" and more." if len(m.modes) > 4 else "."))
        answer = f"{m.mnemonic}: {m.operation}."
    elif kind == "flags":
        question = pick(key, [f"Which flags does {m.mnemonic} change?", f"Does {m.mnemonic} affect the status flags?"])
        steps = [f"{m.mnemonic} ({_plain(m.operation)}) has {m.flags} in the flags column on {place}."]
        answer = f"{m.mnemonic} can change: {m.flags}."
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    return Turn(question, " ".join(steps), answer)
