"""Labelled properties of an entry: "Default: $37, %00110111." under a memory-map entry, "Command format: $01 $15"
under a numbered command section, "Stack requirements: 8" under a KERNAL routine.

The entry is the memory-map or routine row, or the heading, the labelled line stands under (within the same entry:
the next entry row ends the search). The answer is the labelled line's value as printed, with the entry it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, hex_to_decimal_steps, pick, where
from c64_pipeline.ingest.extraction import PageText

_LABEL = re.compile(r"^\s*(?:[*\-•]\s*)?(?P<label>Default(?: value)?|Initial value|Power-up value|Reset value|Command format|"
                    r"Format|Syntax|Stack requirements?|Range)\s*:\s*(?P<value>\S.{0,70})$", re.IGNORECASE)
_NOUN = {"default": "default value", "format": "format", "syntax": "syntax", "range": "range of values",
         "stack requirement": "stack requirement", "stack requirements": "stack requirements"}


@dataclass(frozen=True)
class Property(Mined):
    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]  # the labelled line, then the entry or heading line
    entry: str  # "R6510 ($0001), processor port", "DOS_CMD_COPY_UI_PATH (0x15)"
    label: str  # as printed: "Default", "Command format"
    value: str

    family = "entry_property"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def kinds(self) -> list[str]:
        return ["property"]

    def turn(self, kind: str) -> Turn:
        key = f"{self.doc_id}:{self.page}:{self.lines[0].line_no}:{kind}"
        noun = _NOUN.get(self.label.lower(), self.label.lower())
        name = self.entry.split(",")[0]
        verb = "are" if noun.endswith("s") else "is"
        question = pick(key, [f"What {verb} the {noun} of {name}?", f"What {noun} does {name} have?"]) \
            if noun != "syntax" else pick(key, [f"What is the syntax of {name}?", f"How is {name} written?"])
        steps = [f"The entry for {self.entry} on {where(self.doc_id, self.page)} has a line labelled {self.label}"
                 f" (line {self.lines[0].line_no}), which gives {self.value.rstrip('.')}."]
        binary = re.search(r"%([01]{8})\b", self.value)
        hexa = re.search(r"\$([0-9A-Fa-f]{2})\b", self.value)
        if binary and hexa and int(binary.group(1), 2) == int(hexa.group(1), 16):
            steps.append(f"The two forms agree: %{binary.group(1)} = ${hexa.group(1).upper()} = {int(hexa.group(1), 16)}.")
        fixed = re.findall(r"\$[0-9A-Fa-f]{2}\b|\b0x[0-9A-Fa-f]{2}\b", self.value)
        args = re.findall(r"[<\[]([^>\]]+)[>\]]", self.value)
        named = re.fullmatch(r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\s*\((?:0x|\$)([0-9A-Fa-f]+)\)", name)
        if named:  # "DOS_CMD_CLOSE_FILE (0x03)": the words of the name and the code it carries
            words = [w.lower() for w in named.group(1).split("_")[-3:] if len(w) > 2 and w not in ("CMD", "DOS")]
            code = int(named.group(2), 16)
            carried = f"${code:02X}" in [f.upper().replace("0X", "$") for f in fixed]
            steps.append(f"The name reads {' '.join(words) or named.group(1).lower()}; its code {named.group(2)}"
                         + (" is among those bytes." if carried else " is given in the heading."))
        if "format" in self.label.lower() and fixed:
            steps.append(f"That is {len(fixed)} fixed byte{'s' if len(fixed) > 1 else ''}"
                         + (f", then {', '.join(args)}." if args else " and no arguments."))
        word = re.search(r"\$([0-9A-Fa-f]{4})\b\D+(\d{1,5})\b", self.value)
        if word and int(word.group(1), 16) == int(word.group(2)):
            steps.append(f"The decimal beside it checks out: {hex_to_decimal_steps(int(word.group(1), 16))}.")
        answer = f"{self.label} of {name}: {self.value.rstrip('.')}."
        return Turn(question, " ".join(steps), answer)


def mine_properties(pages: Iterable[PageText], taken: set[tuple[str, int, int]]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    from c64_pipeline.datasets.sft.prose import _IDENTIFIER_TITLE, _NUMBERED, _register_heading

    found: list[Mined] = []
    used: set[tuple[str, int, int]] = set()
    for page in pages:
        lines = page.text.split("\n")
        doc, number = page.doc_id, page.page
        for i, line in enumerate(lines):
            m = _LABEL.match(line)
            if not m or (doc, number, i + 1) in taken or m.group("value").strip().lower().rstrip(".") in ("none", "n/a", "-"):
                continue
            entry = None
            for k in range(i - 1, max(-1, i - 30), -1):
                heading = _register_heading(lines[k].rstrip())
                numbered = _NUMBERED.match(lines[k].strip())
                title = lines[k].strip()[numbered.end():].strip() if numbered else ""
                if heading:
                    entry = (heading[0], k)
                elif title and _IDENTIFIER_TITLE.fullmatch(title):
                    entry = (title, k)
                elif re.match(r"^\$[0-9A-Fa-f]{4}\b", lines[k]):
                    break  # another entry, one that names no heading
                if entry:
                    break
            if not entry:
                continue
            evidence = (EvidenceLine(i + 1, line.strip()), EvidenceLine(entry[1] + 1, lines[entry[1]].strip()))
            found.append(Property(doc, number, page.method, evidence, entry[0],
                                  m.group("label"), m.group("value").strip()))
            used.add((doc, number, i + 1))
    return found, used
