"""Page layout: text blocks, human reading order, running heads.

Reading order (``layout_text``) is a recursive, table-aware XY-cut:

1. Every block is cut into its lines (a block's lines share its bbox, split evenly in height).
2. Lines are grouped into horizontal *bands* (separated by vertical whitespace). Adjacent bands
   are merged into one *group* while their union keeps every vertical gutter of both parts, so a
   two-column region becomes one group even though each line pair is its own band, while a
   full-width title or paragraph (which bridges the gutter) starts a new group.
3. A group without a gutter is read top to bottom. A group with gutters is cut into columns;
   for each pair of neighbouring columns we ask whether they form a TABLE: the lines on both
   sides must mostly sit on shared rows (strong vertical overlap, wrapped continuation lines
   excluded) and at least one side must be cell-like (median <= 3 words per line), and
   neither side may look like prose (median >= 5 words per line with the shared rows falling
   in the middle of its multi-line paragraphs, on lines that continue a sentence: lower-case start). Neighbouring columns joined by table gutters are
   emitted row by row (cells joined with " | "); every other column is read fully, left to
   right, by recursing into it.

Paragraphs are separated by a blank line, table rows by single newlines.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from collections import Counter
from itertools import groupby
from operator import attrgetter, itemgetter
from dataclasses import dataclass
from typing import Literal

import pymupdf

__all__ = ["TextBlock", "blocks_from_page", "layout_text", "strip_running_heads"]


@dataclass(frozen=True)
class TextBlock:
    x0: float
    y0: float
    x1: float
    y1: float  # PDF points, page coordinates
    text: str  # lines joined with "\n"
    # (y0, y1) of each line of `text` where the extractor gave them; without them lines are spread evenly over the
    # block, which misplaces rows when a block is a table column whose neighbouring cells wrap
    line_spans: tuple[tuple[float, float], ...] = ()

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


# --------------------------------------------------------------------------------------------
# Blocks from a PyMuPDF page
# --------------------------------------------------------------------------------------------

# A horizontal gap wider than this many line heights splits a line into separate pieces
# (table cells, or two columns that the text extractor glued into one line). Measured: one
# space is ~0.5 line heights in a text layer and ~1.05 on Tesseract's tight OCR line boxes;
# table cells set three monospace spaces apart are >= 1.44. So a gap also splits when it is
# wider than CHAR_GAP median character widths (three monospace spaces; justified prose
# stretches a space to ~1.3 character widths at most).
CELL_GAP = 1.5
CHAR_GAP = 2.5
# Two extractor lines of one text-layer block side by side on a row are joined only closer than this many line
# heights (about one space: a line ends at a wider gap). Measured on the sample manuals' tables: cells 8 pt apart
# at 14.7 pt line boxes (0.55) must stay apart.
MERGE_GAP = 0.3
# A text-layer line is also split at a gap wider than MERGE_GAP before a word that starts exactly (to the rounded
# point) where at least this many other lines start away from their row's left edge: a column of a table whose row
# the producer set as one line with narrow padding ("FA_CREATE_ALWAYS $08" under "$01", "$02", "$04").
COLUMN_START_MIN = 3
ROW_OVERLAP = 0.6  # share of the smaller height two lines must share to sit on one row

Granularity = Literal["auto", "blocks", "lines"]

# OCR engines hallucinate specks at column edges ("|", "_—_", ";"): a token at the start or
# end of an OCR line that consists only of these characters is dropped (drop_specks=True).
_SPECK = re.compile(r"^[|_—–~;:.,'`\"!¦\\/-]+$")


def _clean_lines(text: str) -> str:
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


# A word as ``get_text("words")`` gives it: x0, y0, x1, y1, text, block, line, word numbers.
_Word = tuple[float, float, float, float, str, int, int, int]
# A piece of a line: x0, y0, x1, y1, text, and the gap (points) that separates cells there.
_Piece = tuple[float, float, float, float, str, float]


def _column_starts(blocks: list[list[list[_Word]]]) -> set[int]:
    """Rounded x where at least COLUMN_START_MIN extractor lines that are not the first on their row begin: the
    left edges of table columns after the first."""
    firsts: dict[int, float] = {}  # rounded top of a row -> leftmost x seen on it
    heads: list[tuple[int, float]] = []
    inf = math.inf
    for lines in blocks:
        for words in lines:
            x, y = words[0][0], words[0][1]
            key = round(y)
            heads.append((key, x))
            if x < firsts.get(key, inf):
                firsts[key] = x
    counts = Counter([round(x) for key, x in heads if x > firsts[key] + 1])
    return {x for x, c in counts.items() if c >= COLUMN_START_MIN}


def _line_pieces(words: list[_Word], drop_specks: bool = False, starts: set[int] | None = None) -> list[_Piece]:
    """Split one extractor line (its words, left to right) into pieces at wide horizontal gaps, and, given the page's
    column ``starts``, at a gap wider than MERGE_GAP line heights before a word that begins exactly at one."""
    if len(words) == 1:  # the common case in tables and short lines: nothing to split
        x0, y0, x1, y1, text = words[0][:5]
        if drop_specks and _SPECK.match(text):
            return []
        h = y1 - y0 if y1 - y0 > 1.0 else 1.0
        by_height, by_chars = CELL_GAP * h, CHAR_GAP * (x1 - x0) / len(text)
        return [(x0, y0, x1, y1, text, by_height if by_height <= by_chars else by_chars)]
    y0, y1, chars, ink = math.inf, -math.inf, 0, 0.0
    for w in words:
        if w[1] < y0:
            y0 = w[1]
        if w[3] > y1:
            y1 = w[3]
        chars += len(w[4])
        ink += w[2] - w[0]
    limit = min(CELL_GAP * max(y1 - y0, 1.0), CHAR_GAP * ink / chars)
    aligned = MERGE_GAP * (y1 - y0) if starts else math.inf
    if not drop_specks:  # cut at the gaps in one pass: a piece's right edge is the running maximum at its end
        out: list[_Piece] = []
        first, right = 0, words[0][2]
        for i in range(1, len(words)):
            w = words[i]
            gap = w[0] - right
            if gap > limit or (gap > aligned and round(w[0]) in starts):  # type: ignore[operator]
                out.append((words[first][0], y0, right, y1, " ".join([v[4] for v in words[first:i]]), limit))
                first, right = i, w[2]
            elif w[2] > right:
                right = w[2]
        out.append((words[first][0], y0, right, y1, " ".join([v[4] for v in words[first:]]), limit))
        return out
    groups: list[list[_Word]] = []
    right = -math.inf
    for w in words:
        gap = w[0] - right
        if not groups or gap > limit or (gap > aligned and round(w[0]) in starts):  # type: ignore[operator]
            groups.append([w])
            right = w[2]
        else:
            groups[-1].append(w)
            if w[2] > right:
                right = w[2]
    out = []
    for g in groups:
        if drop_specks:
            while g and _SPECK.match(g[0][4]):
                g = g[1:]
            while g and _SPECK.match(g[-1][4]):
                g = g[:-1]
        if g:
            out.append((g[0][0], y0, max(w[2] for w in g), y1, " ".join(w[4] for w in g), limit))
    return out


def _row_clusters(pieces: list[_Piece]) -> list[list[_Piece]]:
    """Pieces grouped by vertical overlap (sorted by centre height): the only ones that can share a row."""
    rows: list[list[_Piece]] = []
    top = bottom = -math.inf
    for p in sorted(pieces, key=lambda p: p[1] + p[3]):
        p1, p3 = p[1], p[3]
        # min(a, b) and max(a, b) written out as "b if b < a else a", "b if b > a else a" (what they return)
        if rows and (p3 if p3 < bottom else bottom) - (p1 if p1 > top else top) >= ROW_OVERLAP * (
            p3 - p1 if p3 - p1 < bottom - top else bottom - top
        ):
            rows[-1].append(p)
            top, bottom = (p1 if p1 < top else top), (p3 if p3 > bottom else bottom)
        else:
            rows.append([p])
            top, bottom = p[1], p[3]
    return rows


def _merge_row_pieces(pieces: list[_Piece], max_gap: float | None = None) -> list[_Piece]:
    """Join pieces that sit on one row closer than their cell gap (an extractor split one line), or closer than
    ``max_gap`` line heights when given (text layers: the extractor only ends a line at a gap wider than a space, so
    two of its lines side by side are two cells unless they nearly touch)."""
    out: list[list] = []
    for cluster in _row_clusters(pieces):
        merged: list[list] = []
        for p in sorted(cluster, key=_FIRST) if len(cluster) > 1 else cluster:
            p0, p1, p2, p3, p5 = p[0], p[1], p[2], p[3], p[5]
            h = p3 - p1 if p3 - p1 > 1.0 else 1.0
            for q in merged:
                q1, q3 = q[1], q[3]
                qh = q3 - q1 if q3 - q1 > 1.0 else 1.0
                low = h if h <= qh else qh
                overlap = (q3 if q3 <= p3 else p3) - (q1 if q1 >= p1 else p1)
                gap = p0 - q[2]
                limit = (p5 if p5 >= q[5] else q[5]) if max_gap is None else max_gap * low
                if overlap >= ROW_OVERLAP * low and -0.5 * low <= gap <= limit:
                    q[:] = [
                        q[0], q1 if q1 <= p1 else p1, q[2] if q[2] >= p2 else p2, q3 if q3 >= p3 else p3,
                        q[4] + " " + p[4], limit,
                    ]
                    break
            else:
                merged.append(list(p))
        out.extend(merged)
    return [tuple(q) for q in sorted(out, key=_TOP_LEFT)]  # type: ignore[misc]


_FIRST = itemgetter(0)
_TOP_LEFT = itemgetter(1, 0)


def _x_overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return min(a1, b1) - max(a0, b0)


def _y_overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return min(a1, b1) - max(a0, b0)


def _stacked(pieces: list[_Piece]) -> bool:
    """One piece per line and no two lines side by side: the block is a plain column of lines (the common case)."""
    for a, b in zip(pieces, pieces[1:]):
        a1, a3, b1, b3 = a[1], a[3], b[1], b[3]
        if (a3 if a3 < b3 else b3) - (a1 if a1 > b1 else b1) > 0.25 * (a3 - a1 if a3 - a1 < b3 - b1 else b3 - b1):
            return False
    return True


def _block(pieces: list[_Piece]) -> TextBlock:
    if len(pieces) == 1:  # a one-line block: a heading, a cell
        p = pieces[0]
        return TextBlock(p[0], p[1], p[2], p[3], p[4], ((p[1], p[3]),))
    x0s, y0s, x1s, y1s, texts, _ = zip(*pieces)
    return TextBlock(min(x0s), min(y0s), max(x1s), max(y1s), "\n".join(texts), tuple(zip(y0s, y1s)))


def _cluster_block(pieces: list[_Piece]) -> list[TextBlock]:
    """Split one extractor block into parts whose lines are not side by side."""
    clusters: list[list[_Piece]] = []  # runs of x-overlapping pieces (connected components of the overlap graph)
    right = -math.inf
    for p in sorted(pieces, key=_FIRST):
        if clusters and p[0] < right:
            clusters[-1].append(p)
            right = max(right, p[2])
        else:
            clusters.append([p])
            right = p[2]
    out: list[TextBlock] = []
    for members in clusters:
        if len(members) == 1:  # a cell of a table row: one piece
            p = members[0]
            out.append(TextBlock(p[0], p[1], p[2], p[3], p[4], ((p[1], p[3]),)))  # == _block(members)
            continue
        part = sorted(members, key=_TOP_LEFT)
        side_by_side = False
        for k, a in enumerate(part):
            a1, a3 = a[1], a[3]
            for b in part[k + 1 : k + 4]:
                b1, b3 = b[1], b[3]
                if (a3 if a3 < b3 else b3) - (a1 if a1 > b1 else b1) > 0.5 * (
                    a3 - a1 if a3 - a1 < b3 - b1 else b3 - b1
                ):
                    side_by_side = True
                    break
            if side_by_side:
                break
        if side_by_side:
            out.extend(TextBlock(p[0], p[1], p[2], p[3], p[4], ((p[1], p[3]),)) for p in part)  # _block([p]) each
        else:
            out.append(_block(part))
    return out


def _page_lines(page: pymupdf.Page, textpage: pymupdf.TextPage | None) -> list[list[list[_Word]]]:
    """Words of the page grouped by extractor block and line (the text page's words, grouped in C by
    ``itertools.groupby`` on the block and line numbers)."""
    if textpage is None:
        textpage = page.get_textpage(flags=TEXT_FLAGS)
    blocks: list[list[list[_Word]]] = []
    block = None
    # textpage.extractWORDS() is what page.get_text("words", textpage=textpage) returns (no clip, no sort)
    for (b, _), words in groupby(textpage.extractWORDS(), _BLOCK_LINE):
        if b != block:
            blocks.append([])
            block = b
        blocks[-1].append(list(words))
    return blocks


_BLOCK_LINE = itemgetter(5, 6)


# Text page flags for text layers, as extraction always used (``get_textpage()``'s default): no images (decoding them
# costs more than reading the text), ligatures expanded to letters, unknown glyphs as U+FFFD (which the quality score
# counts) rather than CID numbers.
TEXT_FLAGS = 0


def blocks_from_page(
    page: pymupdf.Page,
    textpage: pymupdf.TextPage | None = None,
    granularity: Granularity = "auto",
    drop_specks: bool = False,
) -> list[TextBlock]:
    """Text blocks of a page (text blocks only; whitespace-only blocks dropped).

    granularity:
      "blocks": PyMuPDF's own blocks (``page.get_text("blocks")``) unchanged.
      "lines":  one block per text line; lines are split at wide gaps (table cells).
      "auto":   PyMuPDF's blocks, but a block whose lines sit side by side (a table row, or two
                columns glued together by the extractor, as happens on OCR text pages) is split
                into its horizontally separate parts. Best for text layers.
    For OCR text pages use "lines": there the extractor's blocks are not paragraphs (it glues
    lines of neighbouring columns together), and ``layout_text`` rebuilds paragraphs from
    line spacing. drop_specks removes OCR specks ("|", "_", ";") at line ends ("auto"/"lines").
    Geometry comes from the words of ``textpage`` (one ``extractWORDS()`` call; made without images when not given).
    """
    if granularity == "blocks":
        out = []
        for b in page.get_text("blocks", textpage=textpage):
            if b[6] != 0:
                continue
            text = _clean_lines(b[4])
            if text:
                out.append(TextBlock(float(b[0]), float(b[1]), float(b[2]), float(b[3]), text))
        return out
    if granularity not in ("auto", "lines"):
        raise ValueError(f"granularity must be 'auto', 'blocks' or 'lines', not {granularity!r}")
    out: list[TextBlock] = []
    line_pieces: list[_Piece] = []
    page_lines = _page_lines(page, textpage)
    starts = _column_starts(page_lines) if granularity == "auto" else None
    for lines in page_lines:
        pieces = [p for words in lines for p in _line_pieces(words, drop_specks, starts)]
        if not pieces:
            continue
        if granularity == "lines":
            line_pieces.extend(pieces)
        elif len(pieces) == len(lines) and _stacked(pieces):
            out.append(_block(pieces))
        else:
            out.extend(_cluster_block(_merge_row_pieces(pieces, MERGE_GAP)))
    if granularity == "lines":
        out = [TextBlock(*p[:5]) for p in _merge_row_pieces(line_pieces)]
    return out


# --------------------------------------------------------------------------------------------
# Reading order
# --------------------------------------------------------------------------------------------

_SECTION_NUMBER = re.compile(r"^(\d+\.)+\d*$|^\d+(\.\d+)+$")  # 6.2.1. / 4.2 / 2.
TABLE_MAX_WORDS = 3  # a cell-like column has at most this many words per line (median)
PROSE_MIN_WORDS = 5  # a prose column has at least this many words per line (median)


class _Line:
    """One text line (or cell piece) with its block: a plain slotted class, built and compared very often."""

    __slots__ = ("x0", "y0", "x1", "y1", "text", "block", "first", "block_lines", "h", "words", "mid2")

    def __init__(self, x0: float, y0: float, x1: float, y1: float, text: str, block: int, first: bool,
                 block_lines: int):
        self.x0, self.y0, self.x1, self.y1, self.text = x0, y0, x1, y1, text
        self.block = block
        self.first = first  # first line of its block
        self.block_lines = block_lines  # number of lines in its block
        self.h = y1 - y0 if y1 - y0 > 0.01 else 0.01
        self.words = len(text.split())
        self.mid2 = y0 + y1  # twice the centre height: rows are built in this order


def _lines_from_blocks(blocks: list[TextBlock]) -> list[_Line]:
    out = []
    for bi, b in enumerate(blocks):
        parts = b.text.split("\n")
        n = len(parts)
        spans = b.line_spans
        if len(spans) != n:
            h = (b.y1 - b.y0) / n
            spans = [(b.y0 + i * h, b.y0 + (i + 1) * h) for i in range(n)]
        if n == 1:  # a one-line block (table cells, headings)
            text = parts[0].strip()
            if text:
                out.append(_Line(b.x0, spans[0][0], b.x1, spans[0][1], text, bi, True, 1))
            continue
        kept = [(i, p) for i, p in enumerate(map(str.strip, parts)) if p]
        for k, (i, text) in enumerate(kept):
            out.append(_Line(b.x0, spans[i][0], b.x1, spans[i][1], text, bi, k == 0, len(kept)))
    return out


class _Ctx:
    def __init__(self, lines: list[_Line]):
        self.med_h = statistics.median(l.h for l in lines) if lines else 10.0
        self.min_gap = max(2.0, 0.5 * self.med_h)


def _same_row(a: _Line, b: _Line) -> bool:
    return _y_overlap(a.y0, a.y1, b.y0, b.y1) >= ROW_OVERLAP * min(a.h, b.h)


_BAND_KEY = attrgetter("y0", "x0")


def _bands(lines: list[_Line]) -> list[list[_Line]]:
    """Split into horizontal bands separated by vertical whitespace (small overlaps tolerated)."""
    bands: list[list[_Line]] = []
    bottom = -math.inf
    for l in sorted(lines, key=_BAND_KEY):
        if bands and l.y0 < bottom - 0.25 * l.h:
            bands[-1].append(l)
            bottom = max(bottom, l.y1)
        else:
            bands.append([l])
            bottom = l.y1
    return bands


def _cover(ivs: list[tuple[float, float]], ctx: _Ctx) -> list[tuple[float, float]]:
    """Sorted x intervals coalesced wherever they are less than a gutter apart."""
    out: list[tuple[float, float]] = []
    if not ivs:
        return out
    min_gap = ctx.min_gap
    ordered = sorted(ivs)
    a, b = ordered[0]
    for x0, x1 in ordered:
        if x0 - b < min_gap:
            if x1 > b:
                b = x1
        else:
            out.append((a, b))
            a, b = x0, x1
    out.append((a, b))
    return out


def _gaps(cover: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(cover) < 2:  # most bands and groups: one stretch, no gap
        return []
    return [(a[1], b[0]) for a, b in zip(cover, cover[1:])]


def _gutters(lines: list[_Line], ctx: _Ctx) -> list[tuple[float, float]]:
    """Vertical whitespace strips (x intervals) that no line crosses."""
    return _gaps(_cover([(l.x0, l.x1) for l in lines], ctx))


def _keeps(
    gutters: list[tuple[float, float]], union: list[tuple[float, float]], strict: bool, ctx: _Ctx
) -> bool:
    """Every gutter survives in the union (strict: with half its width, or a line height)."""
    for g0, g1 in gutters:
        need = min(0.5 * (g1 - g0), ctx.med_h) if strict else ctx.min_gap
        for u0, u1 in union:
            if (g1 if g1 < u1 else u1) - (g0 if g0 > u0 else u0) >= need:
                break
        else:
            return False
    return True


def _groups(bands: list[list[_Line]], ctx: _Ctx) -> tuple[list[list[_Line]], list[list[tuple[float, float]]]]:
    """Bands merged into groups, and each group's gutters. A group's x extent coalesced is the ``_cover`` of its
    bands' covers, which is the ``_cover`` of its lines: its gaps are ``_gutters(group)``."""
    groups: list[list[_Line]] = []
    covers: list[list[tuple[float, float]]] = []  # x extent of each group, coalesced
    gutters: list[list[tuple[float, float]]] = []  # the gaps of each cover
    for band in bands:
        cb = _cover([(l.x0, l.x1) for l in band], ctx)
        gb = _gaps(cb)
        if groups:
            gg = gutters[-1]
            if gg or gb:
                cu = _cover(covers[-1] + cb, ctx)
                gu = _gaps(cu)
                if gu and _keeps(gg, gu, True, ctx) and _keeps(gb, gu, not gg, ctx):
                    groups[-1].extend(band)
                    covers[-1] = cu
                    gutters[-1] = gu
                    continue
        groups.append(list(band))
        covers.append(cb)
        gutters.append(gb)
    return groups, gutters


def _one_per_row(lines: list[_Line]) -> bool:
    """No two lines share a row (so ``_rows`` would return every line alone, in the same order)."""
    ordered = sorted(lines, key=_Y0)
    for a, b in zip(ordered, ordered[1:]):
        if not b.y0 >= a.y1 - 0.25 * (a.h if a.h < b.h else b.h):
            return False
    return True


_Y0 = attrgetter("y0")


_ROW_KEY = attrgetter("mid2", "x0")


def _rows(lines: list[_Line]) -> list[list[_Line]]:
    """Group lines into rows (strong vertical overlap, no horizontal overlap inside a row)."""
    rows: list[list[_Line]] = []
    for l in sorted(lines, key=_ROW_KEY):
        ly0, ly1, lx0, lx1, lh = l.y0, l.y1, l.x0, l.x1, l.h
        for row in reversed(rows[-3:]):
            a = row[0]
            shared = (a.y1 if a.y1 < ly1 else ly1) - (a.y0 if a.y0 > ly0 else ly0)
            if shared < ROW_OVERLAP * (a.h if a.h < lh else lh):
                continue
            for o in row:  # no horizontal overlap inside a row
                if (o.x1 if o.x1 < lx1 else lx1) > (o.x0 if o.x0 > lx0 else lx0):
                    break
            else:
                row.append(l)
                break
        else:
            rows.append([l])
    for row in rows:
        if len(row) > 1:
            row.sort(key=_X0)
    if len(rows) > 1:
        rows.sort(key=_top)  # stable: rows with the same top keep the order they were found in
    return rows


_X0 = attrgetter("x0")


def _top(row: list[_Line]) -> float:
    if len(row) == 1:
        return row[0].y0
    return min(l.y0 for l in row)


def _continues(row: list[_Line], prev: list[_Line], ctx: _Ctx) -> bool:
    """Is every line of ``row`` the wrapped continuation of a cell in ``prev``?"""
    med_h = ctx.med_h
    for l in row:
        lx0, lx1, ly0 = l.x0, l.x1, l.y0
        for p in prev:
            if p.block == l.block:
                break
            if (
                (p.x1 if p.x1 < lx1 else lx1) > (p.x0 if p.x0 > lx0 else lx0)
                and abs(p.x0 - lx0) <= med_h
                and -0.3 * med_h <= ly0 - p.y1 <= 0.8 * med_h
            ):
                break
        else:
            return False
    return True


def _prose_like(side: list[_Line], words: float, paired: set[int]) -> bool:
    """``words``: the side's median words per line."""
    if words < PROSE_MIN_WORDS:
        return False
    hits = [l for l in side if id(l) in paired]
    if not hits:
        return False
    mids = [l for l in hits if not (l.first or l.block_lines == 1)]
    if len(mids) <= 0.5 * len(hits):
        return False
    # A line in the middle of a paragraph mostly continues a sentence (starts in lower case); a description cell of
    # a table whose column the extractor made into one block starts a new item (capital, digit, symbol).
    return sum(1 for l in mids if l.text[:1].islower()) >= 0.5 * len(mids)


def _median_words(lines: list[_Line]) -> float:
    return statistics.median([l.words for l in lines])


def _is_table_pair(
    left: list[_Line], right: list[_Line], ctx: _Ctx, memo: dict | None = None,
    wl: float | None = None, wr: float | None = None,
) -> bool:
    """Are two neighbouring columns cells of one table? The rows built for the pair are kept in ``memo`` under
    ``(id(left), id(right))``, for ``_table`` to reuse when the pair is a table of its own. ``wl``/``wr``: the
    columns' median words per line (``_median_words``) when already known."""
    if wl is None:
        wl = _median_words(left)
    if wr is None:
        wr = _median_words(right)
    if min(wl, wr) > TABLE_MAX_WORDS:  # neither side is cell-like (checked first: it needs no rows)
        return False
    left_ids = {id(l) for l in left}
    rows = _rows(left + right)
    if memo is not None:
        memo[(id(left), id(right))] = rows
    paired = other = 0
    paired_ids: set[int] = set()
    prev = None
    for row in rows:
        if len(row) == 1:  # most rows: one line, on one side
            in_left = id(row[0]) in left_ids
            in_right = not in_left
        else:
            n_left = len([l for l in row if id(l) in left_ids])
            in_left, in_right = n_left > 0, n_left < len(row)
        if in_left and in_right:
            paired += 1
            paired_ids.update(map(id, row))
        elif not in_left and prev is not None and _continues(row, prev, ctx):
            pass  # wrapped cell text: neither for nor against a table
        else:
            other += 1
        prev = row
    if paired == 0 or paired / (paired + other) < 0.5:
        return False
    return not (_prose_like(left, wl, paired_ids) or _prose_like(right, wr, paired_ids))


def _wraps_in_place(row: list[_Line], cells: list[list[_Line]]) -> bool:
    """A first-column line that is the next line of the cell above (same extractor block, alone on its row while
    its neighbours have ended): a wrapped header or first cell such as "Address" / "(hex)"."""
    if len(row) != 1:
        return False
    above = cells[0][-1]
    return row[0].block == above.block and row[0].block_lines > 1 and len(cells) > 1 and all(
        c[-1].block != above.block for c in cells[1:]
    )


# A row whose lines all continue cells of the row above, first column included, is a wrapped row (a two-line header
# "Address | Name/" over "(hex) | Bits") when the whitespace above it is under WRAP_GAP of the table's usual
# whitespace between rows: rows of a padded table are further apart than the lines of one cell. Needed where every
# cell is its own block (OCR); in text layers a wrapped first cell is one block (``_wraps_in_place``).
WRAP_GAP = 0.5


def _row_gap(rows: list[list[_Line]]) -> float | None:
    """Median whitespace between consecutive rows (top of one minus bottom of the one above), None under 3 rows."""
    gaps = [min(l.y0 for l in b) - max(l.y1 for l in a) for a, b in zip(rows, rows[1:])]
    return statistics.median(gaps) if len(gaps) >= 3 else None


def _wraps_closer(row: list[_Line], cells: list[list[_Line]], gap: float | None) -> bool:
    if gap is None or gap <= 0:
        return False
    return min(l.y0 for l in row) - max(l.y1 for c in cells for l in c) < WRAP_GAP * gap


def _cell_text(cell: list[_Line]) -> str:
    """The lines of one cell joined with spaces; a line that ends in "/" runs on without one ("Name/" over "Bits"
    is "Name/Bits", "RUN/" over "STOP" is "RUN/STOP": a narrow column wraps such words at the slash)."""
    out = cell[0].text
    for l in cell[1:]:
        out += l.text if out.endswith("/") else " " + l.text
    return out


def _table(columns: list[list[_Line]], ctx: _Ctx, rows: list[list[_Line]] | None = None) -> list[tuple[str, object]]:
    """Table rows of these columns (``rows``: their lines' ``_rows``, when already built)."""
    first_col = {id(l) for l in columns[0]}
    if rows is None:
        rows = _rows([l for c in columns for l in c])
    has_firsts = [any(id(l) in first_col for l in row) for row in rows]  # does the row have a first-column line
    gap = _row_gap([r for r, has_first in zip(rows, has_firsts) if has_first])
    table: list[list[list[_Line]]] = []  # rows of cells; a cell is a list of lines
    prev = None
    for row, has_first in zip(rows, has_firsts):
        if (
            table
            and (not has_first or _wraps_in_place(row, table[-1]) or _wraps_closer(row, table[-1], gap))
            and prev is not None
            and len(row) < len(table[-1])
            and _continues(row, prev, ctx)
        ):
            for l in row:
                cells = table[-1]
                best = max(cells, key=lambda c: _x_overlap(c[0].x0, c[0].x1, l.x0, l.x1))
                best.append(l)
        else:
            table.append([[l] for l in row])
        prev = row
    # Single-cell rows before the first / after the last real row are ordinary text.
    multi = [i for i, r in enumerate(table) if len(r) > 1]
    out: list[tuple[str, object]] = []
    if not multi:
        for r in table:
            out.extend(("line", l) for c in r for l in c)
        return out
    lo, hi = multi[0], multi[-1]
    for r in table[:lo]:
        out.extend(("line", l) for c in r for l in c)
    row = table[lo]
    if lo == hi and len(row) == 2 and len(row[0]) == len(row[1]) == 1 and _SECTION_NUMBER.match(row[0][0].text):
        # "6.2.1.   SID mapper": a numbered heading set with a tab, not a one-row table
        out.append(("line", _fuse([row[0][0], row[1][0]])))
        for r in table[hi + 1 :]:
            out.extend(("line", l) for c in r for l in c)
        return out
    rendered = [" | ".join(_cell_text(c) for c in r) for r in table[lo : hi + 1]]
    out.append(("table", rendered))
    for r in table[hi + 1 :]:
        out.extend(("line", l) for c in r for l in c)
    return out


def _order(lines: list[_Line], ctx: _Ctx) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for group, gutters in zip(*_groups(_bands(lines), ctx)):
        if not gutters:
            if len(group) == 1:  # a heading, a paragraph's only line, a lone cell
                items.append(("line", group[0]))
            elif _one_per_row(group):  # plain prose: every line is its own row
                items.extend(("line", l) for l in sorted(group, key=_ROW_KEY))  # by (y0 + y1, x0)
            else:
                items.extend(("line", _fuse(row)) for row in _rows(group))
            continue
        cuts = [g0 + g1 for g0, g1 in gutters]  # doubled midpoints, compared with doubled line centres
        columns: list[list[_Line]] = [[] for _ in range(len(cuts) + 1)]
        for l in group:
            columns[bisect.bisect_left(cuts, l.x0 + l.x1)].append(l)
        columns = [c for c in columns if c]
        segments = [[columns[0]]]
        memo: dict = {}
        words = [_median_words(c) for c in columns]  # each column is in up to two pairs
        for k, (a, b) in enumerate(zip(columns, columns[1:])):
            if _is_table_pair(a, b, ctx, memo, words[k], words[k + 1]):
                segments[-1].append(b)
            else:
                segments.append([b])
        for seg in segments:
            if len(seg) == 1:
                items.extend(_order(seg[0], ctx))
            else:
                items.extend(_table(seg, ctx, memo.get((id(seg[0]), id(seg[1]))) if len(seg) == 2 else None))
    return items


def _fuse(row: list[_Line]) -> _Line:
    """One line from the pieces of a row that no gutter separates."""
    if len(row) == 1:
        return row[0]
    first = row[0]
    return _Line(
        min(l.x0 for l in row),
        min(l.y0 for l in row),
        max(l.x1 for l in row),
        max(l.y1 for l in row),
        " ".join(l.text for l in row),
        first.block,
        first.first,
        first.block_lines,
    )


def _join(prev: _Line, cur: _Line, ctx: _Ctx) -> str:
    if prev.block == cur.block:
        return "\n"
    if prev.block_lines > 1 and cur.block_lines > 1:
        return "\n\n"  # two paragraphs that the extractor already told apart
    gap = cur.y0 - prev.y1
    below = (cur.y0 + cur.y1) / 2 > (prev.y0 + prev.y1) / 2
    if below and gap <= 0.75 * ctx.med_h and _x_overlap(prev.x0, prev.x1, cur.x0, cur.x1) > 0:
        return "\n"
    return "\n\n"


def layout_text(blocks: list[TextBlock], page_width: float, page_height: float) -> str:
    """The page text in human reading order (see the module docstring for the heuristic).

    Full-width parts come in vertical order, multi-column prose column by column, tables row
    by row with cells joined by " | ". Paragraphs are separated by a blank line, table rows by
    single newlines. ``page_width``/``page_height`` are accepted for API symmetry; the
    heuristic works on relative geometry only.
    """
    lines = _lines_from_blocks([b for b in blocks if b.text.strip()])
    if not lines:
        return ""
    ctx = _Ctx(lines)
    parts: list[str] = []
    prev: _Line | None = None
    for kind, value in _order(lines, ctx):
        if kind == "table":
            if parts:
                parts.append("\n\n")
            parts.append("\n".join(value))  # type: ignore[arg-type]
            prev = None
            continue
        line: _Line = value  # type: ignore[assignment]
        if parts:
            parts.append(_join(prev, line, ctx) if prev is not None else "\n\n")
        parts.append(line.text)
        prev = line
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Running headers and footers
# --------------------------------------------------------------------------------------------


# A block repeated at the same height (within HEAD_POSITION_TOLERANCE points) on min_share of the pages is a running
# head also below the narrow band, down to this share of the page (a title under a logo: 69-99 pt on an 842 pt page).
WIDE_HEAD_BAND = 0.15
HEAD_POSITION_TOLERANCE = 3.0


def _head_key(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\d+", "#", text)).strip().casefold()


def strip_running_heads(
    pages: list[list[TextBlock]],
    page_heights: list[float],
    band: float = 0.08,
    min_share: float = 0.5,
) -> list[list[TextBlock]]:
    """Drop running headers/footers.

    A block is one if it lies entirely within the top or bottom ``band`` share of its page and
    its text, with digit runs masked, whitespace normalised and case folded, occurs in that
    band on at least ``min_share`` of the pages; or if it lies within the wider WIDE_HEAD_BAND, has at
    most three lines, and exactly its text (digits too) recurs at the same height on at least
    ``min_share`` of the pages. Only applied to
    documents of >= 3 pages.
    """
    if len(pages) != len(page_heights):
        raise ValueError("pages and page_heights differ in length")
    if len(pages) < 3:
        return [list(p) for p in pages]

    def in_band(b: TextBlock, h: float) -> bool:
        return b.y1 <= band * h or b.y0 >= (1.0 - band) * h

    def in_wide_band(b: TextBlock, h: float) -> bool:
        return b.y1 <= WIDE_HEAD_BAND * h or b.y0 >= (1.0 - WIDE_HEAD_BAND) * h

    def placed(b: TextBlock) -> tuple[str, int]:  # exact text (digits too) at the same height, at most 3 lines
        if b.text.count("\n") >= 3:
            return "", 0
        return " ".join(b.text.split()).casefold(), round(b.y0 / HEAD_POSITION_TOLERANCE)

    # each block's keys, taken once: its head key if in the band, its (text, height) if in the wide band, else None
    keyed = [
        [(_head_key(b.text) if in_band(b, h) else None, placed(b) if in_wide_band(b, h) else None) for b in blocks]
        for blocks, h in zip(pages, page_heights)
    ]
    counts: Counter[str] = Counter()
    at_place: Counter[tuple[str, int]] = Counter()
    for keys in keyed:
        counts.update({k for k, _ in keys if k is not None})
        at_place.update({p for _, p in keys if p is not None})
    need = max(2, math.ceil(min_share * len(pages) - 1e-9))
    heads = {k for k, c in counts.items() if c >= need and k}
    placed_heads = {k for k, c in at_place.items() if c >= need and k[0]}
    if not heads and not placed_heads:
        return [list(p) for p in pages]

    def head(k: str | None, p: tuple[str, int] | None) -> bool:
        return (k is not None and k in heads) or (p is not None and p in placed_heads)

    return [[b for b, (k, p) in zip(blocks, keys) if not head(k, p)] for blocks, keys in zip(pages, keyed)]


def single_line_rows(blocks: "list[TextBlock]", recent: int | None = None) -> list[list[int]]:
    """Indices of the single-line blocks grouped into rows (vertical overlap of at least ROW_OVERLAP of the lower
    height), top to bottom, each row left to right. `recent`: compare a block with only the last rows opened (a
    table's rows come in order; older rows cannot take it), else with every row."""
    rows: list[list[int]] = []
    single = [i for i, b in enumerate(blocks) if "\n" not in b.text]
    for i in sorted(single, key=lambda i: (blocks[i].y0, blocks[i].x0)):
        b = blocks[i]
        for row in (rows[-recent:] if recent else rows):
            r = blocks[row[0]]
            h = min(b.height, r.height)
            if h > 0 and min(b.y1, r.y1) - max(b.y0, r.y0) >= ROW_OVERLAP * h:
                row.append(i)
                break
        else:
            rows.append([i])
    return rows
