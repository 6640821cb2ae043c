"""Memory-map and register rows: "$D020 | 53280 | EXTCOL | Border colour".

Every example starts from one concrete row (an address with a description, often with its decimal value and a
label). The question asks about that fact from one side (by what it holds, by address, in decimal, as a range), the
answer is taken from the row, and the THINK text walks from the question to that evidence: where it sits, what the
row says next to it, and the arithmetic that links them (hex to decimal, the size of a range, the values a bit field
allows). Rows that name a ROM routine belong to the KERNAL family (`kernal.py`), not here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.ingest.extraction import PageText
from c64_pipeline.datasets.sft.common import (
    EvidenceLine,
    Mined,
    Turn,
    cells as _cells,
    hex4 as _hex,
    hex_to_decimal_steps as _hex_to_decimal_steps,
    lower_first,
    pick as _pick,
    plain_words,
    readable,
    reject,
    repeated_words,
    where as _where,
)

_HEX = r"\$([0-9A-Fa-f]{4})"
_RANGE = re.compile(_HEX + r"(?:\s*(?:-|–|to)\s*\$?([0-9A-Fa-f]{4}))?")
_DECIMAL = re.compile(r"(?<![\w$#])(\d{1,5})(?:\s*(?:-|–)\s*(\d{1,5}))?(?![\w])")
_BITS = re.compile(r"\bbits?\s+(\d)\s*(?:-|–|to)\s*(\d)\b|\bbit\s+(\d)\b", re.IGNORECASE)
_NOT_NAMES = {"CIA1", "CIA2", "VIC", "RAM", "ROM", "PAL", "NTSC", "IRQ", "NMI", "BASIC", "KERNAL", "CIA", "SID", "I/O",
              "USR", "BIT", "AND", "THE", "FOR"}
_CONNECTORS = re.compile(r"^(?:[|:=\-–,;.]|\bat\b|\bis\b|\bin\b|\bholds\b)\s*", re.IGNORECASE)
# Bit-column debris left in front of a description by a table with one column per bit: "33 - - - - Background".
_BIT_COLUMNS = re.compile(r"^(?:\d{1,3}\s+)?(?:[-–x01.]\s+){2,}(?=[A-Za-z])")
_HEX_CELL = re.compile(r"^" + _RANGE.pattern + r"$")
_BARE_RANGE = re.compile(r"^([0-9A-F]{4})\s*-\s*([0-9A-F]{4})$")
_SIZE_CELL = re.compile(r"^\d+\s*(?:bytes?|KB|K)$", re.IGNORECASE)
_ROUTINE_SENTENCE = re.compile(r"^([A-Z][A-Z0-9]{2,7})\s+(?:at|\(|=)\s*" + _HEX + r"\)?[,:]?\s+(.+)$")
# Words that open a noun phrase a question can use as it is ("the border colour", "pointer to the start").
_VERB_START = re.compile(r"^(?:[a-z]+s|[A-Z][a-z]+(?<!ss)s)\s+(?:the|a|an|one|all|to|from|with|if|whether)\b")


@dataclass(frozen=True)
class Fact(Mined):
    doc_id: str
    page: int
    line_no: int
    evidence: str  # the line as it stands on the page (with the lines its description wrapped onto)
    address: int
    end_address: int | None
    decimal_confirmed: bool  # the row also printed the decimal value, and it agrees with the hex
    name: str | None
    description: str
    method: str  # how the page text was obtained: text_layer or ocr
    neighbours: tuple[str, ...] = ()  # the rows just before and after, as "$D020" or "$D020 (EXTCOL)", for context

    family = "register"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),)

    def kinds(self) -> list[str]:
        return question_kinds(self)

    def turn(self, kind: str) -> Turn:
        return build_turn(self, kind)


def _clean_description(text: str) -> str:
    text = re.sub(r"\(\s*\)", " ", text)  # "( )" left where an address in brackets was taken out
    text = re.sub(r"\s+", " ", text).strip(" |:-–,;")
    previous = None
    while previous != text:
        previous, text = text, _CONNECTORS.sub("", text).strip()
        text = _BIT_COLUMNS.sub("", text).strip()
    # ROM addresses a disassembly reference prints after the name: "Determine Output Device F1CA/F27A-F1E4/F28E"
    text = re.sub(r"(?:\s+\$?[0-9A-F]{4}(?:[/-]\$?[0-9A-F]{4})*)+$", "", text)
    return text.rstrip(".")


def is_description(description: str) -> bool:
    """Real words that say something: not OCR debris, not a row of repeated cells ("ram ram ram ram")."""
    return readable(description, 160) and not repeated_words(description)


def _known_names(text: str) -> bool:
    """'CIA 1', 'BASIC ROM', 'Color RAM': a short label made of known words and technical terms (a memory-map
    diagram's box), which `readable` is too strict for (it wants two words of three letters)."""
    from c64_pipeline.ingest.readability import known_word, technical_terms

    words = re.findall(r"[A-Za-z]{2,}", text)
    terms = technical_terms()
    return bool(words) and len(text) <= 40 and all(w.lower() in terms or known_word(w.lower()) for w in words) \
        and any(w.lower() in terms for w in words)  # "Unused", "Unknown." say nothing a question could ask for


def _from_cells(cells: list[str]) -> tuple[int, int | None, bool, str | None, str] | None:
    hex_cells = [i for i, c in enumerate(cells) if _HEX_CELL.match(c)]
    if not hex_cells:
        # a memory-map diagram labels its boxes with bare ranges: "CIA 1 | DC00-DCFF"
        bare = [i for i, c in enumerate(cells) if _BARE_RANGE.match(c)]
        others = [c for i, c in enumerate(cells) if i not in bare and c]
        if len(bare) != 1 or len(others) != 1 or not _known_names(others[0]):
            return None
        m = _BARE_RANGE.match(cells[bare[0]])
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        return (start, end, False, None, others[0]) if end > start else None
    if len(hex_cells) != 1:
        return None
    match = _HEX_CELL.match(cells[hex_cells[0]])
    address = int(match.group(1), 16)
    end = int(match.group(2), 16) if match.group(2) else None
    if end is not None and end <= address:
        return None
    rest, decimal_confirmed, name = [], False, None
    for i, cell in enumerate(cells):
        if i == hex_cells[0] or not cell:
            continue
        dec = _DECIMAL.fullmatch(cell)
        if dec and int(dec.group(1)) == address and (end is None or (dec.group(2) and int(dec.group(2)) == end)):
            decimal_confirmed = True
        elif _SIZE_CELL.match(cell):
            continue
        elif name is None and re.fullmatch(r"[A-Z][A-Z0-9]{2,7}", cell) and cell not in _NOT_NAMES:
            name = cell
        else:
            rest.append(cell)
    description = _clean_description(" ".join(rest))
    if name is None:  # "SHFLAG Shift key state": a name glued to the start of the description cell
        glued = re.match(r"^([A-Z][A-Z0-9]{2,7})\s+(?=[A-Z][a-z])", description)
        if glued and glued.group(1) not in _NOT_NAMES:
            name, description = glued.group(1), description[glued.end():]
    return address, end, decimal_confirmed, name, description


def _count_rejection(line: str) -> None:
    """Count an address row refused for its description ("ram ram ram ram", OCR debris)."""
    cells = _cells(line)
    parsed = _from_cells(cells) if cells else None
    if parsed and parsed[4]:
        reject("address row whose cells repeat (not a description)" if repeated_words(parsed[4])
               else "address row whose description is debris")


def parse_fact_line(line: str) -> tuple[int, int | None, bool, str | None, str] | None:
    """(address, end address, decimal agrees, name, description) for a line that states one address fact: a table
    row with exactly one address cell, or a sentence "NAME at $XXXX does something". Wrapped prose is skipped: its
    line breaks cut sentences at random."""
    line = line.strip()
    cells = _cells(line)
    if cells:
        parsed = _from_cells(cells)
    else:
        sentence = _ROUTINE_SENTENCE.match(line)
        if not sentence or len(_RANGE.findall(line)) != 1:
            return None
        parsed = (int(sentence.group(2), 16), None, False, sentence.group(1), _clean_description(sentence.group(3)))
    if parsed is None or not (is_description(parsed[4]) or cells and _known_names(parsed[4]) and not repeated_words(parsed[4])):
        return None
    return parsed


# A line that ends like this has not finished its sentence.
_OPEN_END = re.compile(r"(?:[,;:(]|\b(?:the|a|an|and|or|of|to|in|for|with|by|from|at|on|is|are|when|which|that)|\$[0-9A-Fa-f]{2,4})$",
                       re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def wrapped(line: str, description: str, following: list[str]) -> tuple[str, int]:
    """`description` completed with the lines its cell or sentence wrapped onto ("Sprite vertical expansion, bit n
    doubles the height" + "of sprite n"), and how many of `following` lines (a blank one included) that took. A
    continuation starts in lower case or follows an unfinished line; it is never another fact, table row or heading."""
    if line.rstrip().endswith((".", "!", "?")):
        return description, 0
    parts: list[str] = []
    used = 0
    for k, raw in enumerate(following[:4]):
        text = raw.strip()
        if not text:
            if parts or k > 0:
                break
            continue
        current = " ".join([description, *parts])
        unclosed = current.count("(") > current.count(")")  # "Data Port A (Serial Bus, RS-232, VIC" goes on
        if _cells(text) or parse_fact_line(text) or not (text[0].islower() or text[0] == "(" or unclosed or _OPEN_END.search(current)):
            break
        end = _SENTENCE_END.search(text)
        parts.append(text[: end.start()] if end else text)
        used = k + 1
        if end:
            break
    joined = _clean_description(" ".join([description, *parts]))
    if not parts or not is_description(joined):
        return description, 0
    return joined, used


_NOT_ROUTINE = re.compile(r"\b(?:table|vector|pointer|constants?|messages?|text|data|area|buffer|storage|flag)\b", re.IGNORECASE)


def names_routine(address: int, end: int | None, name: str | None, description: str) -> bool:
    """A named single entry point in ROM (BASIC $A000-$BFFF, KERNAL $E000-$FFFF) that is not a table or a vector."""
    if not name or end is not None:
        return False
    in_rom = 0xA000 <= address <= 0xBFFF or 0xE000 <= address <= 0xFFF9
    return in_rom and not _NOT_ROUTINE.search(" ".join(description.split()[:3]))


def mine_facts(pages: Iterable[PageText], skip: set[tuple[str, int, int]] | None = None) -> list[Fact]:
    """Memory/register facts from page records ({doc_id, page, text, method}), in page and line order. Rows that
    name a ROM routine, and lines in `skip` ((doc_id, page, line) another family already took), are left out."""
    facts: list[Fact] = []
    skip = skip or set()
    for page in pages:
        if page.method == "none":
            continue
        rows = []
        lines = page.text.split("\n")
        for line_no, line in enumerate(lines, start=1):
            if (page.doc_id, page.page, line_no) in skip:
                continue
            parsed = parse_fact_line(line.strip())
            if parsed is None:
                _count_rejection(line.strip())
            if parsed and not names_routine(*parsed[:2], parsed[3], parsed[4]):
                description, used = wrapped(line, parsed[4], lines[line_no : line_no + 4])
                evidence = "\n".join(lines[line_no - 1 : line_no + used]).strip()
                rows.append((line_no, evidence, (*parsed[:4], description)))
        for i, (line_no, line, (address, end, confirmed, name, description)) in enumerate(rows):
            # addresses and names only: whole neighbouring rows would double the reasoning without grounding more
            neighbours = tuple(
                _hex(rows[j][2][0]) + (f" ({rows[j][2][3]})" if rows[j][2][3] else "")
                for j in (i - 1, i + 1) if 0 <= j < len(rows)
            )
            facts.append(
                Fact(page.doc_id, page.page, line_no, line, address, end, confirmed, name, description,
                     page.method, neighbours)
            )
    return facts


def _bit_note(description: str) -> str | None:
    match = _BITS.search(description)
    if not match:
        return None
    if match.group(3):
        return f"only bit {match.group(3)} matters there, so the useful values are 0 and {1 << int(match.group(3))}"
    low, high = sorted((int(match.group(1)), int(match.group(2))))
    width = high - low + 1
    return f"bits {low}-{high} are {width} bits wide, which gives {1 << width} possible values (0-{(1 << width) - 1})"


def _subject(fact: Fact) -> str:
    """The description as a noun phrase inside a sentence ("Border colour" -> "border colour", "BASIC ROM" stays)."""
    core = re.split(r",\s*(?=normally|default|same|for example|e\.g\.|usually|[0-9$])|;\s", fact.description)[0].strip()
    if core.count("(") > core.count(")"):
        core = core[: core.rindex("(")].strip()
    return lower_first(core or fact.description)


def is_noun_phrase(description: str) -> bool:
    """'Border colour', 'Pointer to the start of BASIC' read as noun phrases; 'close a specified logical file',
    'Reads the clock', '`POKE 646,1` sets the colour' and sentences with a verb after a colon do not."""
    if not description or not description[0].isalpha():
        return False
    if _VERB_START.match(description) or re.match(r"^[a-z]", description):
        return False
    if re.search(r"[:;]\s", description) or re.search(r"\b(?:is|are|was|were|sets|makes|gives|reads)\b", description):
        return False
    return len(description.split()) <= 12


def kind_of_location(fact: Fact) -> str:
    """'register' for a chip or processor-port register (I/O area, $00-$01, or a row that calls itself "... Register"),
    'area' for a range of addresses, 'location' for any other memory cell ("Y register value loaded before SYS" is a
    location)."""
    if fact.end_address is not None:
        return "area"
    if 0xD000 <= fact.address <= 0xD7FF or 0xDC00 <= fact.address <= 0xDDFF or fact.address <= 0x0001 or re.search(r"\bregister(?:\s+[A-D0-9])?$", fact.description, re.IGNORECASE):
        return "register"
    return "location"


def is_routine(fact: Fact) -> bool:
    """Kept for callers of the old module: register facts are never routines now (they go to kernal.py)."""
    return False


def build_turn(fact: Fact, kind: str) -> Turn:
    """One question/answer about `fact`; `kind` is lookup, meaning, decimal or range."""
    key = f"{fact.doc_id}:{fact.page}:{fact.line_no}:{kind}"
    addr, subject = _hex(fact.address), _subject(fact)
    said = plain_words(subject)  # the description as words in the reasoning
    noun = kind_of_location(fact)
    label = f"{fact.name} ({addr})" if fact.name else addr
    where = _where(fact.doc_id, fact.page)
    steps: list[str] = []

    if kind == "lookup":
        question = _pick(key, [
            f"Which address on the C64 is responsible for the {subject}?",
            f"Where in memory do I find the {subject}?",
            f"What is the address of the {subject} on a Commodore 64?",
        ])
        steps.append(f"Looking for the {said}; {where} lists it on the row for {label}.")
        if fact.decimal_confirmed:
            steps.append(f"That row also prints {fact.address} in decimal, and {_hex_to_decimal_steps(fact.address)}, so the two columns agree.")
        else:
            steps.append(f"In decimal that is {_hex_to_decimal_steps(fact.address)}.")
        answer = f"It is at {addr} ({fact.address} decimal)" + (f", the {fact.name} {noun}" if fact.name else "") + f": {fact.description}."
    elif kind == "meaning":
        if fact.end_address is not None:  # a range is named by both ends: "$0314-$0315", not its first byte alone
            addr = f"{addr}-{_hex(fact.end_address)}"
        question = _pick(key, [
            f"What does {addr} do on the C64?",
            f"I see {addr} in a listing. What is stored there?",
            f"What is the purpose of {noun} {addr}" + (f" ({fact.name})?" if fact.name else "?"),
        ])
        steps.append(f"{addr} appears on {where}" + (f" under the name {fact.name}" if fact.name else "") + f", described as {said}.")
        if fact.neighbours:
            steps.append("Its neighbours in the same list, " + " and ".join(fact.neighbours) + ", confirm which block this belongs to.")
        own = re.search(rf"\b{noun}s?$", subject, re.IGNORECASE)  # "Border Color Register" names its own kind
        answer = f"{addr}" + (f" ({fact.name})" if fact.name else "") + (f" is the {subject}." if own else f" is the {noun} for the {subject}.") \
            if is_noun_phrase(fact.description) \
            else f"{addr}" + (f" ({fact.name})" if fact.name else "") + f": {fact.description}."
    elif kind == "decimal":
        question = _pick(key, [
            f"What decimal address would I use with PEEK or POKE for the {subject}?",
            f"In BASIC, which number do I POKE to reach the {subject}?",
        ])
        steps.append(f"BASIC wants decimal, and {where} gives the {said} at {addr}.")
        steps.append(_hex_to_decimal_steps(fact.address) + ".")
        if fact.decimal_confirmed:
            steps.append("The decimal column on the same row shows the same number.")
        answer = f"Use {fact.address} (that is {addr}), for example PEEK({fact.address}) to read it."
    elif kind == "range":
        assert fact.end_address is not None
        end = _hex(fact.end_address)
        size = fact.end_address - fact.address + 1
        question = _pick(key, [
            f"What occupies {addr}-{end} in the C64 memory map, and how big is it?",
            f"How large is the area from {addr} to {end}, and what is it used for?",
        ])
        steps.append(f"The memory map on {where} gives {addr}-{end} as {said}.")
        steps.append(f"Size: {end} - {addr} + 1 = {size} bytes" + (f", which is {size // 1024} KB." if size % 1024 == 0 and size >= 1024 else "."))
        answer = f"{addr}-{end}" + (f" ({fact.name})" if fact.name else "") + f" is {subject}; it spans {size} bytes."
    else:
        raise ValueError(f"unknown question kind {kind!r}")

    bit_note = _bit_note(fact.description)
    if bit_note:
        steps.append(bit_note[0].upper() + bit_note[1:] + ".")
    if fact.method == "ocr":
        steps.append("This page was read by OCR" + (", but the matching decimal value makes a misread unlikely." if fact.decimal_confirmed else ", so the address is taken as printed."))
    return Turn(question, " ".join(steps), answer)


def question_kinds(fact: Fact) -> list[str]:
    """Questions phrased from the description need a noun phrase; other rows are asked about by address only."""
    noun = is_noun_phrase(fact.description)
    if fact.end_address is not None:
        return ["range", "meaning"] if noun else ["meaning"]
    kinds = (["lookup"] if noun else []) + ["meaning"]
    in_rom = 0xA000 <= fact.address <= 0xBFFF or fact.address >= 0xE000
    if noun and not in_rom and (fact.decimal_confirmed or fact.address >= 0x0400):
        kinds.append("decimal")
    return kinds
