"""The user's own exam: question/answer pairs in `data/raw/eval/*.jsonl` (C64_EVAL_DIR), asked closed-book of each
stage of the model and scored by the key facts found in its final answer.

One JSON object a line:

    {"question": "Where is CHROUT?", "answer": "CHROUT is at $FFD2 (65490).", "key_facts": ["$FFD2"], "source": "..."}

`key_facts` is optional: without it the facts are the answer's `$`-hex addresses, numbers and ALL-CAPS names (all of
them must then be found, so listing the few that matter is fairer). A bad line is rejected with its file, line and
reason, and the other lines are still used (as with the curated SFT input).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_HEX = re.compile(r"(?<![\w$])\$[0-9A-Fa-f]+\b")
_NUMBER = re.compile(r"(?<![\w$#%.])\d+(?:\.\d+)?(?![\w])")
_CAPS = re.compile(r"(?<![\w$])[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*(?![\w-])")

FIELDS = ("question", "answer", "key_facts", "source")


def key_facts(answer: str) -> set[str]:
    """`$`-hex addresses, numbers and ALL-CAPS names (2+ characters) of a reference answer."""
    facts = {m.group().upper() for m in _HEX.finditer(answer)}
    facts |= set(_NUMBER.findall(answer))
    facts |= {m.group() for m in _CAPS.finditer(answer) if len(m.group()) > 1}
    return facts


def facts_found(facts: set[str], answer: str) -> set[str]:
    """The facts (as `key_facts` derives them) that `answer` states: whole hex addresses (any case), numbers and
    ALL-CAPS names, never parts of longer ones ($D0200 does not state $D020)."""
    present = {m.group().upper() for m in _HEX.finditer(answer)} | set(_NUMBER.findall(answer))
    present |= {m.group() for m in _CAPS.finditer(answer)}
    return facts & present


def fact_stated(fact: str, text: str) -> bool:
    """Whether `text` states a key fact written by a user: a hex address or a number as a whole token, anything else
    as whole words, case-insensitively (`CHROUT`, `low byte first`)."""
    if _HEX.fullmatch(fact) or _NUMBER.fullmatch(fact):
        return bool(facts_found({fact.upper()}, text))
    return re.search(rf"(?<![\w$]){re.escape(fact.strip())}(?![\w])", text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class ExamQuestion:
    question: str
    answer: str
    key_facts: tuple[str, ...]
    facts_derived: bool  # True when key_facts came from the answer (the line gave none)
    source: str | None
    file: str
    line: int


@dataclass(frozen=True)
class ExamRejection:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "reason": self.reason}


def check_exam_row(row: object) -> tuple[tuple[str, ...], bool] | str:
    """(key facts, derived?) of a valid exam line, or why it is unusable."""
    if not isinstance(row, dict):
        return "not a JSON object"
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        return f"unknown field(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(FIELDS)})"
    for field in ("question", "answer"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            return f"'{field}' must be a non-empty string"
    if row.get("source") is not None and not isinstance(row["source"], str):
        return "'source' must be a string"
    if "key_facts" not in row or row["key_facts"] is None:
        derived = tuple(sorted(key_facts(row["answer"])))
        if not derived:
            return ("no key facts: the answer has no $-hex address, number or ALL-CAPS name to check; list the "
                    "facts a correct answer must state in 'key_facts'")
        return derived, True
    facts = row["key_facts"]
    if not isinstance(facts, list) or not facts or not all(isinstance(f, str) and f.strip() for f in facts):
        return "'key_facts' must be a non-empty list of non-empty strings"
    missing = [f for f in facts if not fact_stated(f, row["answer"])]
    if missing:
        return f"key fact(s) {', '.join(map(repr, missing))} not stated in the answer"
    return tuple(f.strip() for f in facts), False


def load_exam(folder: Path) -> tuple[list[ExamQuestion], list[ExamRejection]]:
    """Every valid question of `folder/*.jsonl` (sorted by file, then line), and the rejected lines with reasons. A
    missing folder is an empty exam."""
    folder = Path(folder)
    questions: list[ExamQuestion] = []
    rejections: list[ExamRejection] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            rejections.append(ExamRejection(path.name, 0, f"unreadable file ({exc})"))
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                rejections.append(ExamRejection(path.name, number, f"invalid JSON ({exc.msg})"))
                continue
            checked = check_exam_row(row)
            if isinstance(checked, str):
                rejections.append(ExamRejection(path.name, number, checked))
                continue
            key = " ".join(row["question"].split()).lower()
            if key in seen:
                rejections.append(ExamRejection(path.name, number, f"the same question as {seen[key]}"))
                continue
            seen[key] = f"{path.name}:{number}"
            facts, derived = checked
            questions.append(ExamQuestion(row["question"].strip(), row["answer"].strip(), facts, derived,
                                          row.get("source"), path.name, number))
    return questions, rejections
