"""Find source documents and vouch for them: identity, kind, size, hash, page count, or why they are rejected."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from c64_pipeline.ingest.text_sources import read_text_pages
from c64_pipeline.records import Record

KINDS = {".pdf": "pdf", ".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}
MAX_PDF_PAGES = 5000  # guards against hostile files that claim absurd page counts
# Text, Markdown and HTML files are read whole (decoded, split into pages, tokenized), so memory grows with their
# size; larger ones are rejected with a reason. The worst case is one enormous word (no whitespace): the tokenizer
# needs about 175 bytes a character for it (8 MB took 1.4 GB), so 10 MB stays under 2 GB. Ordinary prose costs a
# fraction of that; the largest C64 references as text are around 1 MB.
MAX_TEXT_BYTES = 10 * 1024 * 1024


class DocumentRejected(Exception):
    """A source document that cannot be read; the message names the file and the reason."""


@dataclass(frozen=True)
class SourceDocument(Record):
    """One source document as `raw_pdfs` vouches for it: identity, kind, size, hash, pages, or why it is rejected."""

    doc_id: str
    file_name: str
    path: str
    kind: str
    sha256: str
    size_bytes: int
    pages: int
    status: str = "ok"  # "ok" or "rejected"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def slugify(file_name: str) -> str:
    """A partition key safe for the Dagster UI: lower-case letters, digits, '-' and '_' only."""
    slug = re.sub(r"[^a-z0-9_]+", "-", file_name.lower()).strip("-")
    return slug or "document"


# A name whose slug is its own: lower-case letters, digits and '_' in '-'-separated words, one dot, then a supported
# suffix ("c64_memory_map.pdf", "sound-io.html"). Its slug ends in the suffix, which no hexadecimal hash can be.
CANONICAL_NAME = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*\.(?:" + "|".join(sorted(s[1:] for s in KINDS)) + ")")
MAX_KEY_CHARS = 96  # keys name the interim files (<key>.json) and fill UI columns; file names may be 255 bytes
NAME_HASH_CHARS = 10


def partition_key(file_name: str) -> str:
    """The document's partition key (and doc id), a function of its file name alone: a key never passes to another
    file when a sibling comes or goes, so the split ledger keeps each document where it was.

    A name in canonical form keeps its plain slug ("c64_memory_map.pdf" -> "c64_memory_map-pdf"); any other name
    ("A b.txt", "a..b.txt", a name too long for a key) gets its slug plus a hash of the exact name, which ends the
    key in hexadecimal where a canonical key ends in its suffix, so two names never share a key."""
    slug = slugify(file_name)
    if CANONICAL_NAME.fullmatch(file_name) and len(slug) <= MAX_KEY_CHARS:
        return slug
    digest = hashlib.sha256(os.fsencode(file_name)).hexdigest()[:NAME_HASH_CHARS]
    return f"{slug[: MAX_KEY_CHARS - NAME_HASH_CHARS - 1].rstrip('-')}-{digest}"


def discover_documents(folder: Path) -> dict[str, Path]:
    """Map partition key -> path for every entry directly in `folder` with a supported suffix (hidden names
    skipped). Entries that are not regular files (symbolic links, FIFOs, devices, directories) are listed too, so
    that they are rejected with a reason in the report rather than skipped unseen; nothing here opens them."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in KINDS:
            continue
        found[partition_key(path.name)] = path
    return found


_ENTRY_TYPES = (
    (stat.S_ISLNK, "a symbolic link, which is not followed"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_regular_file(path: Path) -> str | None:
    """Why `path` must not be read, or None for a regular file. Only `lstat` is used: a symbolic link is never
    followed (it may point outside the manuals folder) and a FIFO is never opened (reading it blocks)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None  # gone: reading it reports that
    if stat.S_ISREG(mode):
        return None
    what = next((text for test, text in _ENTRY_TYPES if test(mode)), "not a regular file")
    return f"{path.name}: {what}, not a regular file (only regular files inside the manuals folder are read)"


def entry_fingerprint(path: Path) -> str:
    """What a change detector compares with the sha256 that inspect_document recorded: the content hash of a regular
    file, "" for any other entry (never opened; inspect_document records "" for it too), or why it could not be
    hashed (a file that went away or cannot be opened meanwhile; reading it then reports the reason)."""
    try:
        mode = os.lstat(path).st_mode
        return sha256_of(path) if stat.S_ISREG(mode) else ""
    except DocumentRejected:
        return ""
    except OSError as exc:
        return f"unreadable:{exc.errno}"


def sha256_of(path: Path) -> str:
    # O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a FIFO since it was checked is refused, not followed
    # or waited on
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise DocumentRejected(f"{path.name}: not a regular file (only regular files are read)")
        digest = hashlib.sha256()
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
        pages = doc.page_count  # read before closing: a closed document has no page count
        doc.close()
        raise DocumentRejected(f"{path.name}: PDF claims {pages} pages, over the limit of {MAX_PDF_PAGES}")
    return doc


def check_text_size(path: Path, size: int) -> None:
    """Reject a text-like file too large to read whole (MAX_TEXT_BYTES)."""
    if size > MAX_TEXT_BYTES:
        raise DocumentRejected(
            f"{path.name}: text file of {size / 2**20:.1f} MB is over the size limit of {MAX_TEXT_BYTES / 2**20:.0f} MB "
            "for text, Markdown and HTML files (split it into smaller files)"
        )


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """The rejection message for a file that failed with an exception other than DocumentRejected."""
    if isinstance(exc, DocumentRejected):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{path.name}: the file vanished while it was being read (removed or renamed during the run)"
    if isinstance(exc, OSError):
        return f"{path.name}: the file cannot be read ({exc.strerror or exc})"
    return f"{path.name}: unexpected error while reading it ({type(exc).__name__}: {exc})"


def rejected_document(doc_id: str, path: Path, reason: str) -> SourceDocument:
    """The record of a file that could not even be hashed (vanished, unreadable)."""
    kind = KINDS.get(path.suffix.lower(), "unknown")
    return SourceDocument(doc_id=doc_id, file_name=path.name, path=str(path), kind=kind, sha256="", size_bytes=0,
                          pages=0, status="rejected", error=reason)


def inspect_document(doc_id: str, path: Path) -> SourceDocument:
    """Identity of one source file; a file that cannot be read comes back with status 'rejected' and the reason."""
    kind = KINDS.get(path.suffix.lower(), "unknown")
    special = not_a_regular_file(path)  # before anything opens or follows it
    if special is not None:
        return SourceDocument(doc_id=doc_id, file_name=path.name, path=str(path), kind=kind, sha256="", size_bytes=0,
                              pages=0, status="rejected", error=special)
    try:
        size = path.stat().st_size
        digest = sha256_of(path)
    except OSError as exc:  # vanished or unreadable since it was discovered
        return rejected_document(doc_id, path, unreadable_reason(path, exc))
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
            check_text_size(path, size)
            pages = len(read_text_pages(path, kind))
    except DocumentRejected as exc:
        return SourceDocument(**base, pages=0, status="rejected", error=str(exc))
    except OSError as exc:  # vanished or became unreadable between hashing and reading
        return SourceDocument(**base, pages=0, status="rejected", error=unreadable_reason(path, exc))
    return SourceDocument(**base, pages=pages)
