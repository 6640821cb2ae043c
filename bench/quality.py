"""Calibration of the page-quality score (`c64_pipeline.readability`) on real pages and their corruptions.

    python -m bench.quality [--manuals DIR] [--seed N]

Real pages: the text layers of the sample manuals (rendered to a temporary folder unless --manuals is given), the
sample sources (Markdown), and, when present, ../shared/corpus (text files and PDF text layers). Garbage: the same
pages with random character substitutions (20/30/40%) and with OCR-like confusions (o/0, l/1, rn/m, e/c, S/5...,
case flips, lost spaces). Printed: score distribution of the real pages, and for each corruption the median score
and the share of pages below the OCR threshold (`ExtractionSettings.min_quality`); then the score's throughput as a
ratio of a bare `str.split()` pass over the same text, measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time
from pathlib import Path

import pymupdf

from bench.common import sample_manuals_or
from c64_pipeline.extraction import ExtractionSettings
from c64_pipeline.layout import blocks_from_page
from c64_pipeline.readability import readability
from c64_pipeline.settings import shared_corpus_dir
from c64_pipeline.text_sources import read_text_pages

SHARED = shared_corpus_dir()
PRINTABLE = string.ascii_letters + string.digits + string.punctuation
CONFUSIONS = {"o": "0", "O": "0", "0": "O", "l": "1", "1": "l", "I": "l", "e": "c", "S": "5", "5": "S", "B": "8",
              "a": "o", "h": "b", "u": "v", "n": "ri", "m": "rn", "i": "l", "t": "f", "c": "e", "D": "O", "$": "S",
              "r": "n", "g": "q", "E": "F", "d": "cl", "w": "vv", "y": "v"}
MIN_CHARS = 40


def substitute(text: str, rate: float, rng: random.Random) -> str:
    """Random character substitutions, as a corrupted text layer has them."""
    return "".join(rng.choice(PRINTABLE) if not c.isspace() and rng.random() < rate else c for c in text)


def ocr_confusions(text: str, rate: float, rng: random.Random) -> str:
    """OCR-like misreads: o/0, l/1, rn/m, e/c, S/5..., case flips and lost spaces."""
    out = []
    for c in text:
        if c in CONFUSIONS and rng.random() < rate:
            out.append(CONFUSIONS[c])
        elif c.isalpha() and rng.random() < rate / 4:
            out.append(c.swapcase())
        elif c != " " or rng.random() >= rate / 3:
            out.append(c)
    return "".join(out)


def pdf_pages(path: Path) -> list[str]:
    """The raw text layer of each page, as the OCR decision sees it."""
    with pymupdf.open(path) as doc:
        texts = ["\n".join(b.text for b in blocks_from_page(page, textpage=page.get_textpage())) for page in doc]
    return [t for t in texts if len(t.strip()) >= MIN_CHARS]


def text_pages(path: Path) -> list[str]:
    kind = {".md": "md", ".html": "html", ".htm": "html"}.get(path.suffix.lower(), "txt")
    return [t for t in read_text_pages(path, kind) if len(t.strip()) >= MIN_CHARS]


def real_pages(manuals: Path) -> dict[str, list[str]]:
    groups = {
        "sample manuals (PDF text layers)": [t for p in sorted(manuals.glob("*.pdf")) for t in pdf_pages(p)],
        "sample manuals (Markdown)": [t for p in sorted(manuals.glob("*.md")) for t in text_pages(p)],
    }
    if SHARED.is_dir():
        groups["shared corpus (text files)"] = [t for p in sorted((SHARED / "text").iterdir()) for t in text_pages(p)]
        groups["shared corpus (PDF text layers)"] = [t for p in sorted((SHARED / "pdf").glob("*.pdf")) for t in pdf_pages(p)]
    return groups


def calibrate(manuals: Path, seed: int = 1) -> dict:
    threshold = ExtractionSettings().min_quality
    groups = real_pages(manuals)
    pages = [t for texts in groups.values() for t in texts]
    result: dict = {"threshold": threshold, "real": {}, "corrupted": {}}
    for name, texts in groups.items():
        scores = sorted(readability(t) for t in texts)
        result["real"][name] = {"pages": len(scores), "min": scores[0], "p5": scores[len(scores) // 20],
                                "median": statistics.median(scores)} if scores else {"pages": 0}
    rng = random.Random(seed)
    for corrupt in (substitute, ocr_confusions):
        for rate in (0.2, 0.3, 0.4):
            scores = [readability(corrupt(t, rate, rng)) for t in pages]
            result["corrupted"][f"{corrupt.__name__} {rate:.0%}"] = {
                "median": statistics.median(scores),
                "below_threshold": round(sum(s < threshold for s in scores) / len(scores), 3),
            }
    started = time.perf_counter()
    for t in pages:
        t.split()
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for t in pages:
        readability(t)
    scored = time.perf_counter() - started
    result["throughput"] = {"pages": len(pages), "chars": sum(map(len, pages)),
                            "pages_per_s": round(len(pages) / scored), "ratio_to_bare_split": round(bare / scored, 3)}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manuals", type=Path, help="rendered sample manuals (default: render to a temporary folder)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with sample_manuals_or(args.manuals) as manuals:
        result = calibrate(manuals, args.seed)
    print(f"OCR threshold (min_quality): {result['threshold']}")
    for name, r in result["real"].items():
        if r["pages"]:
            print(f"real  {name}: {r['pages']} pages, min {r['min']:.3f}, p5 {r['p5']:.3f}, median {r['median']:.3f}")
    for name, r in result["corrupted"].items():
        print(f"garbage  {name}: median {r['median']:.3f}, below threshold {r['below_threshold']:.0%}")
    t = result["throughput"]
    print(f"speed: {t['pages_per_s']} pages/s over {t['chars']} characters ({t['ratio_to_bare_split']}x a bare str.split())")
    return result


if __name__ == "__main__":
    main()
