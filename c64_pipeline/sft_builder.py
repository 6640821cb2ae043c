"""Grounded SFT conversations mined from page text.

Every example starts from one concrete row or sentence on a page (an address with a description, often with its
decimal value and register or routine name). The question asks about that fact, the answer is taken from the
page, and the THINK text walks from the question to that evidence: where it sits, what the row says next to it,
and the arithmetic that links them (hex to decimal, the size of a range, the values a bit field allows). Nothing
in the reasoning is a fixed sentence pool filled with slots; the steps present depend on the evidence found.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "[THINK]", "[/THINK]"

_HEX = r"\$([0-9A-Fa-f]{4})"
_RANGE = re.compile(_HEX + r"(?:\s*(?:-|–|to)\s*\$?([0-9A-Fa-f]{4}))?")
_DECIMAL = re.compile(r"(?<![\w$#])(\d{1,5})(?:\s*(?:-|–)\s*(\d{1,5}))?(?![\w])")
_NAME = re.compile(r"\b([A-Z][A-Z0-9]{2,7})\b")
_BITS = re.compile(r"\bbits?\s+(\d)\s*(?:-|–|to)\s*(\d)\b|\bbit\s+(\d)\b", re.IGNORECASE)
_NOT_NAMES = {"CIA1", "CIA2", "VIC", "RAM", "ROM", "PAL", "NTSC", "IRQ", "NMI", "BASIC", "KERNAL", "CIA", "SID", "VIC", "I/O", "USR", "BIT", "AND", "THE", "FOR"}
_CONNECTORS = re.compile(r"^(?:[|:=\-–,;.]|\bat\b|\bis\b|\bin\b|\bholds\b)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
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


def _hex(value: int) -> str:
    return f"${value:04X}"


def _clean_description(text: str) -> str:
    text = re.sub(r"\(\s*\)", " ", text)  # "( )" left where an address in brackets was taken out
    text = re.sub(r"\s+", " ", text).strip(" |:-–,;")
    previous = None
    while previous != text:
        previous, text = text, _CONNECTORS.sub("", text).strip()
    return text.rstrip(".")


_HEX_CELL = re.compile(r"^" + _RANGE.pattern + r"$")
_SIZE_CELL = re.compile(r"^\d+\s*(?:bytes?|KB|K)$", re.IGNORECASE)
_ROUTINE_SENTENCE = re.compile(r"^([A-Z][A-Z0-9]{2,7})\s+(?:at|\(|=)\s*" + _HEX + r"\)?[,:]?\s+(.+)$")
_WORD = re.compile(r"[A-Za-z]{3,}")


def _cells(line: str) -> list[str] | None:
    """Cells of a table row: ' | ' from the layout step, or runs of 2+ spaces in plain-text references."""
    if " | " in line:
        return [c.strip() for c in line.split("|")]
    if re.search(r"\S {2,}\S", line):
        return [c.strip() for c in re.split(r" {2,}", line.strip())]
    return None


def _readable(description: str) -> bool:
    """Reject OCR debris ("466.16 oe ee 7647"): at least two real words, mostly words with a vowel."""
    words = _WORD.findall(description)
    vowels = [w for w in words if re.search(r"[aeiouyAEIOUY]", w)]
    return len(words) >= 2 and len(vowels) >= 0.6 * len(words) and len(description) <= 160


def _from_cells(cells: list[str]) -> tuple[int, int | None, bool, str | None, str] | None:
    hex_cells = [i for i, c in enumerate(cells) if _HEX_CELL.match(c)]
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
    if parsed is None or not _readable(parsed[4]):
        return None
    return parsed


# A line that ends like this has not finished its sentence.
_OPEN_END = re.compile(r"(?:[,;:(]|\b(?:the|a|an|and|or|of|to|in|for|with|by|from|at|on|is|are|when|which|that)|\$[0-9A-Fa-f]{2,4})$",
                       re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _wrapped(line: str, description: str, following: list[str]) -> tuple[str, int]:
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
        if _cells(text) or parse_fact_line(text) or not (text[0].islower() or text[0] == "(" or _OPEN_END.search(current)):
            break
        end = _SENTENCE_END.search(text)
        parts.append(text[: end.start()] if end else text)
        used = k + 1
        if end:
            break
    joined = _clean_description(" ".join([description, *parts]))
    if not parts or not _readable(joined):
        return description, 0
    return joined, used


def mine_facts(pages: Iterable[dict]) -> list[Fact]:
    """Facts from page records ({doc_id, page, text, method}), in page and line order."""
    facts: list[Fact] = []
    for page in pages:
        if page.get("method") == "none":
            continue
        rows = []
        lines = page["text"].split("\n")
        for line_no, line in enumerate(lines, start=1):
            parsed = parse_fact_line(line.strip())
            if parsed:
                description, used = _wrapped(line, parsed[4], lines[line_no : line_no + 4])
                evidence = "\n".join(lines[line_no - 1 : line_no + used]).strip()
                rows.append((line_no, evidence, (*parsed[:4], description)))
        for i, (line_no, line, (address, end, confirmed, name, description)) in enumerate(rows):
            # addresses and names only: whole neighbouring rows would double the reasoning without grounding more
            neighbours = tuple(
                _hex(rows[j][2][0]) + (f" ({rows[j][2][3]})" if rows[j][2][3] else "")
                for j in (i - 1, i + 1) if 0 <= j < len(rows)
            )
            facts.append(
                Fact(page["doc_id"], page["page"], line_no, line, address, end, confirmed, name, description,
                     page.get("method", "text_layer"), neighbours)
            )
    return facts


def _pick(key: str, options: Sequence[str]) -> str:
    """A stable choice among phrasings, so reruns give identical datasets."""
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def _hex_to_decimal_steps(value: int) -> str:
    digits = f"{value:04X}"
    terms = [f"{int(d, 16)}*{16 ** (3 - i)}" for i, d in enumerate(digits) if d != "0"]
    return f"${digits} = " + " + ".join(terms) + f" = {value}"


def _bit_note(description: str) -> str | None:
    match = _BITS.search(description)
    if not match:
        return None
    if match.group(3):
        return f"only bit {match.group(3)} matters there, so the useful values are 0 and {1 << int(match.group(3))}"
    low, high = sorted((int(match.group(1)), int(match.group(2))))
    width = high - low + 1
    return f"bits {low}-{high} are {width} bits wide, which gives {1 << width} possible values (0-{(1 << width) - 1})"


def doc_title(doc_id: str) -> str:
    # a key ends in its suffix, or for a name not in canonical form in a hash of the name (documents.partition_key)
    stem = re.sub(r"(-(pdf|md|markdown|txt|html?))?(-[0-9a-f]{10})?$", "", doc_id)
    return stem.replace("_", " ").replace("-", " ")


@dataclass(frozen=True)
class Turn:
    question: str
    reasoning: str
    answer: str


def _subject(fact: Fact) -> str:
    """The description as a noun phrase inside a sentence ("Border colour" -> "border colour", "BASIC ROM" stays)."""
    first = fact.description.split()[0]
    return fact.description if first.isupper() or not first[1:].islower() else fact.description[0].lower() + fact.description[1:]


def is_routine(fact: Fact) -> bool:
    """A named entry point described by what it does ("CHROUT ... prints the character ...")."""
    first = fact.description.split()[0]
    return bool(fact.name) and first.islower() and first.endswith("s") and fact.end_address is None


def build_turn(fact: Fact, kind: str) -> Turn:
    """One question/answer about `fact`; `kind` is lookup, meaning, decimal or range."""
    key = f"{fact.doc_id}:{fact.page}:{fact.line_no}:{kind}"
    addr, subject = _hex(fact.address), _subject(fact)
    label = f"{fact.name} ({addr})" if fact.name else addr
    where = f"page {fact.page} of the {doc_title(fact.doc_id)} manual"
    steps: list[str] = []

    if kind == "lookup":
        question = _pick(key, [
            f"Which address on the C64 is responsible for the {subject}?",
            f"Where in memory do I find the {subject}?",
            f"What is the address of the {subject} on a Commodore 64?",
        ])
        steps.append(f"Looking for the {subject}; {where} lists it on the row for {label}.")
        if fact.decimal_confirmed:
            steps.append(f"That row also prints {fact.address} in decimal, and {_hex_to_decimal_steps(fact.address)}, so the two columns agree.")
        answer = f"It is at {addr} ({fact.address} decimal)" + (f", the {fact.name} register" if fact.name else "") + f": {fact.description}."
    elif kind == "meaning":
        question = _pick(key, [
            f"What does {addr} do on the C64?",
            f"I see {addr} in a listing. What is stored there?",
            f"What is the purpose of location {addr}" + (f" ({fact.name})?" if fact.name else "?"),
        ])
        steps.append(f"{addr} appears on {where}" + (f" under the name {fact.name}" if fact.name else "") + f", described as {subject}.")
        if fact.neighbours:
            steps.append("Its neighbours in the same list, " + " and ".join(fact.neighbours) + ", confirm which block this belongs to.")
        answer = f"{addr}" + (f" ({fact.name})" if fact.name else "") + f" holds the {subject}."
    elif kind == "decimal":
        question = _pick(key, [
            f"What decimal address would I use with PEEK or POKE for the {subject}?",
            f"In BASIC, which number do I POKE to reach the {subject}?",
        ])
        steps.append(f"BASIC wants decimal, and {where} gives the {subject} at {addr}.")
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
        steps.append(f"The memory map on {where} gives {addr}-{end} as {subject}.")
        steps.append(f"Size: {end} - {addr} + 1 = {size} bytes" + (f", which is {size // 1024} KB." if size % 1024 == 0 and size >= 1024 else "."))
        answer = f"{addr}-{end} is {subject}; it spans {size} bytes."
    elif kind == "routine":
        question = _pick(key, [
            f"Which KERNAL routine {fact.description}, and where do I call it?",
            f"Is there a ROM routine that {fact.description}? What is its address?",
        ])
        steps.append(f"The job is: {fact.description}. On {where} that is {fact.name}, entered at {addr}.")
        steps.append(f"From machine code that is JSR {addr}; from BASIC, SYS needs the decimal form, {_hex_to_decimal_steps(fact.address)}.")
        answer = f"{fact.name} at {addr} {fact.description}: call it with JSR {addr} (SYS {fact.address} from BASIC)."
    elif kind == "routine_meaning":
        question = _pick(key, [
            f"What does the {fact.name} routine at {addr} do?",
            f"My disassembly has JSR {addr}. What does that call?",
        ])
        steps.append(f"{addr} is listed on {where} as the entry of {fact.name}, which {fact.description}.")
        if fact.neighbours:
            steps.append("It sits among " + " and ".join(fact.neighbours) + ", the same group of entry points.")
        answer = f"JSR {addr} calls {fact.name}, which {fact.description}."
    else:
        raise ValueError(f"unknown question kind {kind!r}")

    bit_note = _bit_note(fact.description)
    if bit_note:
        steps.append(bit_note[0].upper() + bit_note[1:] + ".")
    if fact.method == "ocr":
        steps.append("This page was read by OCR" + (", but the matching decimal value makes a misread unlikely." if fact.decimal_confirmed else ", so the address is taken as printed."))
    return Turn(question, " ".join(steps), answer)


def question_kinds(fact: Fact) -> list[str]:
    if is_routine(fact):
        return ["routine", "routine_meaning"]
    if fact.end_address is not None:
        return ["range", "meaning"]
    kinds = ["lookup", "meaning"]
    if fact.decimal_confirmed or fact.address >= 0x0400:
        kinds.append("decimal")
    return kinds


def assistant_content(turn: Turn) -> str:
    return f"{THINK_OPEN}{turn.reasoning}{THINK_CLOSE}{turn.answer}"


def _ref(fact: Fact) -> dict:
    return {"doc_id": fact.doc_id, "page": fact.page, "line": fact.line_no, "evidence": fact.evidence}


def build_conversations(facts: Sequence[Fact], system_prompt: str, multi_turn_every: int = 4) -> list[dict]:
    """Conversations asking every question kind that fits each fact (the same fact asked from several sides, as a
    reader would look it up: by description, by address, in decimal), each (fact, kind) exactly once. Every
    `multi_turn_every`-th fact with a next row on the same page opens a conversation with a follow-up turn about that
    row, whose own conversations then skip the kind the follow-up already asked."""
    conversations: list[dict] = []
    asked_in_follow_up: dict[int, str] = {}
    for i, fact in enumerate(facts):
        nxt = facts[i + 1] if i + 1 < len(facts) else None
        follow_up = (
            bool(multi_turn_every)
            and i % multi_turn_every == 0
            and nxt is not None
            and (nxt.doc_id, nxt.page) == (fact.doc_id, fact.page)
        )
        kinds = [k for k in question_kinds(fact) if k != asked_in_follow_up.get(i)]
        for number, kind in enumerate(kinds):
            turn = build_turn(fact, kind)
            messages = [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": assistant_content(turn)},
            ]
            refs = [_ref(fact)]
            if follow_up and number == 0:
                follow_kind = "routine_meaning" if is_routine(nxt) else "meaning"
                follow = build_turn(nxt, follow_kind)
                reasoning = f"The follow-up points at the next row after {_hex(fact.address)} on the same page. " + follow.reasoning
                messages += [
                    {"role": "user", "content": f"And the entry listed next to it, {_hex(nxt.address)}?"},
                    {"role": "assistant", "content": f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{follow.answer}"},
                ]
                refs.append(_ref(nxt))
                asked_in_follow_up[i + 1] = follow_kind
            conversations.append({"messages": messages, "source_refs": refs, "doc_id": fact.doc_id, "origin": "mined"})
    return conversations
