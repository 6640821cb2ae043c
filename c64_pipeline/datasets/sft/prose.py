"""Prose: definitions and numeric statements ("The VIC-II has 47 registers ...") as closed-book questions, and
sections (a heading and the sentences under it) as "explain X" questions.

Page text keeps the line breaks of the printed column, so sentences are rebuilt from consecutive prose lines (tables,
code and headings excluded) while remembering which lines each sentence spans: every answer is a sentence (or the
first sentences of a section) as printed, cited by the lines it spans.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.ingest.readability import technical_terms, vocabulary
from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, lower_first, mask, pick, plain_words, readable, where
from c64_pipeline.ingest.extraction import PageText

_FUNCTION_END = re.compile(r"\b(?:the|a|an|and|or|of|to|in|for|with|by|from|at|on|is|are|every|its|their|as|that|which|must|can|"
                           r"will|should|may|than|then|into|onto|be)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^(?:#{1,4}\s+|Chapter\s+\d+\.?\s+|\d+(?:\.\d+)+\.?\s+|\d+\.\s+)(?=[A-Z])")
# "2.16. DOS_CMD_COPY_UI_PATH (0x15)": a numbered section named after a command or routine
_IDENTIFIER_TITLE = re.compile(r"[A-Z][A-Z0-9_]{3,}(?:\s*\((?:0x|\$)[0-9A-Fa-f]+\))?")
_TOP = re.compile(r"^(?:#\s+|Chapter\s+\d+\.?\s+)(?=[A-Z])")
_PRONOUN_START = re.compile(r"^(?:It|This|That|These|Those|They|There|Here|Its|Such|Both|Each|Only|Then|So|But|And|Or|If|When|With|For)\b")
_UNIT = re.compile(r"^(?:bytes?|bits?|cycles?|registers?|instructions?|lines?|pages?|characters?|rows?|columns?|times|"
                   r"kilobytes|KB|K|Hz|kHz|MHz|microseconds?|milliseconds?|seconds?|addresses|locations|sprites?|voices?|"
                   r"colou?rs?|pixels?|entries|files|keys|modes|timers?|pins?|words?|digits|steps|nibbles|nybbles|half-bytes|"
                   r"combinations|frames|rasterlines|raster lines)$")
_NUMERIC_VERB = re.compile(r"^(?P<subj>[A-Z$][^,;:]{1,70}?) (?P<verb>has|have|holds|hold|takes|take|contains|contain|uses|use|"
                           r"needs|need|lasts|last|gives|give|occupies|occupy|provides|provide|offers|offer|reports|report|"
                           r"counts|count|generates|generate|runs at|run at|consists of|consist of)\b (?P<rest>.+)$")
_DEFINITION = re.compile(r"^(?P<subj>[A-Z$][^,;:()]{1,50}?) (?P<verb>is|are|means|stands for) (?P<pred>(?:a|an|the|one|two|three|four|"
                         r"called|known as|used|set|cleared|made|an?\w*)\b.+)$")
_CALLED = re.compile(r"\b(?:is|are) (?:called|known as|named) (?!with\b|by\b|from\b|when\b|at\b|every\b|in\b|on\b|once\b|for\b|during\b|after\b|before\b|if\b|as\b)(?:the )?(?P<term>[A-Za-z0-9$'/ -]{2,40}?)(?=[,.;]|$| and | or )")
_BAD_SUBJECT = re.compile(r"\b(?:is|are|was|were|has|have|can|will|must|should|if|when|which|that|this|it|only|also|not|then|"
                          r"therefore|however|thus|so|and|or|similar|same|other|following|previous|above|below|latter|former|"
                          r"first|second|third|fourth|last|next|additional|remaining|new|old|such|these|those|its|their)\b|"
                          r"[$(]|^(?:without|with|in|on|at|by|for|from|after|before|during|since|because|although|while|once|"
                          r"as|until|unless|every|all|most|some|each|any|no)\b|^\w+ing\b", re.IGNORECASE)
_COUNTED = re.compile(r"^(?P<num>\d[\d,]*) (?P<unit>[a-z]{3,}s) (?P<be>are|were) (?P<verb>[a-z]{3,}ed)\b")
_NUMBERED_PART = re.compile(r"\b(?:bits?|pins?|registers?|voices?|sprites?|timers?|ports?|channels?|lines?)\s+#?\d", re.IGNORECASE)
_VAGUE = re.compile(r"^(?:the|a|an)\s+[a-z]+$")


def _code_like(text: str) -> bool:
    """Assembler lines, BASIC lines and other text with no lowercase words: not prose."""
    words = re.findall(r"[A-Za-z]+", text)
    lower = [w for w in words if w.islower() and len(w) > 1]
    return len(lower) < 2 or bool(re.match(r"^\d+\s+[A-Z]", text)) or bool(re.match(r"^[A-Z]{3}\s+[#$(<>]", text))


@dataclass(frozen=True)
class Sentence:
    text: str
    lines: tuple[int, ...]  # 0-based line indices it spans


def _heading(lines: list[str], i: int) -> str | None:
    """The heading on line i, or None: '## Variables', '1.2 Addressing Modes', or a short title line standing
    between the end of one sentence and the start of the next."""
    text = lines[i].strip()
    if not text or cells(text) or len(text) > 70:
        return None
    numbered = _NUMBERED.match(text)
    if numbered:
        title = text[numbered.end():].strip()
        plain = title and not title.endswith((".", ",", ":")) and not re.search(r"[=$|#:;\"]|\b(?=\d*[A-F])[0-9A-F]{4}\b", title) \
            and (re.search(r"[a-z]{3,}", title) or _IDENTIFIER_TITLE.fullmatch(title)) and not _FUNCTION_END.search(title)
        if plain and not text.startswith("#") and re.search(r"\b(?:is|are|has|was|were|must|can|will|should)\b", title):
            plain = False  # "2. This is why screen memory at": a sentence that ended on a number, not a title
        return title if plain and len(title.split()) <= 9 and readable(title + " words", 80) else None
    words = text.split()
    if len(words) > 6 or not text[0].isupper() or text.endswith((".", ",", ";", ":", "-")) or _FUNCTION_END.search(text):
        return None
    if re.search(r"\b(?:is|are|has|was|were)\b|[|=$#:;\"()]", text) or not re.search(r"[a-z]{3,}", text):
        return None
    if re.fullmatch(r"[A-Z]{3}", words[0]) and len(words) > 1:
        return None  # "JSR RDTIM", "ROL Rotate Left": a mnemonic line, not a title
    prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
    nxt = next((lines[k].strip() for k in range(i + 1, len(lines)) if lines[k].strip()), "")
    blank_before = i == 0 or not lines[i - 1].strip()
    if not nxt or not nxt[0].isupper() or _table_like(nxt):
        return None
    return text if (blank_before or prev.endswith((".", "!", "?", ":"))) else None


def top_heading(lines: list[str]) -> str | None:
    """The title of the chapter or document this page belongs to ("# MOS 6526 CIA (timers)", "Chapter 3. ...")."""
    for line in lines:
        m = _TOP.match(line.strip())
        if m and len(line.split()) <= 9 and not line.strip().endswith((".", ",")) and not _FUNCTION_END.search(line.strip()) \
                and re.search(r"[A-Za-z]{3,}", line):
            return line.strip()[m.end():].strip()
    return None


class Heading(str):
    """A heading's text, with the (0-based) line it was read from; `entry` for a memory-map entry row."""

    def __new__(cls, text: str, line: int, entry: bool = False) -> Heading:
        self = super().__new__(cls, text)
        self.line, self.entry = line, entry
        return self


def _table_like(text: str) -> bool:
    """A table row (cells split by ' | ' or by runs of spaces), not a line of prose typed with two spaces after
    each full stop ("the VIC-II chip.  Its default value is 155, which sets")."""
    if not cells(text):
        return False
    if "|" in text:
        return True
    return any(m.group(1) not in ".!?:;" for m in re.finditer(r"(\S) {2,}(?=\S)", text))


def _register_heading(text: str) -> tuple[str, int | None] | None:
    """'$D011  SCROY  Vertical Fine Scrolling and Control Register' as the heading of the prose under it (a memory
    map that explains each entry): ('SCROY ($D011), vertical fine scrolling and control register', None)."""
    from c64_pipeline.datasets.sft.registers import parse_fact_line

    parsed = parse_fact_line(text)
    if not parsed or text[:1].isspace() or "|" in text or not re.match(r"^\$[0-9A-Fa-f]{4}", text):
        return None
    address, end, _, name, description = parsed
    span = f"${address:04X}" + (f"-${end:04X}" if end is not None else "")
    core = re.split(r"[;(]", description)[0].strip().rstrip(":")
    if not core or len(core.split()) > 9 or _FUNCTION_END.search(core) or re.search(r"\b[0-9A-F]{4}\b", core):
        return None
    return (f"{name} ({span}), {plain_words(core)}" if name else f"{span}, {plain_words(core)}"), address


def paragraphs(lines: list[str]) -> list[tuple[str | None, list[Sentence]]]:
    """(heading above it or None, sentences) for each paragraph of prose on a page. A heading holds for every
    paragraph under it, up to the next heading; a memory-map entry ("$D011  SCROY  ...") heads the prose that
    explains it; the value of a "key  long sentence." record is a paragraph of its own."""
    out: list[tuple[str | None, list[Sentence]]] = []
    heading: Heading | None = None
    buffer: list[tuple[int, str]] = []

    cut = False  # the paragraph in the buffer began right after a skipped line that did not end its sentence

    def flush() -> None:
        if buffer:
            sentences = _sentences(buffer)
            out.append((heading, sentences[1:] if cut else sentences))
            buffer.clear()

    for i, raw in enumerate(lines):
        text = raw.strip()
        title = _heading(lines, i)
        if title:
            flush()
            heading, cut = Heading(title, i), False
            continue
        if not text:
            if buffer and buffer[-1][1].endswith((".", "!", "?", ":")):
                flush()
            continue
        entry = _register_heading(raw.rstrip())
        if entry:
            flush()
            heading, cut = Heading(entry[0], i, entry=True), False
            continue
        if heading is not None and heading.entry and re.match(r"^\$[0-9A-Fa-f]{4}\b", raw):
            flush()  # the next entry of the map, one that names no heading: the one above ends here
            heading = None
        parts = cells(text)
        if parts and len(parts) == 2 and "|" not in text and len(parts[1].split()) >= 12 and re.search(r"[.!?]$", parts[1]) \
                and len(parts[0].split()) <= 3:
            flush()  # "description  This is the original implementation ... 151 opcodes are documented."
            buffer.append((i, parts[1]))
            flush()
            continue
        item = re.match(r"^(?:[*\-•]|\d{1,2}[.)])\s+(?=[A-Z])(?!.*:\s*\S{0,20}$)", text)
        label = re.match(r"^\*\*[A-Za-z][\w /-]{0,30}\*\*:?\s+(?=[A-Z])", text)
        if (item or label) and not _table_like(text) and not _code_like(text):
            # "* The SEC register holds two digits ..." and "**Description**: This routine ...": the text after the
            # bullet or label is prose, and starts a paragraph of its own
            flush()
            cut = False
            buffer.append((i, text[(item or label).end():]))
            continue
        if _table_like(text) or _code_like(text) or text.startswith(("```", "|", "-", "*", ">")):
            flush()
            cut = not text.endswith((".", "!", "?", ":", "|", "```"))
            continue
        if not buffer and i and not lines[i - 1].strip():
            cut = False
        if heading is not None and heading.entry and not raw[:1].isspace():
            flush()  # an entry heads the indented text that explains it, not the prose after its table
            heading = None
        buffer.append((i, text))
    flush()
    return out


_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z$(]|\d+ [a-z]|\d{1,2}\.\s+[A-Z])")


def _sentences(buffer: list[tuple[int, str]]) -> list[Sentence]:
    text, owners = "", []  # owners[k]: line index of character k
    for i, line in buffer:
        if text and not (text.endswith("-") and line[:1].islower() or text.endswith("/")):
            text += " "
            owners.append(i)
        elif text.endswith("-") and line[:1].islower() and not re.search(r"[A-Z]-$", text):
            text = text[:-1]  # a word hyphenated at the line end
            owners.pop()
        text += line
        owners.extend([i] * len(line))
    sentences, start = [], 0
    for m in list(_SPLIT.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        chunk = text[start:end].strip()
        if chunk and not re.search(r"\b(?:e\.g|i\.e|etc|approx|no|vs|fig|figs|pp|p|vol|ch|sec|ca)\.$", chunk, re.IGNORECASE):
            lo = start + (len(text[start:end]) - len(text[start:end].lstrip()))
            sentences.append(Sentence(chunk, tuple(sorted(set(owners[lo:end])))))
            start = m.end() if m else end
        elif chunk and m is None:
            sentences.append(Sentence(chunk, tuple(sorted(set(owners[start:end])))))
    # the number of the next step of a numbered list, left at a sentence's end ("Call this routine. 3."), is not its text
    sentences = [Sentence(re.sub(r"(?<=[.!?])\s+\d{1,2}\.$", "", s.text), s.lines) for s in sentences]
    return [s for s in sentences if s.text.endswith((".", "!", "?")) and readable(s.text, 400) and not s.text[0].islower()]


def _evidence(lines: list[str], indices: Iterable[int]) -> tuple[EvidenceLine, ...]:
    idx = sorted(set(indices))
    return (EvidenceLine(idx[0] + 1, "\n".join(lines[idx[0] : idx[-1] + 1]).strip()),)


@dataclass(frozen=True)
class Statement(Mined):
    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]
    sentence: str
    question: str
    detail: str  # what the reasoning points at: the defined term, or "47 registers"
    heading: str | None

    family = "definition"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def kinds(self) -> list[str]:
        return ["statement"]

    def turn(self, kind: str) -> Turn:
        place = where(self.doc_id, self.page)
        quoted = _quote(self.sentence, 16)
        steps = [f"This is stated on {place}, line {self.lines[0].line_no}: {quoted}" + ("" if quoted.endswith("...") else ".")]
        steps.append(f"The part that answers the question is {self.detail}.")
        if self.heading:
            steps.append(f"It sits under {self.heading}, which fits the question.")
        return Turn(self.question, " ".join(steps), self.sentence)


@dataclass(frozen=True)
class Section(Mined):
    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]
    heading: str
    sentences: tuple[str, ...]
    context: str | None = None  # the chapter or document title, for a heading too short to stand alone
    part: int = 0  # 0: the opening of the section; later parts are asked about what they open with
    lead: tuple[str, str] | None = None  # for a later part: ("subject", "the IRQ detector") or ("term", "TOD")

    family = "section"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def kinds(self) -> list[str]:
        return ["explain"]

    def turn(self, kind: str) -> Turn:
        key = f"{self.doc_id}:{self.page}:{self.lines[0].line_no}:{kind}"
        topic = lower_first(self.heading)
        if self.context and len(self.heading.split()) <= 2 and self.context.lower() != self.heading.lower():
            topic = f"{topic} ({self.context})"
        terms = _terms(" ".join(self.sentences))
        place = where(self.doc_id, self.page)
        shape = heading_shape(self.heading)
        named = f'the section "{self.heading.rstrip(".:")}"' + (f" of {self.context}" if self.context and self.context != self.heading else "")
        if self.part == 0 or not self.lead:
            if shape == "question":
                question = self.heading if self.heading.endswith("?") else self.heading + "?"
            elif shape == "how-to":
                question = "How do I " + self.heading.split(None, 2)[2].rstrip(".:") + "?"
            elif shape == "title":
                question = pick(key, [f"What does {named} explain?", f"What is {named} about?", f"Summarize {named}."])
            else:
                question = pick(key, [f"Can you explain {topic}?", f"What should I know about {topic} on the C64?",
                                      f"Explain {topic} briefly.", f"Tell me about {topic}."])
            steps = [f"The section headed {self.heading} on {place} answers this"
                     + (f"; it is part of {self.context}." if self.context and self.context != self.heading else ".")]
            opening = _quote(self.sentences[0], 12)
            steps.append(f"It opens with {opening}" + (f"; then {len(self.sentences) - 1} more sentence(s)." if len(self.sentences) > 1
                                                      else ("" if opening.endswith("...") else ".")))
        else:
            how, lead = self.lead
            if shape != "topic":
                question = pick(key, [f"What does {named} say about {lead}?", f"What do I learn about {lead} from {named}?"])
            elif how == "subject":
                question = pick(key, [f"What does the manual say about {lead}, under {topic}?", f"Tell me about {lead} ({topic}).",
                                      f"Explain {lead}, in the context of {topic}."])
            else:
                question = pick(key, [f"What does the section on {topic} say about {lead}?",
                                      f"In {topic}, what is said about {lead}?"])
            opening = _quote(self.sentences[0], 12)
            steps = [f"Under the heading {self.heading}, {place} comes to {lead} at line {self.lines[0].line_no}:"
                     f" {opening}" + ("" if opening.endswith("...") else ".")]
            if len(self.sentences) > 1:
                follow = _quote(self.sentences[1], 8)
                steps.append(f"It goes on: {follow}" + ("" if follow.endswith("...") else "."))
        if terms:
            steps.append("Key terms to keep: " + ", ".join(terms) + ".")
        return Turn(question, " ".join(steps), " ".join(self.sentences))


_NOT_A_TOPIC = set("in on at for from to with by about into inside under over through via and or but if so as "
                   "why what how when where which who whose whom is are was were can could do does did should will "
                   "would shall may might must let".split())


def heading_shape(heading: str) -> str:
    """How a heading can stand in a question. "topic": a noun phrase ("The envelope generator", "Sprite pointers"), asked
    about directly; "question": a heading that asks ("Why machine language?"), asked as it stands; "how-to": "How to
    read the keyboard", asked as "How do I read the keyboard?"; "title": anything else (a phrase opening with a
    preposition, "In hexadecimal notation", a clause, or a heading with a comma or colon, "Two chips, one design"),
    named as the section it is ('What does the section "In hexadecimal notation" explain?')."""
    words = heading.split()
    first = words[0].lower() if words else ""
    if heading.rstrip().endswith("?"):
        return "question"
    if first == "how" and len(words) > 2 and words[1].lower() == "to":
        return "how-to"
    if first in _NOT_A_TOPIC or any(mark in heading for mark in (",", ":", ";", "!", "(", ")")):
        return "title"
    return "topic"


_LEAD = re.compile(r"^(?:(?P<det>The|A|An) )?(?P<noun>[A-Za-z0-9$/'-]+(?: [A-Za-z0-9$/'-]+){0,4}?) (?:is|are|was|were|has|have|"
                   r"can|cannot|will|must|may|should|does|do|requires?|uses?|holds?|contains?|consists|gives?|takes?|needs?|"
                   r"counts?|runs?|reads?|writes?|starts?|stops?|remains?|becomes?|allows?|controls?|selects?|determines?|"
                   r"occurs?|happens?|works?|stores?|keeps?|sends?|receives?|generates?|produces?|provides?)\b")


_GENERIC_NOUNS = set("command routine function call value result data example method procedure operation entry register "
                     "location byte bit code instruction number text program file following".split())


def _plain_english(term: str) -> bool:
    """An everyday English word written in capitals ("OK", "BYTES"), not a technical name ("IRQ", "TOD")."""
    word = term.lower()
    return word in vocabulary() and word not in technical_terms()


def _lead(sentences: list[Sentence], known: str) -> tuple[str, str] | None:
    """What a later part of a section is about: the subject its first sentence opens with ("The IRQ detector is
    activated by ..." -> "the IRQ detector"), else the first name or number it mentions that the heading does not."""
    first = sentences[0].text
    m = _LEAD.match(first)
    if m and not _PRONOUN_START.match(first) and not _BAD_SUBJECT.search(m.group("noun")) and not _FUNCTION_END.search(m.group("noun")) \
            and not re.search(r"\b(?:the|a|an)\b|\w+ly\b", m.group("noun"), re.IGNORECASE):  # "way the responses", "codec simply"
        noun = m.group("noun")
        if m.group("det") or noun[:1].isupper() and not re.fullmatch(r"[A-Z][a-z]+", noun):
            subject = (m.group("det").lower() + " " if m.group("det") else "") + noun
            generic = _VAGUE.match(subject) and subject.split()[-1].lower() in _GENERIC_NOUNS
            if subject.lower() not in known.lower() and len(subject) > 4 and not generic:
                return "subject", subject  # "the IRQ detector", "the processor", not "the command"
    scope = re.match(r"^(?:In|On|For|With|During|Under) (?:the )?(?P<x>[\w$-]+(?: [\w$-]+){0,3})[,;]", first)
    # a scope that names something ("In 8-voice mode", "In the FPGA world"), not a phrase ("In fact", "For the sake of clarity")
    if scope and re.search(r"[A-Z0-9]", scope.group("x")) and not _BAD_SUBJECT.search(scope.group("x")) \
            and scope.group("x").lower() not in known.lower():
        return "term", scope.group("x")  # "In 8-voice mode; the registers ..." is about 8-voice mode
    named = re.match(r"^The ((?:[A-Z][\w/-]*\s){1,4})[a-z]+s\b", first)  # "The Serial Shift Register interrupts"
    if named and named.group(1).strip().lower() not in known.lower():
        return "subject", "the " + named.group(1).strip()
    for term in _terms(re.sub(r"[“\"][^”\"]*[”\"]", " ", first)):  # not a word of a quoted message ("00,OK")
        if term.lower() not in known.lower() and not term.isdigit() and not term.startswith("$") and len(term) >= 3 \
                and term[-1].isalnum() \
                and not _plain_english(term):  # "SETLFS", "RS-232", not "OK" or "BYTES" in capitals
            return "term", term
    return None


def _quote(text: str, words: int) -> str:
    """The first words of a sentence for the reasoning, ending in '...' when cut, else without its full stop."""
    quoted = lower_first(mask(text, words))
    return quoted[:-4].rstrip(",;:( ") + "..." if quoted.endswith(" ...") else quoted.rstrip(".")


def _terms(text: str) -> list[str]:
    found = []
    for m in re.finditer(r"\$[0-9A-F]{2,4}(?:-\$[0-9A-F]{2,4})?|\b[A-Z][A-Z0-9/-]{1,9}\b|\b\d{2,}\b", text):
        if m.group() not in found and m.group() not in ("BASIC", "THE"):
            found.append(m.group())
    return found[:5]


def _statement(sentence: str, heading: str | None) -> tuple[str, str] | None:
    """(question, detail) for a definition or a numeric statement, or None."""
    s = sentence.rstrip(".")
    if len(s.split()) > 40 or _PRONOUN_START.match(s):
        return None
    num = _NUMERIC_VERB.match(s)
    if num and not _BAD_SUBJECT.search(num.group("subj")) and len(num.group("subj").split()) <= 8 \
            and not re.search(r"\b[a-z]+s\b(?<!ss)", num.group("subj").split(" ", 1)[-1] if " " in num.group("subj") else ""):
        for m in re.finditer(r"(?<![\w$.])(\d[\d,.]*)\s+([A-Za-z-]+(?: lines)?)", num.group("rest")):
            if _UNIT.match(m.group(2)):
                verb = num.group("verb")
                base = {"has": "have", "runs at": "run at", "consists of": "consist of", "occupies": "occupy"}.get(verb)
                if base is None:
                    base = verb[:-2] if re.search(r"(?:ss|sh|ch|x)es$", verb) else (verb[:-1] if verb.endswith("s") else verb)
                subj = lower_first(num.group("subj"))
                if verb in ("runs at", "run at"):
                    question = f"At what {'frequency' if m.group(2).endswith('Hz') else 'rate'} does {subj} run?"
                else:
                    question = f"How many {m.group(2)} does {subj} {base}?" if verb == num.group("verb") and verb.endswith("s") \
                        else f"How many {m.group(2)} do {subj} {base}?"
                return question, f"{m.group(1)} {m.group(2)}"
    counted = _COUNTED.match(s)  # "151 opcodes are documented, the remaining 105 have undocumented behavior"
    if counted and not _UNIT.match(counted.group("unit")) or counted and counted.group("unit") in ("instructions", "registers"):
        return f"How many {counted.group('unit')} {counted.group('be')} {counted.group('verb')}?", \
            f"{counted.group('num')} {counted.group('unit')}"
    called = _CALLED.search(s)
    if called and len(called.group("term").split()) <= 5:
        term = called.group("term").strip()
        return pick(s, [f"What is meant by {term}?", f"What is {term}?"]), f"what is called {term}"
    d = _DEFINITION.match(s)
    if d and not _BAD_SUBJECT.search(d.group("subj")) and 1 <= len(d.group("subj").split()) <= 6 \
            and not _VAGUE.match(lower_first(d.group("subj"))):
        subj = lower_first(d.group("subj"))
        verb = "are" if d.group("verb") == "are" else "is"
        if d.group("verb") == "stands for":
            return f"What does {d.group('subj')} stand for?", f"what {d.group('subj')} stands for"
        if re.match(r"used\b", d.group("pred")):
            return f"What {verb} {subj} used for?", f"what {subj} {verb} used for"
        if re.match(r"(?:set|cleared|made)\b", d.group("pred")):
            return f"When {verb} {subj} {d.group('pred').split()[0]}?", f"when {subj} {verb} {d.group('pred').split()[0]}"
        return f"What {verb} {subj}?", f"the description of {subj}"
    return None


MAX_SECTION_PARTS = 6  # parts of one section taught (its opening and what follows, about 70 words each)


def _chunks(sentences: list[Sentence], limit: int = 70) -> list[list[Sentence]]:
    """Consecutive sentences in groups of at most `limit` words (and 3 sentences), each of 12 words or more."""
    out: list[list[Sentence]] = []
    chosen: list[Sentence] = []
    words = 0
    for s in sentences:
        n = len(s.text.split())
        if chosen and (words + n > limit or len(chosen) == 3):
            out.append(chosen)
            chosen, words = [], 0
        chosen.append(s)
        words += n
    if chosen:
        out.append(chosen)
    return [c for c in out if sum(len(s.text.split()) for s in c) >= 12]


def mine_prose(pages: Iterable[PageText], taken: set[tuple[str, int, int]]) -> list[Mined]:
    found: list[Mined] = []
    pages = [p for p in pages if p.method != "none"]
    parsed = {(p.doc_id, p.page): paragraphs(p.text.split("\n")) for p in pages}
    # A heading printed again and again in one document ("How to Use:", "Example") names no topic of its own.
    headings = Counter((doc, h.lower()) for (doc, _), paras in parsed.items()
                       for k, (h, _) in enumerate(paras) if h and (k == 0 or paras[k - 1][0] is not h))
    seen: set[tuple[str, str]] = set()
    parts: Counter[tuple[str, str]] = Counter()
    context: dict[str, str | None] = {}
    for page in pages:
        top = top_heading(page.text.split("\n"))
        if top or page.doc_id not in context:
            context[page.doc_id] = top or context.get(page.doc_id)
        lines = page.text.split("\n")
        method = page.method
        for heading, sentences in parsed[(page.doc_id, page.page)]:
            if heading and (headings[(page.doc_id, heading.lower())] > 1 or heading.endswith(":")):
                heading = None
            sentences = [s for s in sentences if not any((page.doc_id, page.page, i + 1) in taken for i in s.lines)]
            if not sentences:
                continue
            if heading and readable(heading + " words", 80):
                for chunk in _chunks(sentences):
                    part = parts[(page.doc_id, heading)]
                    if part >= MAX_SECTION_PARTS:
                        break
                    lead = _lead(chunk, f"{heading} {context[page.doc_id] or ''}") if part else None
                    if part and not lead:
                        continue
                    evidence = _evidence(lines, [i for s in chunk for i in s.lines])
                    if getattr(heading, "entry", False):  # the entry row it explains, cited with it
                        evidence += (EvidenceLine(heading.line + 1, lines[heading.line].strip()),)
                    found.append(Section(page.doc_id, page.page, method, evidence, str(heading),
                                         tuple(s.text for s in chunk), context[page.doc_id], part, lead))
                    parts[(page.doc_id, heading)] += 1
                heading_used = heading
            else:
                heading_used = None
            for s in sentences:
                if (page.doc_id, s.text) in seen:
                    continue  # the same sentence repeated in one document is taught once
                seen.add((page.doc_id, s.text))
                made = _statement(s.text, heading_used)
                if made and _NUMBERED_PART.search(made[0]):
                    # "What is bit 0 used for?": bit 0 of what. Asked under the heading that says, else not at all
                    made = (made[0][:-1] + f", in {lower_first(heading_used)}?", made[1]) if heading_used else None
                if made and (page.doc_id, made[0]) in seen:
                    continue  # "When is the Z flag set?" asked once per document, not for every instruction
                if made:
                    seen.add((page.doc_id, made[0]))
                    found.append(Statement(page.doc_id, page.page, method, _evidence(lines, s.lines), s.text,
                                           made[0], made[1], heading_used))
    return found
