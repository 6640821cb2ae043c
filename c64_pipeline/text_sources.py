"""Plain-text, Markdown and HTML references, read into pages of text.

Text files have no pages; a form feed starts a new one, otherwise every `lines_per_page` lines make one, so
every chunk and SFT example can still point at a place in the file.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

LINES_PER_PAGE = 80


def decode_bytes(data: bytes) -> str:
    """UTF-8 when it is, else Windows-1252/Latin-1 (old references often are); line ends normalised."""
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _HtmlText(HTMLParser):
    """Visible text of an HTML page; table rows become one line with cells joined by ' | '."""

    BLOCK = {"p", "div", "br", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "section", "article", "hr", "dt", "dd"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.out.append("\n" + " | ".join(self.row) + "\n")
            self.row = None
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if self.skip:
            return
        if self.cell is not None:
            self.cell.append(data)
        else:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.out))
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))  # not re.sub(r"[ \t]+\n"): quadratic on long blank runs
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def split_pages(text: str, lines_per_page: int = LINES_PER_PAGE) -> list[str]:
    if "\f" in text:
        return [page for page in text.split("\f")]
    lines = text.split("\n")
    pages = ["\n".join(lines[i : i + lines_per_page]) for i in range(0, len(lines), lines_per_page)]
    return pages or [""]


def read_text_pages(path: Path, kind: str) -> list[str]:
    text = decode_bytes(path.read_bytes())
    if kind == "html":
        text = html_to_text(text)
    return split_pages(text)
