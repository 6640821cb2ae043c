"""Numbered procedures: the steps a manual lists for doing something ("How to Use: 1. Call SETLFS. 2. Call SETNAM.
3. Call OPEN.").

A procedure is two or more lines numbered in order (1. 2. 3. or 0) 1) 2)), a step may wrap onto following lines. What
it is for is read from above it: a line that introduces it ("To save a program on tape:"), else the memory-map or
KERNAL entry it belongs to ("$FFE1  STOP  Check if <STOP> key is pressed"), else the nearest heading. The answer is
the steps as printed, cited by their lines (and the entry line that names the topic).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, lower_first, pick, readable, where
from c64_pipeline.datasets.sft.instructions import MNEMONICS
from c64_pipeline.ingest.extraction import PageText

_STEP = re.compile(r"^\s*(?:#+\s*)?(\d{1,2})[.)]\s+(\S.*)$")
_INTRO = re.compile(r"^(?:To|How to|In order to)\s+(?P<task>[a-z][^:.]{3,60}?)\s*(?::|$)", re.IGNORECASE)
_GENERIC = re.compile(r"^(?:how to use|usage|use|procedure|steps|example|examples|note|notes)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Procedure(Mined):
    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]  # the steps (one evidence block), then the line naming the topic when apart
    topic: str  # "the STOP routine ($FFE1)", "save a program on tape", "Loading a program"
    how: str  # "task" (an infinitive), "entry" (a routine or location), "heading"
    steps: tuple[str, ...]  # "1. Call this routine." as printed

    family = "procedure"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def kinds(self) -> list[str]:
        return ["steps"]

    def turn(self, kind: str) -> Turn:
        key = f"{self.doc_id}:{self.page}:{self.lines[0].line_no}:{kind}"
        if self.how == "task":
            question = pick(key, [f"How do I {self.topic}?", f"What are the steps to {self.topic}?"])
        elif self.how == "entry":
            question = pick(key, [f"How do I use {self.topic}, step by step?", f"What is the procedure for calling {self.topic}?"])
        else:
            question = pick(key, [f"What are the steps for {lower_first(self.topic)}?", f"Walk me through {lower_first(self.topic)}."])
        first, last = self.steps[0], self.steps[-1]
        reasoning = [f"On {where(self.doc_id, self.page)}, {self.topic} comes with a numbered list of {len(self.steps)} steps,"
                     f" lines {self.lines[0].line_no}-{self.lines[0].line_no + self.lines[0].text.count(chr(10))}."]
        reasoning.append(f"It starts with {lower_first(_words(first))} and ends with {lower_first(_words(last))}; the order matters,"
                         " so the steps are kept as numbered.")
        names = [n for n in dict.fromkeys(re.findall(r"\b[A-Z]{3,}\d?\b", " ".join(self.steps)))
                 if n not in self.topic and n not in MNEMONICS and n not in ("KERNAL", "RAM", "ROM", "BASIC", "CPU")]
        text = " ".join(self.steps).lower()
        loaded = [r for r, w in (("A", "accumulator"), ("X", " x "), ("Y", " y "), ("the carry", "carry")) if w in f" {text} "]
        if loaded:
            reasoning.append(f"Before the call, {' and '.join(loaded)} {'is' if len(loaded) == 1 else 'are'} set up.")
        if names:
            reasoning.append(f"The steps name {', '.join(names[:4])}, which must be ready or called in that order.")
        return Turn(question, " ".join(reasoning), " ".join(self.steps))


def _words(step: str) -> str:
    text = re.sub(r"^\d{1,2}[.)]\s+", "", step).rstrip(".")
    words = text.split()
    return " ".join(words[:8]) + (" ..." if len(words) > 8 else "")


def _topic(lines: list[str], start: int) -> tuple[str, str, int, int | None] | None:
    """(topic, how, index of the line naming it, index of the routine's entry line when a task names it too)."""
    from c64_pipeline.datasets.sft.prose import _heading, _register_heading

    for k in range(start - 1, max(-1, start - 40), -1):
        text = lines[k].strip()
        if not text:
            continue
        intro = _INTRO.match(text.lstrip("#").strip())
        if intro and k >= start - 3 and (text.endswith(":") or text.isupper()):
            task = intro.group("task").rstrip(" .")
            task = task.lower() if task.isupper() else task  # "TO SET THE TIMEOUT FLAG"
            entry = _topic(lines, k)  # the routine the steps belong to, named with the task
            if entry and entry[1] == "entry":
                return f"{task} with {entry[0]}", "task", k, entry[2]
            return task, "task", k, None
        entry = _register_heading(lines[k].rstrip())
        if entry:
            # steps under a ROM routine's entry are how to call it; under a memory location they are a list of cases
            name = re.match(r"^(\S+) \((\$[0-9A-F]{4})\)", entry[0])
            rom = 0xA000 <= entry[1] <= 0xBFFF or entry[1] >= 0xE000
            if not rom:
                return None
            return (f"the {name.group(1)} routine ({name.group(2)})" if name else f"the routine at {entry[0].split(',')[0]}"), "entry", k, None
        title = text.lstrip("#").strip().rstrip(":") if text.startswith("#") else _heading(lines, k)
        if title and not _GENERIC.match(title) and readable(title + " words", 80):
            return title, "heading", k, None
    return None


def mine_procedures(pages: Iterable[PageText], taken: set[tuple[str, int, int]]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    used: set[tuple[str, int, int]] = set()
    for page in pages:
        lines = page.text.split("\n")
        doc, number = page.doc_id, page.page
        i = 0
        while i < len(lines):
            m = _STEP.match(lines[i])
            if not m or int(m.group(1)) > 1 or (doc, number, i + 1) in taken:
                i += 1
                continue
            steps, k, expected = [], i, int(m.group(1))
            while k < len(lines):
                step = _STEP.match(lines[k])
                if step and int(step.group(1)) == expected and (doc, number, k + 1) not in taken:
                    steps.append([k, lines[k].strip()])
                    expected += 1
                elif steps and lines[k].strip() and not step and (lines[k].strip()[0].islower() or lines[k][:1].isspace()
                                                                  and not steps[-1][1].endswith(".")):
                    steps[-1][1] += " " + lines[k].strip()  # a step that wrapped
                elif not lines[k].strip() and steps and k + 1 < len(lines) and (nxt := _STEP.match(lines[k + 1])) \
                        and int(nxt.group(1)) == expected:
                    pass  # a blank line between two steps
                else:
                    break
                k += 1
            texts = [" ".join(re.sub(r"^#+\s*", "", t).split()) for _, t in steps]
            if len(steps) >= 2 and all(readable(re.sub(r"^\d+[.)]\s+", "", t) + " step", 300) for t in texts):
                topic = _topic(lines, i)
                if topic:
                    end = steps[-1][0] + 1
                    while end < k and lines[end].strip():
                        end += 1
                    evidence = (EvidenceLine(i + 1, "\n".join(lines[i:end]).strip()),)
                    for named in (topic[2], topic[3]):
                        if named is not None and named < i:
                            evidence += (EvidenceLine(named + 1, lines[named].strip()),)
                    found.append(Procedure(doc, number, page.method, evidence, topic[0], topic[1],
                                           tuple(texts)))
                    used.update((doc, number, j + 1) for j in range(i, end))
            i = max(k, i + 1)
    return found, used
