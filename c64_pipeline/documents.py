"""Find source documents and vouch for them: identity, kind, size, hash, page count, or why they are rejected."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pymupdf

from c64_pipeline.text_sources import read_text_pages

KINDS = {".pdf": "pdf", ".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}
MAX_PDF_PAGES = 5000  # guards against hostile files that claim absurd page counts


class DocumentRejected(Exception):
    """A source document that cannot be read; the message names the file and the reason."""


@dataclass(frozen=True)
class SourceDocument:
    doc_id: str
    file_name: str
    path: str
    kind: str
    sha256: str
    size_bytes: int
    pages: int
    status: str = "ok"  # "ok" or "rejected"
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def slugify(file_name: str) -> str:
    """A partition key safe for the Dagster UI: lower-case letters, digits, '-' and '_' only."""
    slug = re.sub(r"[^a-z0-9_]+", "-", file_name.lower()).strip("-")
    return slug or "document"


def discover_documents(folder: Path) -> dict[str, Path]:
    """Map partition key -> file for every supported document directly in `folder` (hidden files skipped)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in KINDS:
            continue
        key = slugify(path.name)
        if key in found:  # two names that slug alike ("A b.pdf", "a-b.pdf"): keep both, apart
            key = f"{key}-{hashlib.sha256(path.name.encode()).hexdigest()[:6]}"
        found[key] = path
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_pdf(path: Path) -> pymupdf.Document:
    """Open a PDF or raise DocumentRejected with a reason a person can act on."""
    size = path.stat().st_size
    if size == 0:
        raise DocumentRejected(f"{path.name}: empty file (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        shown = head[:16].decode("latin-1", errors="replace").encode("unicode_escape").decode()
        raise DocumentRejected(f"{path.name}: not a PDF (the file starts with {shown!r}, not %PDF-)")
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # MuPDF reports damage with several exception types
        raise DocumentRejected(f"{path.name}: corrupt PDF that cannot be opened ({exc})") from exc
    if doc.needs_pass or doc.is_encrypted:
        doc.close()
        raise DocumentRejected(f"{path.name}: encrypted PDF (a password is required to read it)")
    with path.open("rb") as fh:
        fh.seek(max(0, size - 2048))
        tail = fh.read()
    if b"%%EOF" not in tail and doc.is_repaired:
        doc.close()
        raise DocumentRejected(f"{path.name}: truncated PDF (no end-of-file marker and a damaged cross-reference table)")
    if doc.page_count == 0:
        doc.close()
        raise DocumentRejected(f"{path.name}: PDF has no pages (truncated or damaged)")
    if doc.page_count > MAX_PDF_PAGES:
        doc.close()
        raise DocumentRejected(f"{path.name}: PDF claims {doc.page_count} pages, over the limit of {MAX_PDF_PAGES}")
    return doc


def inspect_document(doc_id: str, path: Path) -> SourceDocument:
    """Identity of one source file; a file that cannot be read comes back with status 'rejected' and the reason."""
    kind = KINDS.get(path.suffix.lower(), "unknown")
    size = path.stat().st_size
    digest = sha256_of(path)
    base = dict(doc_id=doc_id, file_name=path.name, path=str(path), kind=kind, sha256=digest, size_bytes=size)
    try:
        if kind == "pdf":
            with open_pdf(path) as doc:
                pages = doc.page_count
        else:
            if size == 0:
                raise DocumentRejected(f"{path.name}: empty file (0 bytes)")
            if kind == "unknown":
                raise DocumentRejected(f"{path.name}: unsupported file type (expected {', '.join(sorted(KINDS))})")
            pages = len(read_text_pages(path, kind))
    except DocumentRejected as exc:
        return SourceDocument(**base, pages=0, status="rejected", error=str(exc))
    return SourceDocument(**base, pages=pages)
