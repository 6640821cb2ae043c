"""Per-document assets: one dynamic partition per file in the manuals folder."""


import time
from collections import Counter
from pathlib import Path

from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset

from c64_pipeline.documents import DocumentRejected, discover_documents, inspect_document
from c64_pipeline.extraction import extract_document
from c64_pipeline.orchestration.partitions import manual_partitions
from c64_pipeline.orchestration.resources import PageReader, PipelinePaths


@asset(
    partitions_def=manual_partitions,
    group_name="ingest",
    description="One source document (PDF, text, Markdown or HTML) from the manuals folder: hash, size, kind, "
    "page count, or the reason it cannot be read.",
)
def raw_pdfs(context: AssetExecutionContext, paths: PipelinePaths) -> Output[dict]:
    key = context.partition_key
    files = discover_documents(Path(paths.manuals_dir))
    if key not in files:
        raise Failure(f"no file in {paths.manuals_dir} for partition {key!r} (was it removed?)")
    record = inspect_document(key, files[key]).as_dict()
    if record["status"] == "rejected":
        context.log.error(f"rejected {record['file_name']}: {record['error']}")
    return Output(
        record,
        metadata={
            "file_name": record["file_name"],
            "kind": record["kind"],
            "sha256": record["sha256"],
            "size_bytes": record["size_bytes"],
            "pages": record["pages"],
            "status": record["status"],
            "error": record["error"] or "",
        },
    )


@asset(
    partitions_def=manual_partitions,
    group_name="ingest",
    description="Text of every page of one document: the PDF text layer in reading order, OCR for pages that need "
    "it (method, quality score and the reason a page was sent to OCR are kept per page).",
)
def page_text(context: AssetExecutionContext, raw_pdfs: dict, page_reader: PageReader) -> Output[dict]:
    result = {"doc_id": raw_pdfs["doc_id"], "file_name": raw_pdfs["file_name"], "error": raw_pdfs["error"], "pages": []}
    started = time.perf_counter()
    if raw_pdfs["status"] == "ok":
        try:
            pages = extract_document(raw_pdfs["doc_id"], Path(raw_pdfs["path"]), raw_pdfs["kind"], page_reader.settings())
            result["pages"] = [p.as_dict() for p in pages]
        except DocumentRejected as exc:
            result["error"] = str(exc)
            context.log.error(f"rejected {raw_pdfs['file_name']}: {exc}")
    methods = Counter(p["method"] for p in result["pages"])
    total = len(result["pages"])
    preview = "\n\n".join(f"--- page {p['page']} ({p['method']}) ---\n{p['text'][:600]}" for p in result["pages"][:2])
    return Output(
        result,
        metadata={
            "pages": total,
            "pages_text_layer": methods["text_layer"],
            "pages_ocr": methods["ocr"],
            "pages_without_text": methods["none"],
            "coverage": round((methods["text_layer"] + methods["ocr"]) / total, 4) if total else 0.0,
            "ocr_engine": page_reader.ocr_engine,
            "seconds": round(time.perf_counter() - started, 2),
            "error": result["error"] or "",
            "preview": MetadataValue.md(f"```\n{preview}\n```") if preview else MetadataValue.md("_no text_"),
        },
    )
