"""Benchmarks, each a ratio against a bare baseline measured in the same run on the same input.

    python -m bench.run [--manuals DIR] [--quick]

- page extraction: pages/s of `extract_pdf` on text-layer pages vs a bare PyMuPDF `get_text()` loop (CPU time;
  the same function `python -m bench.page_fidelity` reports beside its page-fidelity scores)
- OCR: seconds/page of the project's engines vs the bare engine call on the same page images
  (Tesseract through PyMuPDF; EasyOCR's `readtext`), and one vs two worker processes
- OCR tables and scaling (bench/ocr.py): address rows kept whole and exact hex on the scanned sample pages
  against their source (project vs PyMuPDF's OCR line blocks); two workers across documents vs per document
- chunking: tokens/s of `chunk_documents` vs one bare batch tokenizer call

Inputs: the sample manuals (rendered to a temporary folder) and, when present, ../shared/corpus/pdf.
Results are printed and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pymupdf

from bench.common import best_of
from c64_pipeline.atomic import write_json
from c64_pipeline.extraction import ExtractionSettings, ocr_reason, page_signals
from c64_pipeline.settings import PROJECT_ROOT, shared_corpus_dir

SHARED_PDFS = shared_corpus_dir() / "pdf"


def text_layer_pdfs(folders: list[Path]) -> list[Path]:
    """PDFs whose pages all have a text layer (so extraction does no OCR)."""
    keep = []
    for folder in folders:
        for path in sorted(folder.glob("*.pdf")):
            with pymupdf.open(path) as doc:
                if all(page.get_text().strip() for page in doc):
                    keep.append(path)
    return keep


def scanned_pages(folders: list[Path], limit: int) -> list[tuple[Path, int]]:
    """Pages that the extraction settings would send to OCR."""
    found = []
    for folder in folders:
        for path in sorted(folder.glob("*.pdf")):
            with pymupdf.open(path) as doc:
                for page in doc:
                    if ocr_reason(page_signals(page, page.get_text(), ExtractionSettings()), ExtractionSettings()):
                        found.append((path, page.number))
    return found[:limit]


def bench_extraction(pdfs: list[Path], repeats: int) -> dict:
    """Text-layer extraction vs a bare get_text() loop: the same measurement as bench.page_fidelity reports."""
    from bench.page_fidelity import throughput

    return throughput(pdfs, repeats)


def bench_ocr(pages: list[tuple[Path, int]], engine: str, dpi: int) -> dict:
    import numpy as np

    from c64_pipeline.ocr import _easyocr_reader, find_tessdata, make_ocr_engine

    engine_obj = make_ocr_engine(engine, dpi=dpi)
    tessdata = find_tessdata() if engine == "tesseract" else None

    def bare_call(path: Path, number: int):
        with pymupdf.open(path) as doc:
            page = doc[number]
            if engine == "tesseract":
                tp = page.get_textpage_ocr(dpi=dpi, full=True, language="eng", tessdata=tessdata)
                return page.get_text(textpage=tp)
            pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csRGB, alpha=False)
            return _easyocr_reader().readtext(np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n))

    def project_call(path: Path, number: int):
        with pymupdf.open(path) as doc:
            return engine_obj.page_blocks(doc[number])

    if engine == "easyocr":
        import torch

        torch.set_num_threads(1)  # as the OCR workers run it
    project_call(*pages[0])  # warm up: model load (EasyOCR) is not per-page cost
    bare_cpu = project_cpu = 0.0
    bare_wall = project_wall = 0.0
    for path, number in pages:
        c, w = time.process_time(), time.perf_counter()
        bare_call(path, number)
        bare_cpu += time.process_time() - c
        bare_wall += time.perf_counter() - w
        c, w = time.process_time(), time.perf_counter()
        project_call(path, number)
        project_cpu += time.process_time() - c
        project_wall += time.perf_counter() - w
    n = len(pages)
    return {
        "engine": engine, "pages": n, "dpi": dpi,
        "bare_wall_s_per_page": round(bare_wall / n, 2), "project_wall_s_per_page": round(project_wall / n, 2),
        "bare_cpu_s_per_page": round(bare_cpu / n, 2), "project_cpu_s_per_page": round(project_cpu / n, 2),
        "ratio_project_to_bare": round(bare_wall / project_wall, 3),
    }


def bench_workers(pages: list[tuple[Path, int]]) -> dict:
    from c64_pipeline.ocr import ocr_pages

    by_pdf: dict[Path, list[int]] = {}
    for path, number in pages:
        by_pdf.setdefault(path, []).append(number)

    def run(workers: int) -> float:
        started = time.perf_counter()
        for path, numbers in by_pdf.items():
            ocr_pages(path, numbers, "tesseract", {}, workers=workers)
        return time.perf_counter() - started

    one, two = run(1), run(2)
    return {"pages": len(pages), "one_worker_s": round(one, 2), "two_workers_s": round(two, 2), "speedup": round(one / two, 3)}


def bench_chunking(texts: list[str], repeats: int) -> dict:
    from c64_pipeline.base_model import load_tokenizer
    from c64_pipeline.demo.model import TinyModelSettings, build_demo_model, demo_tokenizer_texts
    from c64_pipeline.chunking import chunk_documents

    with tempfile.TemporaryDirectory() as tmp:
        build_demo_model(Path(tmp) / "m", demo_tokenizer_texts(), TinyModelSettings())
        tokenizer = load_tokenizer(Path(tmp) / "m")
    docs = {f"doc{i}": [(1, t)] for i, t in enumerate(texts)}
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])

    def bare():
        tokenizer(texts, add_special_tokens=False, truncation=True, max_length=2048, stride=128,
                  return_overflowing_tokens=True, return_offsets_mapping=True)

    def project():
        chunk_documents(docs, tokenizer, 2048, 128)

    bare_s, project_s = best_of(bare, repeats), best_of(project, repeats)
    return {
        "documents": len(texts), "tokens": tokens,
        "bare_tokens_per_s": round(tokens / bare_s), "project_tokens_per_s": round(tokens / project_s),
        "ratio_project_to_bare": round(bare_s / project_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manuals", type=Path, help="folder of PDFs (default: render the sample manuals)")
    parser.add_argument("--quick", action="store_true", help="fewer pages and repeats, no EasyOCR")
    parser.add_argument("--easyocr-pages", type=int, default=2, help="EasyOCR costs 25-60 CPU-s a page")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3

    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        if args.manuals:
            folders.append(args.manuals)
        else:
            from c64_pipeline.demo.sample_manuals import render_sample_manuals

            render_sample_manuals(Path(tmp))
            folders.append(Path(tmp))
        if SHARED_PDFS.is_dir():
            folders.append(SHARED_PDFS)

        results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pymupdf": pymupdf.VersionBind}}
        pdfs = text_layer_pdfs(folders)
        results["extraction"] = bench_extraction(pdfs, repeats)
        print("extraction", results["extraction"], flush=True)

        pages = scanned_pages(folders, 4 if args.quick else 8)
        results["ocr_tesseract"] = bench_ocr(pages, "tesseract", 300)
        print("ocr tesseract", results["ocr_tesseract"], flush=True)
        if not args.quick:
            results["ocr_easyocr"] = bench_ocr(pages[: args.easyocr_pages], "easyocr", 200)
            print("ocr easyocr", results["ocr_easyocr"], flush=True)
        results["ocr_workers"] = bench_workers(pages)
        print("ocr workers", results["ocr_workers"], flush=True)
        from bench.ocr import bench_ocr_scaling, bench_ocr_tables, ocr_jobs  # table rows, hex, scaling (bench/ocr.py)

        results["ocr_tables"] = bench_ocr_tables(folders[0], quick=args.quick)
        print("ocr tables", results["ocr_tables"], flush=True)
        results["ocr_scaling"] = bench_ocr_scaling(ocr_jobs(folders, 1 if args.quick else 3))
        print("ocr scaling", results["ocr_scaling"], flush=True)

        texts = []
        for path in pdfs:
            with pymupdf.open(path) as doc:
                texts.append("\n\n".join(page.get_text() for page in doc))
        results["chunking"] = bench_chunking(texts * (1 if args.quick else 4), repeats)
        print("chunking", results["chunking"], flush=True)

    out = PROJECT_ROOT / "bench" / "results" / "latest.json"
    write_json(out, results)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
