"""Per-document assets: one dynamic partition per file in the manuals folder. A run may cover one partition or
many (a single-run backfill, as the new-manuals sensor requests for a batch of new files)."""

import time
from collections import Counter
from pathlib import Path

from dagster import AssetExecutionContext, BackfillPolicy, MetadataValue, Output, asset

from c64_pipeline.ingest.documents import (
    DocumentRejected, SourceDocument, discover_documents, inspect_document, rejected_document, unreadable_reason,
)
from c64_pipeline.ingest.extraction import DocumentText, extract_document, extract_pdfs
from c64_pipeline.defs.partitions import manual_partitions
from c64_pipeline.defs.resources import PageReader, PipelinePaths

BATCHED = BackfillPolicy.single_run()


def _one_or_many(context: AssetExecutionContext, values: dict) -> dict:
    """What the IO manager stores: the value itself for one partition, {partition: value} for several."""
    return values if len(context.partition_keys) > 1 else values[context.partition_key]


def _by_partition(context: AssetExecutionContext, upstream):
    return upstream if len(context.partition_keys) > 1 else {context.partition_key: upstream}


@asset(
    partitions_def=manual_partitions,
    backfill_policy=BATCHED,
    group_name="ingest",
    description="One source document (PDF, text, Markdown or HTML) from the manuals folder: hash, size, kind, "
    "page count, or the reason it cannot be read.",
)
def raw_pdfs(context: AssetExecutionContext, paths: PipelinePaths) -> Output:
    files = discover_documents(Path(paths.manuals_dir))
    records = {key: _inspect(context, key, files.get(key), Path(paths.manuals_dir)) for key in context.partition_keys}
    for record in records.values():
        if not record.ok:
            context.log.error(f"rejected {record.file_name}: {record.error}")
    metadata = {
        "documents": len(records),
        "rejected": sum(not r.ok for r in records.values()),
        "pages": sum(r.pages for r in records.values()),
        # one materialization event per partition carries this same metadata, so hashes are keyed by partition
        "sha256_by_partition": MetadataValue.json({k: r.sha256 for k, r in records.items()}),
    }
    if len(records) == 1:
        (record,) = records.values()
        metadata.update(file_name=record.file_name, kind=record.kind, sha256=record.sha256,
                        size_bytes=record.size_bytes, status=record.status, error=record.error or "")
    return Output(_one_or_many(context, records), metadata=metadata)


def _inspect(context: AssetExecutionContext, key: str, path: Path | None, folder: Path) -> SourceDocument:
    """One document's record; whatever goes wrong with it becomes its rejection, never the batch's failure."""
    if path is None:  # the file went away between planning the run and reading the folder
        return rejected_document(key, folder / key, f"{key}: no file in {folder} for this partition any more "
                                 "(removed or renamed after the run was planned)")
    try:
        return inspect_document(key, path)
    except Exception as exc:  # an unexpected error in one document must not lose the others
        context.log.exception(f"unexpected error inspecting {path.name}")
        return rejected_document(key, path, unreadable_reason(path, exc))


def _read_document(context: AssetExecutionContext, record: SourceDocument, page_reader: PageReader) -> DocumentText:
    if not record.ok:
        return DocumentText(record.doc_id, record.file_name, record.error)
    try:
        pages = extract_document(record.doc_id, Path(record.path), record.kind, page_reader.settings())
        return DocumentText(record.doc_id, record.file_name, None, tuple(pages))
    except DocumentRejected as exc:
        context.log.error(f"rejected {record.file_name}: {exc}")
        return DocumentText(record.doc_id, record.file_name, str(exc))
    except Exception as exc:  # vanished since raw_pdfs, or a reader bug: this document's rejection, not the batch's
        error = unreadable_reason(Path(record.path), exc)
        context.log.exception(f"rejected {record.file_name}: {error}")
        return DocumentText(record.doc_id, record.file_name, error)


def _read_pdfs_together(context: AssetExecutionContext, records: dict[str, SourceDocument],
                        page_reader: PageReader) -> dict[str, DocumentText]:
    """The batch's PDFs read together: every text layer first, then the scanned pages of all of them in one OCR pool
    (workers stay busy even when each document has one scanned page). A document that fails is its own rejection;
    anything unexpected falls back to reading the PDFs one by one."""
    pdfs = {key: r for key, r in records.items() if r.ok and r.kind == "pdf"}
    if len(pdfs) < 2:
        return {}
    try:
        read = extract_pdfs([(r.doc_id, Path(r.path)) for r in pdfs.values()], page_reader.settings())
    except Exception as exc:  # one document's surprise must not cost the others: they are read one by one below
        context.log.warning(f"reading the batch's PDFs together failed ({type(exc).__name__}: {exc}); one by one")
        return {}
    results = {}
    for key, record in pdfs.items():
        value = read.get(record.doc_id)
        if value is None:
            continue
        if isinstance(value, DocumentRejected):
            context.log.error(f"rejected {record.file_name}: {value}")
            results[key] = DocumentText(record.doc_id, record.file_name, str(value))
        else:
            results[key] = DocumentText(record.doc_id, record.file_name, None, tuple(value))
    return results


@asset(
    partitions_def=manual_partitions,
    backfill_policy=BATCHED,
    group_name="ingest",
    description="Text of every page of one document: the PDF text layer in reading order, OCR for pages that need "
    "it (method, quality score and the reason a page was sent to OCR are kept per page).",
)
def page_text(context: AssetExecutionContext, raw_pdfs, page_reader: PageReader) -> Output:
    started = time.perf_counter()
    records = _by_partition(context, raw_pdfs)
    together = _read_pdfs_together(context, records, page_reader)
    results = {key: together.get(key) or _read_document(context, record, page_reader) for key, record in records.items()}
    pages = [p for r in results.values() for p in r.pages]
    methods = Counter(p.method for p in pages)
    metadata = {
        "documents": len(results),
        "pages": len(pages),
        "pages_text_layer": methods["text_layer"],
        "pages_ocr": methods["ocr"],
        "pages_without_text": methods["none"],
        "coverage": round((methods["text_layer"] + methods["ocr"]) / len(pages), 4) if pages else 0.0,
        "ocr_engine": page_reader.ocr_engine,
        "seconds": round(time.perf_counter() - started, 2),
        "errors": MetadataValue.json({r.file_name: r.error for r in results.values() if r.error}),
    }
    if len(results) == 1:
        preview = "\n\n".join(f"--- page {p.page} ({p.method}) ---\n{p.text[:600]}" for p in pages[:2])
        metadata["preview"] = MetadataValue.md(f"```\n{preview}\n```" if preview else "_no text_")
    return Output(_one_or_many(context, results), metadata=metadata)
