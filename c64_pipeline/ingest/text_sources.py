"""Plain-text, Markdown and HTML references, read into pages of text.

Text files have no pages; a form feed starts a new one, otherwise every `lines_per_page` lines make one, so
every chunk and SFT example can still point at a place in the file.

Bytes are decoded by their byte-order mark, else by detection: UTF-16 without a BOM (told by its NUL pattern),
UTF-8, then Windows-1252/Latin-1. A file that decodes to no plausible text (NULs, control characters, mostly
symbols: a binary file named .txt) is rejected with the reason.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

LINES_PER_PAGE = 80
SNIFF_BYTES = 64 * 1024  # the NUL pattern of UTF-16 is judged on the start of the file
MAX_CONTROL_SHARE = 0.01  # more control characters than this (NULs, escapes...) and the file is binary
MIN_TEXT_SHARE = 0.85  # letters, digits, whitespace and common punctuation must make at least this share

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),  # these codecs read the BOM for the byte order and drop it
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Control characters other than tab, line ends, form feed and \x1a (the CP/M end-of-file mark old files end with)
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x19\x1b-\x1f\x7f-\x9f\ufffd\ufffe\uffff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")
_SYMBOLS = set("–—‘’“”•·°×±µ©®…→←↑↓§¶½¼¾²³¹€£¥¢")


class NotText(ValueError):
    """The bytes are not a text document (the message says why)."""


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when NULs sit on one side of almost every byte pair (ASCII-range UTF-16)."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even = head[0 : 2 * pairs : 2].count(0) / pairs
    odd = head[1 : 2 * pairs : 2].count(0) / pairs
    if odd >= 0.3 and even <= 0.05:
        return "utf-16-le"
    if even >= 0.3 and odd <= 0.05:
        return "utf-16-be"
    return None


def detect_encoding(data: bytes) -> str:
    """The encoding `data` is decoded with: its BOM, UTF-16 by NUL pattern, UTF-8 when valid, else cp1252/Latin-1."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    utf16 = _utf16_without_bom(data[:SNIFF_BYTES])
    if utf16:
        return utf16
    for encoding in ("utf-8", "cp1252"):
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin-1"


def text_problem(text: str) -> str | None:
    """Why decoded text is not a text document (binary content), or None when it reads as text."""
    if not text:
        return None
    controls = len(_CONTROL.findall(text))
    if "\x00" in text or controls / len(text) > MAX_CONTROL_SHARE:
        return f"binary content, not text ({controls / len(text):.1%} control characters)"
    if not text.isascii():
        odd = sum(1 for ch in _NON_ASCII.findall(text) if ch not in _SYMBOLS and unicodedata.category(ch)[0] not in "LNZ")
        if odd / len(text) > 1 - MIN_TEXT_SHARE:
            return f"binary content, not text ({odd / len(text):.0%} of the characters are stray symbols)"
    return None


def decode_bytes(data: bytes) -> str:
    """Text of a text file, line ends normalised. Raises NotText for binary content or undecodable bytes."""
    encoding = detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise NotText(f"undecodable as {encoding} ({exc.reason} at byte {exc.start})") from exc
    problem = text_problem(text)
    if problem:
        raise NotText(problem)
    if text.endswith("\x1a"):
        text = text.rstrip("\x1a")
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _HtmlText(HTMLParser):
    """Visible text of an HTML page; table rows become one line with cells joined by ' | '.

    Only the content of title/script/style/template is hidden: HTML5 lets a page omit `</head>` (and `<head>`),
    and text never belongs to the head, so there is nothing else to skip. Character references are unescaped
    once, by the parser (convert_charrefs)."""

    BLOCK = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "section", "article", "hr", "dt", "dd",
             "header", "footer", "nav", "main", "aside", "blockquote", "table", "ul", "ol", "dl", "figure", "figcaption"}
    HIDDEN = {"title", "script", "style", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.hidden: str | None = None

    def handle_starttag(self, tag, attrs):
        if self.hidden:
            return
        if tag in self.HIDDEN:
            self.hidden = tag
        elif tag == "tr":
            self._end_row()
            self.row = []
        elif tag in ("td", "th"):
            self._end_cell()
            if self.row is None:
                self.row = []
            self.cell = []
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_startendtag(self, tag, attrs):
        if not self.hidden and tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if self.hidden:
            if tag == self.hidden:
                self.hidden = None
            return
        if tag in ("td", "th"):
            self._end_cell()
        elif tag in ("tr", "table"):
            self._end_row()
        elif tag in self.BLOCK:
            self.out.append("\n")

    def _end_cell(self) -> None:
        if self.cell is not None and self.row is not None:
            self.row.append(" ".join("".join(self.cell).split()))
        self.cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self.row is not None:
            self.out.append("\n" + " | ".join(self.row) + "\n")
        self.row = None

    def handle_data(self, data):
        if self.hidden:
            return
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.out.append(data)

    def close(self) -> None:
        super().close()
        self._end_row()


_BRACKETS = re.compile(r"[<>]")


def defuse_unclosed_tags(markup: str) -> str:
    """Every `<` whose next angle bracket is another `<` (or none) cannot open a tag: write it as `&lt;`. The standard
    library's HTMLParser rescans from each such `<` to the end of the markup (quadratic: `"<a" * 40000` took 3.6 s);
    after this one linear pass every `<` it meets is closed by the next `>`. Comments are kept whole; well-formed
    markup is unchanged."""
    cut: list[int] = []
    last_open = None
    comment_ends_exhausted = False  # no "-->" after some point: later "<!--" need not search again
    position = 0
    while (match := _BRACKETS.search(markup, position)) is not None:
        at = match.start()
        if match.group() == ">":
            last_open = None
            position = at + 1
            continue
        if last_open is not None:
            cut.append(last_open)
            last_open = None
        if markup.startswith("<!--", at) and not comment_ends_exhausted:
            end = markup.find("-->", at + 4)
            if end != -1:
                position = end + 3
                continue
            comment_ends_exhausted = True
        last_open = at
        position = at + 1
    if last_open is not None:
        cut.append(last_open)
    if not cut:
        return markup
    pieces, start = [], 0
    for at in cut:
        pieces += [markup[start:at], "&lt;"]
        start = at + 1
    pieces.append(markup[start:])
    return "".join(pieces)


def html_to_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(defuse_unclosed_tags(markup))
    parser.close()
    text = "".join(parser.out)  # already unescaped once by the parser: unescaping again turns &amp;lt; into <
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))  # not re.sub(r"[ \t]+\n"): quadratic on long blank runs
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _heads(line: str) -> bool:
    """A heading or a line introducing what follows ("## Keywords", "Table 2.", "For example:"): no page ends on it."""
    text = line.strip()
    return text.startswith("#") or text.endswith(":") or (0 < len(text.split()) <= 8 and not text.endswith((".", "!", "?", "|")))


def split_pages(text: str, lines_per_page: int = LINES_PER_PAGE) -> list[str]:
    """Pages by form feed, else by line count (at most `lines_per_page`, cut after a blank line near the end when
    there is one). The end of the file (a final line end or form feed) does not start an empty page."""
    if "\f" in text:
        pages = text.split("\f")
        while len(pages) > 1 and not pages[-1].strip():
            pages.pop()
        return pages
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the line end of the last line, not a line of its own
    pages, start = [], 0
    while start < len(lines):
        end = min(start + lines_per_page, len(lines))
        if end < len(lines):
            # end the page after the last blank line of its final quarter, so an entry, table or paragraph that
            # straddles the cut moves whole to the next page (it keeps its heading, register row or table header);
            # preferably a blank line before a line that starts at the margin (a new entry, not an indented part)
            window = range(end, start + lines_per_page * 3 // 4, -1)
            blanks = [k for k in window if not lines[k - 1].strip() and lines[k].strip() and not _heads(lines[k - 2])]
            margin = [k for k in blanks if not lines[k][:1].isspace()]
            end = (margin or blanks or [end])[0]
        pages.append("\n".join(lines[start:end]))
        start = end
    return pages or [""]


def read_text_pages(path: Path, kind: str) -> list[str]:
    """Pages of a text file. Raises DocumentRejected (naming the file) when its bytes are not text."""
    from c64_pipeline.ingest.documents import DocumentRejected  # documents imports this module

    try:
        text = decode_bytes(path.read_bytes())
    except NotText as exc:
        raise DocumentRejected(f"{path.name}: {exc}") from exc
    if kind == "html":
        text = html_to_text(text)
    return split_pages(text)
