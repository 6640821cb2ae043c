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

from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, lower_first, mask, pick, readable, where

_FUNCTION_END = re.compile(r"\b(?:the|a|an|and|or|of|to|in|for|with|by|from|at|on|is|are|every|its|their|as|that|which|must|can|"
                           r"will|should|may|than|then|into|onto|be)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^(?:#{1,4}\s+|Chapter\s+\d+\.?\s+|\d+(?:\.\d+)+\.?\s+|\d+\.\s+)(?=[A-Z])")
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
                          r"therefore|however|thus|so|and|or|similar|same|other|following|previous|above|below|latter|former)\b|"
                          r"[$(]|^(?:without|with|in|on|at|by|for|from|after|before|during|since|because|although|while|once|"
                          r"as|until|unless|every|all|most|some|each|any|no)\b|^\w+ing\b", re.IGNORECASE)
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
        plain = title and not title.endswith((".", ",", ":")) and not re.search(r"[=$|#:;\"]|\b[0-9A-F]{4}\b", title) \
            and re.search(r"[a-z]{3,}", title) and not _FUNCTION_END.search(title)
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
    if not nxt or not nxt[0].isupper() or cells(nxt):
        return None
    return text if (blank_before or prev.endswith((".", "!", "?", ":"))) else None


def top_heading(lines: list[str]) -> str | None:
    """The title of the chapter or document this page belongs to ("# MOS 6526 CIA (timers)", "Chapter 3. ...")."""
    for line in lines:
        m = _TOP.match(line.strip())
        if m and len(line.split()) <= 9 and not line.strip().endswith((".", ",")) and not _FUNCTION_END.search(line.strip()):
            return line.strip()[m.end():].strip()
    return None


def paragraphs(lines: list[str]) -> list[tuple[str | None, list[Sentence]]]:
    """(heading above it or None, sentences) for each paragraph of prose on a page."""
    out: list[tuple[str | None, list[Sentence]]] = []
    heading: str | None = None
    buffer: list[tuple[int, str]] = []

    def flush() -> None:
        nonlocal heading
        if buffer:
            out.append((heading, _sentences(buffer)))
            buffer.clear()
            heading = None  # a heading belongs to the paragraph right under it

    for i, raw in enumerate(lines):
        text = raw.strip()
        title = _heading(lines, i)
        if title:
            flush()
            heading = title
            continue
        if not text:
            if buffer and buffer[-1][1].endswith((".", "!", "?", ":")):
                flush()
            continue
        if cells(text) or _code_like(text) or text.startswith(("```", "|", "-", "*", ">")):
            flush()
            continue
        buffer.append((i, text))
    flush()
    return out


_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z$(])")


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
        if chunk and not re.search(r"\b(?:e\.g|i\.e|etc|approx|no|vs)\.$", chunk, re.IGNORECASE):
            lo = start + (len(text[start:end]) - len(text[start:end].lstrip()))
            sentences.append(Sentence(chunk, tuple(sorted(set(owners[lo:end])))))
            start = m.end() if m else end
        elif chunk and m is None:
            sentences.append(Sentence(chunk, tuple(sorted(set(owners[start:end])))))
    return [s for s in sentences if s.text.endswith((".", "!", "?")) and readable(s.text, 400)]


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
        steps = [f"This is stated on {place}, line {self.lines[0].line_no}: {lower_first(mask(self.sentence, 16))}"]
        steps[0] = steps[0].rstrip(".") + "."
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
        question = pick(key, [f"Can you explain {topic}?", f"What should I know about {topic} on the C64?",
                              f"Explain {topic} briefly.", f"Tell me about {topic}."])
        terms = _terms(" ".join(self.sentences))
        steps = [f"The section headed {self.heading} on {where(self.doc_id, self.page)} answers this"
                 + (f"; it is part of {self.context}." if self.context and self.context != self.heading else ".")]
        steps.append(f"It opens with {lower_first(mask(self.sentences[0], 12)).rstrip('.')}" +
                     (f", then adds {len(self.sentences) - 1} more sentence(s)" if len(self.sentences) > 1 else "") + ".")
        if terms:
            steps.append("Key terms to keep: " + ", ".join(terms) + ".")
        return Turn(question, " ".join(steps), " ".join(self.sentences))


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


def mine_prose(pages: Iterable[dict], taken: set[tuple[str, int, int]]) -> list[Mined]:
    found: list[Mined] = []
    pages = [p for p in pages if p.get("method") != "none"]
    parsed = {(p["doc_id"], p["page"]): paragraphs(p["text"].split("\n")) for p in pages}
    # A heading printed again and again in one document ("How to Use:", "Example") names no topic of its own.
    headings = Counter((doc, h.lower()) for (doc, _), paras in parsed.items() for h, _ in paras if h)
    seen: set[tuple[str, str]] = set()
    context: dict[str, str | None] = {}
    for page in pages:
        top = top_heading(page["text"].split("\n"))
        if top or page["doc_id"] not in context:
            context[page["doc_id"]] = top or context.get(page["doc_id"])
        lines = page["text"].split("\n")
        method = page.get("method", "text_layer")
        for heading, sentences in parsed[(page["doc_id"], page["page"])]:
            if heading and (headings[(page["doc_id"], heading.lower())] > 1 or heading.endswith(":")):
                heading = None
            sentences = [s for s in sentences if not any((page["doc_id"], page["page"], i + 1) in taken for i in s.lines)]
            if not sentences:
                continue
            if heading and readable(heading + " words", 80):
                chosen, words = [], 0
                for s in sentences[:3]:
                    if words + len(s.text.split()) > 70 and chosen:
                        break
                    chosen.append(s)
                    words += len(s.text.split())
                if words >= 12:
                    found.append(Section(page["doc_id"], page["page"], method,
                                         _evidence(lines, [i for s in chosen for i in s.lines]), heading,
                                         tuple(s.text for s in chosen), context[page["doc_id"]]))
                heading_used = heading
            else:
                heading_used = None
            for s in sentences:
                if (page["doc_id"], s.text) in seen:
                    continue  # the same sentence repeated in one document is taught once
                seen.add((page["doc_id"], s.text))
                made = _statement(s.text, heading_used)
                if made and (page["doc_id"], made[0]) in seen:
                    continue  # "When is the Z flag set?" asked once per document, not for every instruction
                if made:
                    seen.add((page["doc_id"], made[0]))
                    found.append(Statement(page["doc_id"], page["page"], method, _evidence(lines, s.lines), s.text,
                                           made[0], made[1], heading_used))
    return found
