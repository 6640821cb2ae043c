"""OCR benchmarks: table rows and hex on scanned pages, and worker scaling across documents.

    python -m bench.ocr [--manuals DIR] [--quick]

Table fidelity (``bench_ocr_tables``): every scanned page of the sample manuals is OCR'd with Tesseract and read
two ways:

- *baseline*: PyMuPDF's line blocks of the OCR text page (``blocks_from_page(..., "lines")``), no hex repair;
- *project*: ``TesseractEngine``'s blocks (the page straightened and cleared of table rules before OCR,
  ``scan_prep``; word boxes cut into cells and rows, cells that do not fit their number/hex column read again with
  the column's alphabet, ``cell_reread``; hex repaired where the context proves it).

Both go through ``strip_running_heads`` and ``layout_text`` and are compared with the truth: the same pages
rendered digitally from ``c64_pipeline/demo/sample_sources/*.html`` (``sample_manuals.layout_body``, so the page numbers
match). Measured per variant:

- rows kept whole: address rows of the source tables whose address and start of description sit on one line;
- rows with all cells: the line starts with every cell of the row before the description, joined by " | ";
- hex exact: ``$XXXX``/``$XX`` tokens of the truth page found exactly in the OCR text of that page (multiset);
- repairs: hex tokens repaired, and cells re-read (project only).

On the shared corpus (when present) the memory-map scan is measured against the 32 ranges it shows.

Worker scaling (``bench_ocr_scaling``): the same OCR pages of several documents, (a) one worker, (b) one pool of
two workers per document (``ocr_pages``, as ``extract_document`` does), (c) one pool of two workers for all
documents (``ocr_many``), (d) two independent one-worker processes side by side, each with half the pages (no
pool). Ratios against (a) in the same run; the CPU seconds of each way, and of starting a pool of two workers
alone (the fixed cost per pool). ``--per-document N`` takes up to N pages per document (a larger batch),
``--scaling-only`` skips the table run.
"""

from __future__ import annotations

import argparse
import html as htmlmod
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from bench.common import sample_manuals_or
from c64_pipeline.ingest.layout import blocks_from_page, layout_text, strip_running_heads
from c64_pipeline.ingest.ocr import (
    TesseractEngine,
    find_tessdata,
    ocr_many,
    ocr_pages,
    ocr_repairs,
    ocr_rereads,
    safe_dpi,
)
from c64_pipeline.demo.sample_manuals import DEFAULT_SOURCES_DIR, load_manifest, layout_body, parse_sections
from c64_pipeline.settings import shared_corpus_dir

SHARED_PDFS = shared_corpus_dir() / "pdf"
HEX_TOKEN = re.compile(r"\$[0-9A-F]{4}\b|\$[0-9A-F]{2}\b")
MEMMAP = "danbolt_c64_memmap_diagram.pdf"
# What the memory-map diagram shows (read off the image): sixteen 4K blocks, the sixteen pages of the I/O area,
# and the labels that sit on the same row as their range.
MEMMAP_RANGES = [f"{i:X}000-{i:X}FFF" for i in range(16)] + [f"D{i:X}00-D{i:X}FF" for i in range(16)]
MEMMAP_ROWS = [("I/O 2", "DF00-DFFF"), ("I/O 1", "DE00-DEFF"), ("CIA 2", "DD00-DDFF"), ("CIA 1", "DC00-DCFF")]
# The labels of its boxes, light letters on orange, brown and gray fills.
MEMMAP_LABELS = ["CART ROM HI", "CART ROM LO", "RAM", "KERNAL ROM", "CHAR ROM", "BASIC ROM", "I/O", "I/O 1", "I/O 2",
                 "CIA 1", "CIA 2", "COLOR RAM", "SID", "VIC II"]


def _cells(row_html: str) -> list[str]:
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row_html, re.S)
    return [" ".join(htmlmod.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells]


def _alnum(text: str) -> str:
    return "".join(re.findall(r"[a-z0-9]+", text.lower()))


def _fold(text: str) -> str:
    """Alphanumerics with the OCR lookalikes folded (I/l/1, O/0), for comparing labels such as "I/O 2"."""
    return _alnum(text).translate(str.maketrans({"i": "1", "l": "1", "o": "0"}))


@dataclass
class TruthPage:
    pdf: Path
    page: int  # 0-based
    rows: list[list[str]]  # address rows (first cell $XXXX) whose cells are on this page
    hexes: Counter


def sample_truth(manuals_dir: Path, sources_dir: Path = DEFAULT_SOURCES_DIR) -> list[TruthPage]:
    """The scanned pages of the rendered sample manuals, each with the address rows and hex tokens it shows."""
    manifest, specs = load_manifest(sources_dir)
    css = (sources_dir / manifest.get("css", "manual.css")).read_text(encoding="utf-8")
    page_size = tuple(manifest.get("page_size", (504.0, 684.0)))
    out = []
    for spec in specs:
        if spec.kind not in ("scanned", "mixed") or not (manuals_dir / spec.output).is_file():
            continue
        source = (sources_dir / spec.source).read_text(encoding="utf-8")
        sections = parse_sections(source)
        cells = [_cells(tr) for tr in re.findall(r"<tr>(.*?)</tr>", source, re.S)]
        rows = [c for c in cells if c and re.fullmatch(r"\$[0-9A-F]{4}", c[0])]
        body, scan_flags = layout_body(sections, css, page_size)
        with pymupdf.open("pdf", body) as twin:
            for n, page in enumerate(twin):
                if not (spec.kind == "scanned" or scan_flags[n]):
                    continue
                text = page.get_text()
                words = set(text.split())
                page_rows = [r for r in rows if all(cell in words for cell in r[:2]) and r[2].split()[0] in words]
                out.append(TruthPage(manuals_dir / spec.output, n, page_rows, Counter(HEX_TOKEN.findall(text))))
    return out


def rows_kept_whole(text: str, rows: list[list[str]]) -> tuple[int, int]:
    lines = text.splitlines()
    whole = cells = 0
    for row in rows:
        address, description = row[0], _alnum(row[-1])[:10]
        whole += any(address in line and description in _alnum(line[line.find(address):]) for line in lines)
        cells += any(line.startswith(" | ".join(row[:-1]) + " | ") for line in lines)
    return whole, cells


def hex_exact(text: str, truth: Counter) -> int:
    return sum((Counter(HEX_TOKEN.findall(text)) & truth).values())


def _ocr_both(pdf: Path, pages: list[int], dpi: int) -> tuple[dict, dict, dict]:
    """Each page read the baseline way (PyMuPDF's OCR of the page as it is) and the project way (the engine's OCR of
    the page straightened and cleared of rules): two Tesseract runs per page."""
    engine = TesseractEngine(dpi=dpi)
    tessdata = find_tessdata()
    base, project, sizes = {}, {}, {}
    with pymupdf.open(pdf) as doc:
        for n in pages:
            page = doc[n]
            tp = page.get_textpage_ocr(
                flags=pymupdf.TEXTFLAGS_TEXT, dpi=safe_dpi(page, engine.dpi), full=True,
                language=engine.language, tessdata=tessdata,
            )
            base[n] = blocks_from_page(page, textpage=tp, granularity="lines", drop_specks=True)
            project[n] = engine.page_blocks(page)  # as extraction reads it: with the cell re-reads
            sizes[n] = (page.rect.width, page.rect.height)
    return base, project, sizes


def _texts(blocks: dict, sizes: dict) -> dict[int, str]:
    order = sorted(blocks)
    cleaned = strip_running_heads([blocks[n] for n in order], [sizes[n][1] for n in order])
    return {n: layout_text(b, *sizes[n]) for n, b in zip(order, cleaned)}


def _score(texts: dict[int, str], truth: list[TruthPage]) -> dict:
    rows = sum(len(t.rows) for t in truth)
    hexes = sum(sum(t.hexes.values()) for t in truth)
    whole = cells = exact = 0
    for t in truth:
        w, c = rows_kept_whole(texts[t.page], t.rows)
        whole, cells, exact = whole + w, cells + c, exact + hex_exact(texts[t.page], t.hexes)
    return {
        "address_rows": rows, "rows_kept_whole": whole, "rows_with_all_cells": cells, "hex_tokens": hexes,
        "hex_exact": exact,
        "share_rows_kept_whole": round(whole / rows, 3) if rows else None,
        "share_rows_with_all_cells": round(cells / rows, 3) if rows else None,
        "share_hex_exact": round(exact / hexes, 3) if hexes else None,
    }


def bench_ocr_tables(manuals_dir: Path, quick: bool = False, dpi: int = 300) -> dict:
    truth = sample_truth(manuals_dir)
    if quick:  # the pages with the most address rows (the register tables)
        truth = sorted(truth, key=lambda t: -len(t.rows))[:3]
    by_pdf: dict[Path, list[TruthPage]] = {}
    for t in truth:
        by_pdf.setdefault(t.pdf, []).append(t)
    totals: dict[str, dict] = {"baseline": {}, "project": {}}
    repairs = rereads = 0
    texts_all: dict[str, dict] = {"baseline": {}, "project": {}}
    for pdf, pages in by_pdf.items():
        base, project, sizes = _ocr_both(pdf, [t.page for t in pages], dpi)
        repairs += sum(ocr_repairs(b) for b in project.values())
        rereads += sum(ocr_rereads(b) for b in project.values())
        for name, blocks in (("baseline", base), ("project", project)):
            texts = _texts(blocks, sizes)
            texts_all[name].update({(pdf.name, n): t for n, t in texts.items()})
            for key, value in _score(texts, pages).items():
                if not key.startswith("share_"):
                    totals[name][key] = totals[name].get(key, 0) + value
    for t in totals.values():
        for share, part, whole in (
            ("share_rows_kept_whole", "rows_kept_whole", "address_rows"),
            ("share_rows_with_all_cells", "rows_with_all_cells", "address_rows"),
            ("share_hex_exact", "hex_exact", "hex_tokens"),
        ):
            t[share] = round(t[part] / t[whole], 3) if t.get(whole) else None
    totals["project"]["hex_repairs"] = repairs
    totals["project"]["cell_rereads"] = rereads
    result = {"pages": len(truth), "dpi": dpi, **totals}
    memmap = SHARED_PDFS / MEMMAP
    if memmap.is_file():
        base, project, sizes = _ocr_both(memmap, [0], dpi)
        result["corpus_memmap"] = {}
        for name, blocks in (("baseline", base), ("project", project)):
            text = _texts(blocks, sizes)[0]
            found = Counter(re.findall(r"\b[0-9A-F]{4}-[0-9A-F]{4}\b", text))
            lines = [line for line in text.splitlines() if " | " in line]
            rows = sum(
                any(_fold(label) == _fold(line.split(" | ")[0]) and rng in line for line in lines)
                for label, rng in MEMMAP_ROWS
            )
            words = f" {' '.join(f for f in map(_fold, text.split()) if f)} "
            result["corpus_memmap"][name] = {
                "ranges": len(MEMMAP_RANGES), "ranges_exact": sum((found & Counter(MEMMAP_RANGES)).values()),
                "labelled_rows": len(MEMMAP_ROWS), "labelled_rows_whole": rows,
                "labels": len(MEMMAP_LABELS),
                "labels_read": sum(f" {' '.join(_fold(w) for w in label.split())} " in words for label in MEMMAP_LABELS),
            }
    return result


def ocr_jobs(folders: list[Path], per_document: int) -> list[tuple[Path, list[int]]]:
    """Up to ``per_document`` image-only pages of every PDF in the folders that has some."""
    jobs = []
    for folder in folders:
        for path in sorted(folder.glob("*.pdf")):
            with pymupdf.open(path) as doc:
                pages = [p.number for p in doc if not p.get_text().strip()][:per_document]
            if pages:
                jobs.append((path, pages))
    return jobs


def worker_startup_cpu(workers: int = 2, engine_name: str = "tesseract", options: dict | None = None) -> float:
    """CPU seconds (this process plus its children) of starting and stopping a pool of ``workers`` OCR workers
    that read no page: interpreter start, imports and engine build, which every pool pays once per worker."""
    import resource
    from concurrent.futures import ProcessPoolExecutor

    from c64_pipeline.ingest.ocr_worker import WorkerContext, worker_init

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    used = cpu()
    with ProcessPoolExecutor(workers, mp_context=WorkerContext(), initializer=worker_init,
                             initargs=(os.getpid(), engine_name, dict(options or {}))) as pool:
        for future in [pool.submit(os.getpid) for _ in range(workers)]:  # one task a worker: each one starts
            future.result()
    return cpu() - used


def side_by_side(jobs: list[tuple[Path, list[int]]], options: dict, processes: int = 2) -> None:
    """The pages OCR'd by ``processes`` independent one-worker processes run at the same time, the pages dealt
    out in turn as a pool's workers would take them: the work two OCR processes cost on this machine without any
    pool, the reference for what the pool itself adds."""
    import subprocess
    import sys

    order = [(str(path), n) for path, pages in jobs for n in pages]
    code = (  # without the modules OCR does not use, as a pool worker (ocr_worker.worker_init)
        "import json, sys; sys.modules['pymupdf.layout'] = sys.modules['pymupdf4llm'] = None; "
        "from c64_pipeline.ingest.ocr import ocr_many; "
        "ocr_many([(p, [n]) for p, n in json.loads(sys.argv[1])], 'tesseract', json.loads(sys.argv[2]), workers=1)"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    running = [
        subprocess.Popen([sys.executable, "-c", code, json.dumps(order[k::processes]), json.dumps(options)], env=env)
        for k in range(processes)
    ]
    for proc in running:
        if proc.wait() != 0:
            raise RuntimeError(f"a side-by-side OCR process failed ({proc.returncode})")


def bench_ocr_scaling(jobs: list[tuple[Path, list[int]]], dpi: int = 150) -> dict:
    """Wall time and CPU time (this process plus its worker processes) of the four ways to OCR the same pages.

    On a shared machine the wall-time speed-ups say little (two workers only help when two cores are free); the
    CPU seconds show what each way costs in work, e.g. the worker start-ups a pool per document pays again and
    again. The start-up of a pool of two workers that read no page is measured on its own
    (``pool_startup_cpu_s``): a fixed cost per pool, whatever the number of pages. The same pages OCR'd by two
    independent processes at once (``side_by_side``) show what two OCR processes cost side by side without a pool."""
    import resource

    options = {"dpi": dpi}

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def timed(fn) -> tuple[float, float]:
        wall, used = time.perf_counter(), cpu()
        fn()
        return time.perf_counter() - wall, cpu() - used

    startup = worker_startup_cpu(2, "tesseract", options)
    one, one_cpu = timed(lambda: ocr_many(jobs, "tesseract", options, workers=1))
    per_doc, per_doc_cpu = timed(
        lambda: [ocr_pages(path, pages, "tesseract", options, workers=2) for path, pages in jobs]
    )
    pooled, pooled_cpu = timed(lambda: ocr_many(jobs, "tesseract", options, workers=2))
    apart, apart_cpu = timed(lambda: side_by_side(jobs, options))
    return {
        "documents": len(jobs), "pages": sum(len(p) for _, p in jobs), "dpi": dpi,
        "one_worker_s": round(one, 2), "two_workers_pool_per_document_s": round(per_doc, 2),
        "two_workers_one_pool_s": round(pooled, 2),
        "speedup_pool_per_document": round(one / per_doc, 3), "speedup_one_pool": round(one / pooled, 3),
        "one_worker_cpu_s": round(one_cpu, 2), "pool_per_document_cpu_s": round(per_doc_cpu, 2),
        "one_pool_cpu_s": round(pooled_cpu, 2), "pool_startup_cpu_s": round(startup, 2),
        # the work one pool adds to one worker's, and the share of it that is the pool's start-up
        "one_pool_extra_cpu_s": round(pooled_cpu - one_cpu, 2),
        # two independent one-worker processes at once (their start and imports included, ~0.25 CPU-s each as for a
        # pool worker): what running two OCR processes side by side costs on this machine, pool or not
        "two_processes_side_by_side_s": round(apart, 2), "two_processes_side_by_side_cpu_s": round(apart_cpu, 2),
        "speedup_side_by_side": round(one / apart, 3),
        "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manuals", type=Path, help="rendered sample manuals (default: render them to a temp folder)")
    parser.add_argument("--quick", action="store_true", help="only the three pages with the most address rows")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--per-document", type=int, default=None,
                        help="image-only pages per document in the scaling run (default 3, 1 with --quick)")
    parser.add_argument("--scaling-only", action="store_true", help="skip the table fidelity run")
    args = parser.parse_args(argv)
    with sample_manuals_or(args.manuals) as manuals:
        results = {}
        if not args.scaling_only:
            results["ocr_tables"] = bench_ocr_tables(manuals, quick=args.quick)
            print("ocr tables", json.dumps(results["ocr_tables"]), flush=True)
        folders = [manuals] + ([SHARED_PDFS] if SHARED_PDFS.is_dir() else [])
        jobs = ocr_jobs(folders, args.per_document or (1 if args.quick else 3))
        results["ocr_scaling"] = bench_ocr_scaling(jobs)
        print("ocr scaling", json.dumps(results["ocr_scaling"]), flush=True)
    if args.out:
        from c64_pipeline.atomic import write_json

        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
