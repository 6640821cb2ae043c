"""Tables of name / value / meaning that no other family reads: a header row naming the columns, then rows that start
with the thing they describe.

      | VIC version      | Cycles    | Lines total | VBlank | Visible |
      |:-----------------|:----------|:------------|:-------|:--------|
      | 6569, 8565 (PAL) | 63 (1-63) | 312 (0-311) | 300-15 | 284     |

Each row answers one question about one of its columns ("What is the VBlank for VIC version 6569, 8565 (PAL)?"); the
answer gives the asked cell and the rest of the row with its column names, so nothing is read out of context. Rows are
only taken when they have the header's number of cells, so a wrapped or merged row is left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from c64_pipeline.datasets.think_metrics import reasoning_skeleton
from c64_pipeline.datasets.sft.common import EvidenceLine, Mined, Turn, cells, is_rule_row, pick, plain_words, readable, reject, where
from c64_pipeline.ingest.extraction import PageText

_RANGE = re.compile(r"(?<![\w$.])(\d{1,5})\s*-\s*(\d{1,5})(?![\w.])")


@dataclass(frozen=True)
class TableRow(Mined):
    doc_id: str
    page: int
    method: str
    lines: tuple[EvidenceLine, ...]  # the header row, then the row
    title: str | None  # the heading or caption above the table
    columns: tuple[str, ...]  # header cells of the value columns
    label_column: str
    label: str
    values: tuple[str, ...]  # one per column, "" when the row leaves it empty
    position: int  # 1-based row number in the table
    rows: int  # rows in the table
    neighbour: tuple[str, str] | None  # (label, value of the asked column) of the row before or after

    family = "table_row"

    def evidence_lines(self) -> tuple[EvidenceLine, ...]:
        return self.lines

    def asked(self) -> int:
        """The column asked about: the filled columns in turn, row after row, so the table is asked from every side."""
        filled = [j for j, v in enumerate(self.values) if v]
        return filled[(self.position - 1) % len(filled)]

    def kinds(self) -> list[str]:
        return ["cell"]

    def turn(self, kind: str) -> Turn:
        key = f"{self.doc_id}:{self.page}:{self.lines[-1].line_no}:{kind}"
        j = self.asked()
        column, value = self.columns[j], self.values[j]
        subject = f"{self.label_column} {self.label}" if self.label_column and not _generic(self.label_column) else self.label
        title = f"the {self.title} table" if self.title else "the table"
        context = f" in {title}" if self.title else ""
        if len(self.columns) == 1 and self.position % 2 == 0 and self.label_column:
            # a two-column table is read both ways: the name for a value as often as the value for a name
            question = pick(key, [f'Which {self.label_column} has {column} "{value}"{context}?',
                                  f'What {self.label_column} goes with "{value}"{context}?'])
        else:
            options = [f"What is the {column} for {subject}{context}?", f"Which {column} value is given for {subject}{context}?"]
            if self.title and not re.fullmatch(r"[\d$]\S*", self.label):
                options.append(f"In {title}, what does {self.label} have under {column}?")
            question = pick(key, options)
        steps = [f"{title[0].upper() + title[1:]} on {where(self.doc_id, self.page)} has {len(self.columns) + 1} columns, "
                 f"{plain_words(self.label_column or 'the first')} then " + ", ".join(plain_words(c) for c in self.columns) + "."]
        steps.append(f"Row {self.position} of {self.rows} is {self.label}; under {plain_words(column)} it gives {value}.")
        span = _RANGE.search(value)
        if span and int(span.group(1)) < int(span.group(2)):
            lo, hi = int(span.group(1)), int(span.group(2))
            steps.append(f"{lo}-{hi} counts {hi} - {lo} + 1 = {hi - lo + 1}.")
        if self.neighbour and self.neighbour[1] and self.neighbour[1] != value:
            mine, theirs = _number(value), _number(self.neighbour[1])
            if mine is not None and theirs is not None:
                diff = mine - theirs
                steps.append(f"Next to it, {self.neighbour[0]} has {self.neighbour[1]}: {mine} - {theirs} = {diff}, "
                             f"so this row is {'higher' if diff > 0 else 'lower'} by {abs(diff)}.")
            else:
                steps.append(f"The row for {self.neighbour[0]} has {self.neighbour[1]} in that column instead, so the row matters.")
        rest = [f"{c} {v}" for c, v in zip(self.columns, self.values) if v and c != column]
        answer = f"For {subject}, {column} is {value}" + (f" ({'; '.join(rest)})." if rest else ".")
        return Turn(question, " ".join(steps), answer)


def _number(text: str) -> int | None:
    m = re.fullmatch(r"\s*(?:\$([0-9A-Fa-f]{1,4})|(\d{1,6}))\s*", text)
    return None if not m else int(m.group(1), 16) if m.group(1) else int(m.group(2))


def _groups(parts: list[str]) -> int:
    """The width of one record in a header printed two or more times side by side ("Code | Effect | Code | Effect")."""
    for width in range(1, len(parts) // 2 + 1):
        if len(parts) % width == 0 and parts == parts[:width] * (len(parts) // width):
            return width
    return len(parts)


def _generic(name: str) -> bool:
    return name.lower() in ("name", "item", "entry", "value", "description", "#", "no", "no.")


def _header(parts: list[str], ruled: bool) -> bool:
    """Column names: words, no values; two columns only when a rule row (|---|) marks the line as a header."""
    if len(parts) < (2 if ruled else 3) or not all(re.fullmatch(r"[A-Za-z#$][\w #$()/.,+&'-]{0,29}", p) for p in parts):
        return False
    return not any(re.fullmatch(r"\$?[0-9A-Fa-f]{2,4}", p) or "--" in p for p in parts)


def _title(lines: list[str], header: int) -> str | None:
    """The 'Table 3-1. ...' caption or the heading the table stands under (a few lines of prose between them allowed;
    another table above ends the search)."""
    from c64_pipeline.datasets.sft.prose import _heading

    for k in range(header - 1, max(-1, header - 16), -1):
        raw = lines[k].strip()
        if not raw:
            continue
        if cells(raw) and k < header - 1:
            return None
        caption = re.match(r"^(?:#{1,6}\s+|(?:Table|Figure)\s+[\d.-]+\.?\s+)(?P<title>[A-Z].{1,60})$", raw)
        title = caption.group("title") if caption and not raw.endswith((".", ",", ";")) else _heading(lines, k)
        if title:
            title = re.sub(r"^(?:The|A|An)\s+", "", title.rstrip(":"))
            return title if readable(title + " words", 80) else None
    return None


def mine_tables(pages: Iterable[PageText], taken: set[tuple[str, int, int]]) -> tuple[list[Mined], set[tuple[str, int, int]]]:
    found: list[Mined] = []
    used: set[tuple[str, int, int]] = set()
    for page in pages:
        if page.method == "none":
            continue
        lines = page.text.split("\n")
        doc, number = page.doc_id, page.page
        i = 0
        while i < len(lines):
            parts = cells(lines[i])
            following = cells(lines[i + 1]) if i + 1 < len(lines) else None
            ruled = bool(following and is_rule_row(following))
            if not parts or not _header(parts, ruled) or (doc, number, i + 1) in taken:
                i += 1
                continue
            header, rows, k = i, [], i + 1
            while k < len(lines):
                row = cells(lines[k])
                if row and is_rule_row(row):
                    k += 1
                    continue
                if not row or len(row) != len(parts):
                    break
                rows.append((k, [" ".join(c.split()) for c in row]))
                k += 1
            width = _groups(parts)
            names = parts[:width]
            # a table printed in two or more blocks side by side: each block of a row is a record of its own
            records = [(k, row[g : g + width]) for k, row in rows for g in range(0, len(row), width)]
            table = [(k, row) for k, row in records
                     if (doc, number, k + 1) not in taken and row[0] and re.search(r"[A-Za-z0-9]", row[0])
                     and sum(1 for v in row[1:] if v) >= min(2, width - 1)
                     and (page.method != "ocr" or readable(" ".join(row), 300))]
            if len(rows) >= 2 and width >= 2 and table:
                title = _title(lines, header)
                shapes: Counter[str] = Counter()
                for n, (k, row) in enumerate(table):
                    record = TableRow(doc, number, page.method,
                                      (EvidenceLine(header + 1, lines[header].strip()), EvidenceLine(k + 1, lines[k].strip())),
                                      title, tuple(names[1:]), names[0], row[0], tuple(row[1:]), n + 1, len(table), None)
                    other = table[n - 1] if n else (table[1] if len(table) > 1 else None)
                    if other:
                        record = replace(record, neighbour=(other[1][0], other[1][1 + record.asked()]))
                    # a table whose rows differ only in names gives the same reasoning row after row: two of each do
                    shape = reasoning_skeleton(record.turn("cell").reasoning)
                    if shapes[shape] >= 2:
                        reject("table row whose reasoning repeats two rows of its table")
                        continue
                    shapes[shape] += 1
                    found.append(record)
                    used.add((doc, number, k + 1))
            i = max(k, i + 1)
    return found, used
