"""Page-fidelity benchmark: unit tests per page, in the style of olmOCR-Bench, beside extraction throughput.

    python -m bench.page_fidelity [--quick] [--compare-find-tables] [--write-sample-tests]

Test types (one JSON object a line in ``bench/page_tests/*.jsonl``):

- ``present``: a snippet appears in the page text (``page`` given) or in some page of the document;
- ``absent``:  a snippet (``text``) or a whole line matching ``line_regex`` appears on no page (running heads);
- ``order``:   snippet ``before`` comes before snippet ``after`` in the document text (pages in order);
- ``table``:   one line of the page text (a table row, cells joined with " | ") has a cell that is ``a`` and, to its
               right, a cell that holds ``b`` as whole words (a wrapped cell may hold more).

Snippets are compared after normalisation (Unicode NFKC, typographic quotes and dashes made plain, every run of
whitespace one space). ``needs`` is ``"text_layer"`` or ``"ocr"``: quick mode extracts without OCR and skips the
tests that need it.

Test sources:

- ``sample_manuals.jsonl`` is derived from the HTML sources of the sample manuals (``--write-sample-tests``
  regenerates it; a unit test checks that it is up to date): every table row gives ``table`` tests (first cell with
  each other cell), paragraphs and headings give ``present`` and ``order`` tests, listing lines ``present`` tests,
  the running head and page footer ``absent`` tests;
- ``corpus.jsonl`` holds hand-written tests on the shared corpus PDFs (``../shared/corpus``), and the corpus's
  ``qa.jsonl`` evidence quotes from PDFs are added as ``present`` tests. Without the corpus they are skipped.

Throughput: pages/s of the project's ``extract_pdf`` on the text-layer PDFs vs a bare PyMuPDF ``page.get_text()``
loop over the same pages in the same run (ratio). ``--compare-find-tables`` also scores PyMuPDF's own table finder
(``page.find_tables()``, strategies "lines" and "text") in place of the XY-cut tables on the text-layer pages.

Prints a Markdown table and writes ``bench/results/page_fidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path

import pymupdf

from bench.common import best_of
from c64_pipeline.atomic import write_json
from c64_pipeline.settings import PROJECT_ROOT, shared_corpus_dir

TESTS_DIR = PROJECT_ROOT / "bench" / "page_tests"
SAMPLE_TESTS = TESTS_DIR / "sample_manuals.jsonl"
SHARED_CORPUS = shared_corpus_dir()
RESULTS = PROJECT_ROOT / "bench" / "results" / "page_fidelity.json"
TYPES = ("present", "absent", "order", "table")

# --------------------------------------------------------------------------------------------
# Tests and their checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageTest:
    id: str
    doc: str  # "sample:<rendered file name>" or "corpus:<path under the corpus>"
    type: str  # one of TYPES
    needs: str = "text_layer"  # or "ocr"
    page: int | None = None  # 1-based; None: any page / the whole document
    text: str = ""  # present / absent
    line_regex: str = ""  # absent: no line matches this (whole line, after normalisation)
    before: str = ""  # order
    after: str = ""
    a: str = ""  # table: cell a left of cell b on one line
    b: str = ""
    source: str = ""  # where the truth comes from

    def __post_init__(self):
        if self.type not in TYPES:
            raise ValueError(f"test {self.id}: unknown type {self.type!r}")
        if self.needs not in ("text_layer", "ocr"):
            raise ValueError(f"test {self.id}: needs must be 'text_layer' or 'ocr', not {self.needs!r}")
        required = {"present": ("text",), "order": ("before", "after"), "table": ("a", "b")}.get(self.type, ())
        if self.type == "absent" and not (self.text or self.line_regex):
            raise ValueError(f"test {self.id}: an absent test needs text or line_regex")
        for name in required:
            if not norm(getattr(self, name)):
                raise ValueError(f"test {self.id}: {name} is empty")

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in ("", None) or k in ("id", "doc", "type")}


_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                        "\u2212": "-", "\u00a0": " ", "\u00ad": ""})


def norm(text: str) -> str:
    """NFKC, plain quotes and dashes, whitespace runs collapsed to one space."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_PLAIN).split())


_LINE_END_HYPHEN = re.compile(r"(?<=\w-)\n\s*(?=\w)")


def check(test: PageTest, pages: list[str]) -> tuple[bool, str]:
    """(passed, why) for one test against the page texts of its document (index 0 is page 1). A line break after a
    hyphen inside a word ("six-\nbit") is read as no break: the layout keeps the producer's line ends."""
    pages = [_LINE_END_HYPHEN.sub("", p) for p in pages]
    if test.page is not None:
        if not 1 <= test.page <= len(pages):
            return False, f"page {test.page} not in a document of {len(pages)} pages"
        scope = [pages[test.page - 1]]
    else:
        scope = pages
    if test.type == "present":  # on its page, or anywhere in the document (a paragraph may run over a page break)
        want = norm(test.text)
        return want in norm(" ".join(scope)), "not found"
    if test.type == "absent":
        for i, p in enumerate(scope):
            if test.text and norm(test.text) in norm(p):
                return False, f"found on page {i + 1 if test.page is None else test.page}"
            if test.line_regex:
                pattern = re.compile(test.line_regex)
                for line in p.split("\n"):
                    if pattern.fullmatch(norm(line)):
                        return False, f"line {norm(line)!r} on page {i + 1 if test.page is None else test.page}"
        return True, ""
    if test.type == "order":
        whole = norm(" ".join(scope))
        first, second = whole.find(norm(test.before)), whole.find(norm(test.after))
        if first < 0 or second < 0:
            return False, "before not found" if first < 0 else "after not found"
        return first < second, "after comes first"
    a, b = norm(test.a), norm(test.b)
    inside = re.compile(r"(?<!\S)" + re.escape(b) + r"(?!\S)")
    for p in scope:
        for line in p.split("\n"):
            cells = [norm(c) for c in line.split(" | ")]
            for i, cell in enumerate(cells):
                if cell == a and any(inside.search(c) for c in cells[i + 1 :]):
                    return True, ""
    return False, "no row has cell a with cell b to its right"


def load_tests(folder: Path = TESTS_DIR) -> list[PageTest]:
    tests: list[PageTest] = []
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    tests.append(PageTest(**json.loads(line)))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{path.name} line {n}: {exc}") from exc
    seen = Counter(t.id for t in tests)
    dupes = sorted(k for k, c in seen.items() if c > 1)
    if dupes:
        raise ValueError(f"duplicate test ids: {', '.join(dupes[:5])}")
    return tests


def corpus_qa_tests(corpus: Path = SHARED_CORPUS) -> list[PageTest]:
    """The corpus's verbatim evidence quotes from PDFs as present tests (not the quotes read off drawings)."""
    qa = corpus / "qa.jsonl"
    if not qa.is_file():
        return []
    out = []
    for n, line in enumerate(qa.read_text(encoding="utf-8").splitlines(), 1):
        item = json.loads(line) if line.strip() else {}
        kind = item.get("evidence_kind", "")
        if not item.get("source_file", "").endswith(".pdf") or kind == "visual":
            continue
        m = re.match(r"page (\d+)", item.get("locator", ""))
        # a multi-line quote (labels on a schematic) has no single reading order: each of its lines is a test
        parts = [p for p in item["evidence"].split("\n") if p.strip()]
        for k, part in enumerate(parts):
            out.append(PageTest(
                id=f"corpus-qa-{n}" + (f"-{k + 1}" if len(parts) > 1 else ""), doc=f"corpus:{item['source_file']}",
                type="present", text=part, page=int(m.group(1)) if m else None,
                needs="ocr" if "ocr" in kind else "text_layer", source=f"qa.jsonl line {n}",
            ))
    return out


# --------------------------------------------------------------------------------------------
# Tests derived from the sample manuals' HTML sources
# --------------------------------------------------------------------------------------------


class _SourceParser(HTMLParser):
    """Sections of a sample-manual source: their scan flag, headings, paragraphs, listing lines and table rows."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections: list[dict] = []
        self._stack: list[str] = []
        self._buf: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append({"scan": attrs.get("data-scan") == "true", "items": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th", "p", "h1", "h2", "h3", "pre", "li"):
            self._buf = []
        elif tag == "br" and self._buf is not None:
            self._buf.append("\n")
        self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._buf is not None:
            self._row.append(norm("".join(self._buf)))
            self._buf = None
        elif tag == "tr" and self._row is not None:
            if self.sections:
                self.sections[-1]["items"].append(("row", self._row))
            self._row = None
        elif tag in ("p", "h1", "h2", "h3", "pre", "li") and self._buf is not None and self._row is None:
            if self.sections:
                kind = "pre" if tag == "pre" else ("heading" if tag.startswith("h") else "para")
                self.sections[-1]["items"].append((kind, "".join(self._buf)))
            self._buf = None
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data):
        if self._buf is not None:
            self._buf.append(data)


def _snippet(text: str, limit: int = 90) -> str:
    """The first sentence of a paragraph, cut at a word boundary to at most ``limit`` characters."""
    text = norm(text)
    m = re.match(r"(.+?[.:;!?])(\s|$)", text)
    first = m.group(1) if m else text
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0]
    return cut


def sample_manual_tests(sources_dir: Path | None = None) -> list[PageTest]:
    """Tests derived from the sample manuals' sources (exact truth), in a stable order."""
    from c64_pipeline.demo.sample_manuals import DEFAULT_SOURCES_DIR, load_manifest

    sources_dir = sources_dir or DEFAULT_SOURCES_DIR
    _, specs = load_manifest(sources_dir)
    tests: list[PageTest] = []
    for spec in specs:
        if not spec.source.endswith(".html"):
            continue
        parser = _SourceParser()
        parser.feed(spec.source and (sources_dir / spec.source).read_text(encoding="utf-8"))
        doc = f"sample:{spec.output}"
        stem = Path(spec.output).stem
        every = [norm(v) if k != "row" else " ".join(v) for s in parser.sections for k, v in s["items"]]
        blob = "\n".join(every)

        def unique(snippet: str) -> bool:
            return len(snippet) >= 12 and blob.count(snippet) == 1

        n = Counter()

        def add(kind: str, where: str, scan: bool, **fields):
            n[kind] += 1
            needs = "ocr" if spec.kind == "scanned" or scan else "text_layer"
            tests.append(PageTest(id=f"{stem}-{kind}-{n[kind]}", doc=doc, type=kind, needs=needs,
                                  source=f"{spec.source} {where}", **fields))

        header = spec.header or spec.title
        add("absent", "running head", False, text=header)
        add("absent", "page-number footer", False, line_regex=r"Page \d+")
        for si, section in enumerate(parser.sections, 1):
            previous = None
            for ii, (kind, value) in enumerate(section["items"], 1):
                where = f"section {si} item {ii}"
                if kind == "row":
                    cells = value
                    if not cells or not cells[0]:
                        continue
                    for cell in cells[1:]:
                        if cell and cell != cells[0]:
                            add("table", where, section["scan"], a=cells[0], b=cell)
                    previous = None
                    continue
                if kind == "pre":
                    for line in value.split("\n"):
                        if len(norm(line)) >= 8 and blob.count(norm(line)) == 1:
                            add("present", where, section["scan"], text=norm(line))
                    previous = None
                    continue
                snippet = norm(value) if kind == "heading" else _snippet(value)
                if not unique(snippet):
                    previous = None
                    continue
                add("present", where, section["scan"], text=snippet)
                if previous is not None:
                    add("order", where, section["scan"], before=previous, after=snippet)
                previous = snippet
    return tests


def write_sample_tests(path: Path = SAMPLE_TESTS) -> int:
    tests = sample_manual_tests()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(t.as_dict(), ensure_ascii=False) + "\n" for t in tests), encoding="utf-8")
    return len(tests)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _bare_loop(pdfs: list[Path]) -> None:
    for path in pdfs:
        with pymupdf.open(path) as doc:
            for page in doc:
                page.get_text()


def _project_loop(pdfs: list[Path]) -> None:
    from c64_pipeline.extraction import ExtractionSettings, extract_pdf

    for path in pdfs:
        extract_pdf(path.stem, path, ExtractionSettings(), ocr=False)


def _best_of(fn, repeats: int) -> float:
    """Best CPU seconds of ``repeats`` runs (CPU time: the machine may be shared; both loops are single-threaded)."""
    return best_of(fn, repeats, time.process_time)


def throughput(pdfs: list[Path], repeats: int) -> dict:
    """Pages/s of the project's text-layer extraction vs a bare ``get_text()`` loop, same pages, same run."""
    pages = 0
    for path in pdfs:
        with pymupdf.open(path) as doc:
            pages += doc.page_count
    if not pages:
        return {"pdfs": 0, "pages": 0}
    _bare_loop(pdfs[:1])  # warm up both paths (imports, font caches)
    _project_loop(pdfs[:1])
    bare_s = _best_of(lambda: _bare_loop(pdfs), repeats)
    project_s = _best_of(lambda: _project_loop(pdfs), repeats)
    return {
        "pdfs": len(pdfs), "pages": pages,
        "bare_pages_per_s": round(pages / bare_s, 1), "project_pages_per_s": round(pages / project_s, 1),
        "ratio_project_to_bare": round(bare_s / project_s, 3),
    }


def _find_tables_pages(path: Path, strategy: str) -> list[str]:
    """Variant for comparison: tables from ``page.find_tables(strategy=...)`` (cells joined with ' | '), the text
    outside them laid out by the project's ``layout_text``; running heads stripped as in ``extract_pdf``."""
    from c64_pipeline.extraction import ExtractionSettings
    from c64_pipeline.layout import blocks_from_page, layout_text, strip_running_heads

    settings = ExtractionSettings()
    with pymupdf.open(path) as doc:
        blocks, tables, sizes = [], [], []
        for page in doc:
            found = page.find_tables(strategy=strategy).tables
            rects = [pymupdf.Rect(t.bbox) for t in found]
            rows = []
            for t in found:
                for row in t.extract():
                    cells = [" ".join((c or "").split()) for c in row]
                    if any(cells):
                        rows.append(" | ".join(c for c in cells if c))
            tables.append("\n".join(rows))
            blocks.append([
                b for b in blocks_from_page(page)
                if not any(pymupdf.Rect(b.x0, b.y0, b.x1, b.y1).intersects(r) for r in rects)
            ])
            sizes.append((page.rect.width, page.rect.height))
    cleaned = strip_running_heads(blocks, [h for _, h in sizes], settings.header_band, settings.header_min_share)
    return [
        "\n\n".join(x for x in (layout_text(b, w, h), t) if x) for b, t, (w, h) in zip(cleaned, tables, sizes)
    ]


def _docs(tests: list[PageTest], sample_dir: Path, corpus: Path) -> dict[str, Path | None]:
    out: dict[str, Path | None] = {}
    for t in tests:
        if t.doc in out:
            continue
        kind, _, name = t.doc.partition(":")
        path = (sample_dir / name) if kind == "sample" else (corpus / name) if kind == "corpus" else None
        out[t.doc] = path if path is not None and path.is_file() else None
    return out


def score(tests: list[PageTest], texts: dict[str, list[str]], ocr: bool) -> dict:
    """Pass counts by test type, by source ("sample"/"corpus") and overall; failures listed with the reason."""
    by_type = {k: [0, 0] for k in TYPES}
    by_source: dict[str, list[int]] = {}
    by_needs: dict[str, list[int]] = {}  # text-layer pages vs pages that need OCR
    by_needs_type: dict[str, list[int]] = {}
    skipped: Counter[str] = Counter()
    failures = []
    for t in tests:
        if t.doc not in texts:
            skipped["document absent"] += 1
            continue
        if t.needs == "ocr" and not ocr:
            skipped["needs OCR (full mode)"] += 1
            continue
        ok, why = check(t, texts[t.doc])
        src = t.doc.partition(":")[0]
        for bucket in (by_type[t.type], by_source.setdefault(src, [0, 0]), by_needs.setdefault(t.needs, [0, 0]),
                       by_needs_type.setdefault(f"{t.needs}/{t.type}", [0, 0])):
            bucket[0] += ok
            bucket[1] += 1
        if not ok:
            failures.append({"id": t.id, "doc": t.doc, "type": t.type, "why": why})
    passed = sum(v[0] for v in by_type.values())
    total = sum(v[1] for v in by_type.values())

    def rate(p: int, n: int) -> dict:
        return {"passed": p, "tests": n, "rate": round(p / n, 4) if n else None}

    return {
        "by_type": {k: rate(*v) for k, v in by_type.items()},
        "by_source": {k: rate(*v) for k, v in sorted(by_source.items())},
        "by_needs": {k: rate(*v) for k, v in sorted(by_needs.items())},
        "by_needs_and_type": {k: rate(*v) for k, v in sorted(by_needs_type.items())},
        "overall": rate(passed, total),
        "skipped": dict(skipped),
        "failures": failures,
    }


def extract_texts(docs: dict[str, Path | None], ocr: bool) -> tuple[dict[str, list[str]], list[Path]]:
    """Page texts of every present document by the project's extraction; also the PDFs that need no OCR."""
    from c64_pipeline.extraction import ExtractionSettings, extract_pdf, ocr_reason, page_signals

    texts: dict[str, list[str]] = {}
    text_layer: list[Path] = []
    for key, path in docs.items():
        if path is None:
            continue
        texts[key] = [p.text for p in extract_pdf(path.stem, path, ExtractionSettings(), ocr=ocr)]
        settings = ExtractionSettings()
        with pymupdf.open(path) as doc:
            if all(not ocr_reason(page_signals(page, page.get_text(), settings), settings) for page in doc):
                text_layer.append(path)
    return texts, text_layer


def run(quick: bool = False, compare_find_tables: bool = False, sample_dir: Path | None = None,
        corpus: Path = SHARED_CORPUS, repeats: int | None = None) -> dict:
    """Score the project's extraction on every test whose document is at hand; measure throughput beside it."""
    from c64_pipeline.demo.sample_manuals import render_sample_manuals

    tests = load_tests() + corpus_qa_tests(corpus)
    with tempfile.TemporaryDirectory() as tmp:
        if sample_dir is None:
            sample_dir = Path(tmp)
            render_sample_manuals(sample_dir)
        docs = _docs(tests, sample_dir, corpus)
        ocr = not quick
        started = time.perf_counter()
        texts, text_layer_pdfs = extract_texts(docs, ocr)
        results: dict = {
            "mode": "quick" if quick else "full",
            "pymupdf": pymupdf.VersionBind,
            "documents": {k: (str(v) if v else None) for k, v in docs.items()},
            "extraction_s": round(time.perf_counter() - started, 2),
            "project": score(tests, texts, ocr),
            "throughput": throughput(text_layer_pdfs, repeats or (2 if quick else 3)),
        }
        if compare_find_tables:
            keep = {k for k, p in docs.items() if p in text_layer_pdfs}
            subset = [t for t in tests if t.doc in keep and t.needs == "text_layer"]
            results["xycut_on_text_layer_pdfs"] = score(subset, {k: texts[k] for k in keep}, False)
            for strategy in ("lines", "text"):
                started = time.perf_counter()
                variant = {k: _find_tables_pages(docs[k], strategy) for k in keep}  # type: ignore[arg-type]
                pages = sum(len(v) for v in variant.values())
                entry = score(subset, variant, False)
                entry["s_per_page"] = round((time.perf_counter() - started) / max(pages, 1), 3)
                entry["pages"] = pages
                results[f"find_tables_{strategy}"] = entry
    return results


def markdown(results: dict) -> str:
    rows = ["| variant | " + " | ".join(TYPES) + " | overall |", "|---" * (len(TYPES) + 2) + "|"]

    def cell(r: dict) -> str:
        return f"{r['rate']:.1%} ({r['passed']}/{r['tests']})" if r["tests"] else "-"

    variants = [("project (" + results["mode"] + ")", results["project"])]
    variants += [(k, v) for k, v in results.items() if k.startswith(("find_tables_", "xycut_on"))]
    for name, r in variants:
        label = f"{name} ({r['s_per_page']} s/page)" if "s_per_page" in r else name
        rows.append(f"| {label} | " + " | ".join(cell(r["by_type"][k]) for k in TYPES) + f" | {cell(r['overall'])} |")
    for src, r in results["project"]["by_source"].items():
        rows.append(f"\nproject, {src} documents: {cell(r)}")
    for needs, r in results["project"]["by_needs_and_type"].items():
        rows.append(f"project, {needs.replace('/', ' pages, ')} tests: {cell(r)}")
    if results["project"]["skipped"]:
        rows.append("\nskipped: " + ", ".join(f"{v} ({k})" for k, v in results["project"]["skipped"].items()))
    t = results["throughput"]
    if t.get("pages"):
        rows.append(
            f"\nthroughput on {t['pages']} text-layer pages ({t['pdfs']} PDFs): project {t['project_pages_per_s']} "
            f"pages/s, bare get_text() {t['bare_pages_per_s']} pages/s, ratio {t['ratio_project_to_bare']}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="text layers only (no OCR), two timing repeats")
    parser.add_argument("--compare-find-tables", action="store_true",
                        help="also score page.find_tables() tables on the text-layer PDFs (about 1-2 s a page)")
    parser.add_argument("--write-sample-tests", action="store_true",
                        help=f"regenerate {SAMPLE_TESTS.relative_to(PROJECT_ROOT)} from the sample manual sources")
    parser.add_argument("--corpus", type=Path, default=SHARED_CORPUS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--show-failures", type=int, default=15, help="print this many failed tests")
    args = parser.parse_args(argv)
    if args.write_sample_tests:
        print(f"{write_sample_tests()} tests written to {SAMPLE_TESTS}")
        return 0
    results = run(quick=args.quick, compare_find_tables=args.compare_find_tables, corpus=args.corpus)
    print(markdown(results))
    for f in results["project"]["failures"][: args.show_failures]:
        print(f"FAIL {f['id']} ({f['type']}, {f['doc']}): {f['why']}")
    write_json(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
