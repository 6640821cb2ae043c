"""BASIC keywords (token, what it does, an example) and BASIC error messages (message, usual cause).

Layouts read: "| POKE | $97 | 151 | Write a byte to memory: `POKE 53280,0` |" (keyword, token in hex and decimal,
purpose with an example in backticks or after a colon), "| ?OUT OF DATA | READ has used up all DATA items |".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, is_rule_row, lower_first, pick, readable, where
from c64_pipeline.ingest.extraction import PageText

KEYWORDS = set(
    "END FOR NEXT DATA INPUT# INPUT DIM READ LET GOTO RUN IF RESTORE GOSUB RETURN REM STOP ON WAIT LOAD SAVE VERIFY "
    "DEF POKE PRINT# PRINT CONT LIST CLR CMD SYS OPEN CLOSE GET GET# NEW TAB( TO FN SPC( THEN NOT STEP AND OR SGN INT "
    "ABS USR FRE POS SQR RND LOG EXP COS SIN TAN ATN PEEK LEN STR$ VAL ASC CHR$ LEFT$ RIGHT$ MID$ GO".split()
)
_TOKEN = re.compile(r"^\$([89A-F][0-9A-F])$")
_EXAMPLE = re.compile(r"`([^`]+)`")
_ERROR = re.compile(r"^\??([A-Z][A-Z' ]{3,}?)(?: ERROR)?$")


@dataclass(frozen=True)
class Keyword(Mined):
    doc_id: str
    page: int
    method: str
    line_no: int
    evidence: str
    keyword: str
    token: int | None
    token_confirmed: bool
    purpose: str
    example: str | None

    family = "basic_keyword"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),)

    def kinds(self) -> list[str]:
        return ["keyword"] + (["example"] if self.example else []) + (["token"] if self.token is not None else [])

    def turn(self, kind: str) -> Turn:
        return _keyword_turn(self, kind)


@dataclass(frozen=True)
class ErrorMessage(Mined):
    doc_id: str
    page: int
    method: str
    line_no: int
    evidence: str
    message: str  # as printed, "?OUT OF DATA"
    cause: str

    family = "basic_keyword"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return (EvidenceLine(self.line_no, self.evidence),)

    def kinds(self) -> list[str]:
        return ["error"]

    def turn(self, kind: str) -> Turn:
        return _error_turn(self, kind)


def parse_keyword_row(parts: list[str]) -> tuple[str, int | None, bool, str, str | None] | None:
    parts = [p for p in parts if p]
    if len(parts) < 2 or parts[0] not in KEYWORDS:
        return None
    token, confirmed, rest = None, False, []
    for cell in parts[1:]:
        t = _TOKEN.match(cell)
        if t and token is None:
            token = int(t.group(1), 16)
        elif token is not None and re.fullmatch(r"\d{3}", cell):
            if int(cell) != token:
                return None
            confirmed = True
        else:
            rest.append(cell)
    if len(rest) != 1:
        return None
    if token is None and parts[0] == "AND":
        return None  # "AND  Logical AND": the 6502 mnemonic of an instruction list, not the BASIC operator
    purpose = rest[0]
    example = _EXAMPLE.search(purpose)
    plain = _EXAMPLE.sub(lambda m: m.group(1), purpose)
    if not readable(_EXAMPLE.sub("", purpose), 160):
        return None
    return parts[0], token, confirmed, plain.rstrip("."), example.group(1) if example else None


def parse_error_row(parts: list[str]) -> tuple[str, str] | None:
    parts = [p for p in parts if p]
    if len(parts) != 2 or not parts[0].startswith("?"):
        return None
    if not _ERROR.match(parts[0]) or not readable(parts[1], 160):
        return None
    return parts[0], parts[1].rstrip(".")


def mine_basic(pages: Iterable[PageText]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    taken: set[tuple[str, int, int]] = set()
    for page in pages:
        if page.method == "none":
            continue
        for line_no, line in enumerate(page.text.split("\n"), start=1):
            parts = cells(line)
            if not parts or is_rule_row(parts):
                continue
            base = (page.doc_id, page.page, page.method, line_no, line.strip())
            kw = parse_keyword_row(parts)
            err = None if kw else parse_error_row(parts)
            if kw:
                found.append(Keyword(*base, *kw))
            elif err:
                found.append(ErrorMessage(*base, *err))
            else:
                continue
            taken.add((page.doc_id, page.page, line_no))
    return found, taken


def _keyword_turn(k: Keyword, kind: str) -> Turn:
    key = f"{k.doc_id}:{k.page}:{k.line_no}:{kind}"
    place = where(k.doc_id, k.page)
    purpose = lower_first(k.purpose)
    if kind == "keyword":
        question = pick(key, [f"What does the BASIC keyword {k.keyword} do?", f"What is {k.keyword} for in C64 BASIC?",
                              f"Explain {k.keyword} in BASIC V2."])
        steps = [f"The keyword table on {place} describes {k.keyword} as: {purpose}."]
        if k.example:
            steps.append(f"The same row shows it in use, {k.example}.")
        answer = f"{k.keyword}: {k.purpose}."
    elif kind == "example":
        question = pick(key, [f"How do I write a {k.keyword} statement? Show an example.",
                              f"Can you give me an example of {k.keyword} in BASIC?"])
        steps = [f"{k.keyword} is listed on {place} for this purpose: {_purpose_without_example(k)}.",
                 f"Its row gives the example {k.example}."]
        answer = f"For example: {k.example} ({k.keyword}: {_purpose_without_example(k)})."
    elif kind == "token":
        question = pick(key, [f"Which token byte does BASIC store for {k.keyword}?",
                              f"How is the keyword {k.keyword} stored in a tokenized program line?"])
        steps = [f"{k.keyword}, the keyword to {lower_first(_purpose_without_example(k))}, has ${k.token:02X} in the token column on {place}."]
        steps.append(f"${k.token:02X} = {k.token >> 4}*16 + {k.token & 15} = {k.token}"
                     + (", which matches the decimal column." if k.token_confirmed else "."))
        answer = f"{k.keyword} is stored as the token ${k.token:02X} ({k.token} decimal)."
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    return Turn(question, " ".join(steps), answer)


def _purpose_without_example(k: Keyword) -> str:
    text = k.purpose.replace(k.example or "\0", "").rstrip(" :;,")
    return lower_first(text) if text else lower_first(k.purpose)


def _error_turn(e: ErrorMessage, kind: str) -> Turn:
    key = f"{e.doc_id}:{e.page}:{e.line_no}:{kind}"
    question = pick(key, [f"What causes {e.message} on the C64?", f"My program stopped with {e.message}. Why?",
                          f"What does the error {e.message} mean?"])
    steps = [f"The error list on {place_of(e)} gives for {e.message}: {lower_first(e.cause)}."]
    answer = f"{e.message} usually means: {e.cause}."
    return Turn(question, " ".join(steps), answer)


def place_of(e: ErrorMessage) -> str:
    return where(e.doc_id, e.page)
