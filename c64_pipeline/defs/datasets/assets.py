"""Corpus-wide assets: the base model's tokenizer, token chunks, document splits, the DAPT and SFT datasets and
the validation report."""


import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, AssetSelection, AutomationCondition, Config, Failure, MetadataValue, Output, asset

from c64_pipeline import atomic
from c64_pipeline.conversation import Conversation, token_length
from c64_pipeline.base_model import ModelIdentity, compose_system_prompt, load_tokenizer, validate_model_dir
from c64_pipeline.demo.model import TinyModelSettings, build_demo_model, demo_tokenizer_texts
from c64_pipeline.datasets.chunking import Chunk, chunk_documents
from c64_pipeline.datasets.records import DatasetFiles, SftDataset
from c64_pipeline.ingest.extraction import DAPT_MIN_PAGE_QUALITY, DocumentText, dapt_pages
from c64_pipeline.datasets.near_duplicates import cross_split_near_duplicates, document_families
from c64_pipeline.defs.resources import BaseModelSource, PipelinePaths, QualityThresholds
from c64_pipeline.datasets.report import build_report, render_markdown
from c64_pipeline.datasets.sft_coverage import mine_document
from c64_pipeline.datasets.curated_sft import load_curated_conversations
from c64_pipeline.training.recipe import default_recipe
from c64_pipeline.datasets.splits import SPLITS, DocumentSplits, SplitSettings, assign_splits, split_shares
from c64_pipeline.ingest.documents import SourceDocument
from c64_pipeline.datasets.think_metrics import think_stats

# Re-run once the per-document work they read has finished (declarative automation). The base model's own build
# (on a fresh instance, before any manual was read) is not a reason: a build with no document read fails loudly.
REFRESH = AutomationCondition.eager().ignore(AssetSelection.assets("base_model"))
# The base model has no inputs: build it whenever it is missing (on_missing only fires when it *becomes* missing,
# which never happens on a fresh instance), unless a build is running or the last one failed (no retry loop).
BUILD_WHEN_MISSING = (
    AutomationCondition.missing() & ~AutomationCondition.in_progress() & ~AutomationCondition.execution_failed()
)
DAPT_SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("token_count", pa.int32()),
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("page_start", pa.int32()),
        ("page_end", pa.int32()),
    ]
)


def _accepted(page_results: dict[str, DocumentText] | None) -> dict[str, DocumentText]:
    """doc_id -> page_text result, for documents that were read."""
    return {r.doc_id: r for r in (page_results or {}).values() if r.accepted}


def _require_read_documents(page_results: dict[str, DocumentText] | None, paths: PipelinePaths) -> dict[str, DocumentText]:
    """The accepted documents, or a loud failure when there are none: a build from nothing would replace good
    datasets (and the split ledger) with empty ones, so the previous ones are kept instead."""
    accepted = _accepted(page_results)
    if accepted:
        return accepted
    results = list((page_results or {}).values())
    if results:
        reasons = [r.error or f"{r.file_name}: no page text" for r in results]
        why = f"all {len(results)} document(s) with stored page text were rejected: " + "; ".join(reasons[:5])
        why += f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
    else:
        why = ("no document has stored page text: the ingest runs failed or have not run, "
               f"or the manuals folder {paths.manuals_dir} is empty")
    raise Failure(
        description=f"no document was read, so no dataset is built: {why}. The datasets in {paths.processed} are "
        "left as they were. A legitimately empty manuals folder fails here too: add manuals, then build again.",
        metadata={"documents_with_page_text": len(results), "documents_accepted": 0},
    )


@asset(group_name="dataset", automation_condition=BUILD_WHEN_MISSING, description="Tokenizer and model directory every later step uses: the tiny demo "
       "Ministral 3 model built here (demo mode) or the validated real checkpoint (real mode).")
def base_model(context: AssetExecutionContext, model_source: BaseModelSource) -> Output[ModelIdentity]:
    model_dir = Path(model_source.model_dir)
    if model_source.mode == "demo":
        settings = TinyModelSettings(vocab_size=model_source.demo_vocab_size)
        identity = build_demo_model(model_dir, demo_tokenizer_texts(), settings)
        context.log.info(f"built the tiny demo model in {model_dir}")
    elif model_source.mode == "real":
        identity = validate_model_dir(model_dir)
    else:
        raise ValueError(f"model mode must be 'demo' or 'real', not {model_source.mode!r}")
    identity = ModelIdentity.from_dict({**identity, "mode": model_source.mode,
                                        "vocab_size": len(load_tokenizer(model_dir))})
    return Output(identity, metadata={k: str(v) for k, v in identity.to_dict().items()})


class ChunkingConfig(Config):
    # None: one token less than the training recipe's max_length for this model (room for <s>), so every chunk is one
    # DAPT training sequence as it is (2047 for the real model, 767 for the demo model)
    max_tokens: int | None = None
    overlap: int = 128
    min_page_quality: float = DAPT_MIN_PAGE_QUALITY  # flagged pages (poor after OCR) below this stay out of DAPT


@asset(group_name="dataset", automation_condition=REFRESH,
       description="Token windows over each accepted document (never truncated), with document id and page range.")
def token_chunks(context: AssetExecutionContext, config: ChunkingConfig, page_text: dict[str, DocumentText],
                 base_model: ModelIdentity, paths: PipelinePaths) -> Output[list[Chunk]]:
    read = _require_read_documents(page_text, paths)
    selected = {doc_id: dapt_pages(r.pages, config.min_page_quality) for doc_id, r in read.items()}
    documents = {doc_id: kept for doc_id, (kept, _) in selected.items()}
    left_out = {doc_id: pages for doc_id, (_, pages) in selected.items() if pages}
    for doc_id, pages in left_out.items():
        context.log.warning(f"{doc_id}: pages {pages} left out of DAPT (flagged, quality below {config.min_page_quality})")
    tokenizer = load_tokenizer(Path(base_model.model_dir))
    max_tokens = config.max_tokens or default_recipe(base_model.mode, "dapt").max_length - 1
    chunks = chunk_documents(documents, tokenizer, max_tokens, config.overlap)
    return Output(chunks, metadata={
        "documents": len(documents),
        "chunks": len(chunks),
        "tokens": sum(c.token_count for c in chunks),
        "max_tokens": max_tokens,
        "overlap": config.overlap,
        "pages_left_out": sum(len(p) for p in left_out.values()),
    })


class SplitConfig(Config):
    validation_share: float = 0.1
    test_share: float = 0.1
    seed: str = "c64-pipeline"
    # two documents whose word 3-shingles overlap this much (share of the smaller one's) are one family
    near_duplicate_containment: float = SplitSettings().near_duplicate_containment


@asset(group_name="dataset", automation_condition=REFRESH,
       description="Train/validation/test assignment by whole document and by family of near-duplicate documents "
       "(a scan and a digital copy share a split), balanced by text and SFT conversations; stable as manuals are "
       "added (kept in data/processed/splits.json).")
def document_splits(context: AssetExecutionContext, config: SplitConfig, page_text: dict[str, DocumentText],
                    paths: PipelinePaths, thresholds: QualityThresholds) -> Output[DocumentSplits]:
    ledger = paths.processed / "splits.json"
    previous = json.loads(ledger.read_text())["assignment"] if ledger.is_file() else {}
    accepted = _require_read_documents(page_text, paths)
    sizes = {doc_id: result.chars for doc_id, result in accepted.items()}
    sft_sizes = {doc_id: len(mine_document(result.pages, "", SftConfig().multi_turn_every)[0])
                 for doc_id, result in accepted.items()}
    settings = SplitSettings(config.validation_share, config.test_share, config.seed, config.near_duplicate_containment)
    texts = {doc_id: result.text for doc_id, result in accepted.items()}
    families = [f for f in document_families(texts, settings.near_duplicate_containment) if len(f) > 1]
    assignment, notes = assign_splits(sorted(accepted), previous, settings, sizes, sft_sizes=sft_sizes, families=families,
                                      min_held_out_sft=thresholds.min_validation_sft_conversations)
    removed = sorted(set(previous) - set(assignment))
    atomic.write_json(ledger, {"assignment": assignment, "families": families})
    for note in notes:
        context.log.warning(note)
    counts = {s: sum(1 for v in assignment.values() if v == s) for s in SPLITS}
    text_shares, sft_shares = split_shares(assignment, sizes), split_shares(assignment, sft_sizes)
    return Output(
        DocumentSplits(assignment, tuple(notes), tuple(removed), tuple(tuple(f) for f in families)),
        metadata={**{f"{s}_documents": n for s, n in counts.items()}, "removed": ", ".join(removed) or "none",
                  **{f"{s}_text_share": text_shares[s] for s in SPLITS},
                  **{f"{s}_sft_share": sft_shares[s] for s in SPLITS},
                  "near_duplicate_families": MetadataValue.json(families),
                  "assignment": MetadataValue.json(assignment)},
    )


@asset(group_name="dataset", automation_condition=REFRESH, description="DAPT datasets: data/processed/dapt/{train,validation,test}.parquet "
       "(text, token count, doc id, chunk id, page range).")
def dapt_dataset(context: AssetExecutionContext, token_chunks: list[Chunk], document_splits: DocumentSplits,
                 paths: PipelinePaths) -> Output[DatasetFiles]:
    assignment = document_splits.assignment
    if not token_chunks:
        raise Failure(f"token_chunks is empty: the DAPT datasets in {paths.processed / 'dapt'} are left as they were")
    out_dir = paths.processed / "dapt"
    counts, writers = {}, {}
    for split in SPLITS:
        rows = [c for c in token_chunks if assignment.get(c.doc_id) == split]
        table = pa.Table.from_pylist([{k: getattr(c, k) for k in DAPT_SCHEMA.names} for c in rows], schema=DAPT_SCHEMA)
        writers[f"{split}.parquet"] = lambda tmp, t=table: pq.write_table(t, tmp)
        counts[split] = len(rows)
    # all three splits or none: a reader checks dapt/_SUCCESS.json (atomic.read_file_set)
    manifest = atomic.write_file_set(out_dir, writers, {f"{s}.parquet": {"rows": n} for s, n in counts.items()})
    return Output(
        DatasetFiles(str(out_dir), counts),
        metadata={**{f"{s}_rows": n for s, n in counts.items()}, "dir": str(out_dir),
                  "manifest": MetadataValue.json(manifest)},
    )


class SftConfig(Config):
    multi_turn_every: int = 4
    # conversations longer than this are counted in the report (training filters them); None: the training
    # recipe's max_length for this model
    max_length: int | None = None


@asset(group_name="dataset", automation_condition=REFRESH,
       description="SFT datasets: data/processed/sft/{train,validation,test}.jsonl, grounded conversations with "
       "[THINK] reasoning and source references, plus curated ones from data/raw/sft/*.jsonl.")
def sft_dataset(context: AssetExecutionContext, config: SftConfig, page_text: dict[str, DocumentText],
                document_splits: DocumentSplits, base_model: ModelIdentity, paths: PipelinePaths) -> Output[SftDataset]:
    assignment = document_splits.assignment
    system_prompt = compose_system_prompt(Path(base_model.model_dir))
    accepted = _accepted(page_text)
    rows: dict[str, list[Conversation]] = {s: [] for s in SPLITS}
    outcomes: dict[str, dict] = {}
    for doc_id in sorted(accepted):
        conversations, outcomes[doc_id] = mine_document(accepted[doc_id].pages, system_prompt, config.multi_turn_every)
        rows[assignment[doc_id]].extend(conversations)
    curated, rejections = load_curated_conversations(Path(paths.curated_sft_dir), system_prompt)
    for conversation in curated:
        rows[assignment.get(conversation.doc_id, "train")].append(conversation)
    for rejection in rejections:
        context.log.warning(f"curated SFT line rejected: {rejection}")
    out_dir = paths.processed / "sft"
    # all three splits or none: a reader checks sft/_SUCCESS.json (atomic.read_file_set)
    atomic.write_file_set(out_dir, {f"{s}.jsonl": atomic.jsonl_writer([c.to_dict() for c in rows[s]]) for s in SPLITS},
                          {f"{s}.jsonl": {"rows": len(rows[s])} for s in SPLITS})
    tokenizer = load_tokenizer(Path(base_model.model_dir))
    token_counts = {s: [token_length(tokenizer, c.chat) for c in rows[s]] for s in SPLITS}
    sample = list(rows["train"][0].messages[1:]) if rows["train"] else []
    return Output(
        SftDataset(str(out_dir), {s: len(rows[s]) for s in SPLITS}, token_counts, tuple(rejections),
                   config.max_length or default_recipe(base_model.mode, "sft").max_length, outcomes),
        metadata={
            **{f"{s}_conversations": len(rows[s]) for s in SPLITS},
            "curated_conversations": len(curated),
            "curated_rejected": len(rejections),
            "example": MetadataValue.json(sample),
        },
    )


class ReportConfig(Config):
    near_duplicate_threshold: float = 0.8


@asset(group_name="dataset", automation_condition=REFRESH,
       description="Validation report (data/processed/validation_report.json) and the QC report "
       "(docs/data_qc_report.md): coverage, splits, token statistics, THINK figures, leakage, rejects, warnings.")
def validation_report(context: AssetExecutionContext, config: ReportConfig, raw_pdfs: dict[str, SourceDocument],
                      page_text: dict[str, DocumentText], token_chunks: list[Chunk], document_splits: DocumentSplits,
                      dapt_dataset: DatasetFiles, sft_dataset: SftDataset, base_model: ModelIdentity,
                      paths: PipelinePaths) -> Output[dict]:
    assignment = document_splits.assignment
    for folder, suffix in ((dapt_dataset.dir, ".parquet"), (sft_dataset.dir, ".jsonl")):
        try:  # the report describes the datasets on disk: they must be a complete set, as written
            atomic.read_file_set(Path(folder), [f"{s}{suffix}" for s in SPLITS])
        except atomic.IncompleteFileSet as exc:
            raise Failure(str(exc)) from exc
    conversations = {s: sft_dataset.conversations(s) for s in SPLITS}
    items = [(c.chunk_id, assignment[c.doc_id], c.text) for c in token_chunks if c.doc_id in assignment]
    pairs = cross_split_near_duplicates(items, threshold=config.near_duplicate_threshold)
    report = build_report(
        documents=list((raw_pdfs or {}).values()),
        texts={r.doc_id: r for r in (page_text or {}).values()},
        splits=document_splits,
        chunks=token_chunks,
        sft=sft_dataset,
        conversations=conversations,
        think=think_stats(c for s in SPLITS for c in conversations[s]),
        near_duplicates=pairs,
        near_duplicate_threshold=config.near_duplicate_threshold,
        model={k: base_model.to_dict()[k] for k in ("mode", "model_dir", "architectures", "tokenizer_sha256", "chat_template_sha256")},
    )
    atomic.write_json(paths.processed / "validation_report.json", report)
    markdown = render_markdown(report)
    atomic.write_text(Path(paths.docs_dir) / "data_qc_report.md", markdown)
    t = report["totals"]
    return Output(report, metadata={
        "coverage_ratio": t["coverage_ratio"],
        "documents_rejected": t["documents_rejected"],
        "think_coverage": report["think"]["coverage"],
        "top_skeleton_share": report["think"]["top_skeleton_share"],
        "near_duplicate_pairs": report["leakage"]["near_duplicate_pairs"],
        **_coverage_metadata(report),
        "qc_report": MetadataValue.md(markdown),
    })


def _coverage_metadata(report: dict) -> dict:
    cov, bal = report["sft_coverage"], report["split_balance"]
    return {
        "sft_documents_covered": f"{cov['documents_with_sft']} / {cov['documents_with_text']}",
        "sft_document_share": cov["document_share"],
        "sft_page_share": cov["page_share"],
        "sft_conversations_per_family": MetadataValue.json(cov["conversations_per_family"]),
        "documents_without_sft": MetadataValue.json({d["file_name"]: d["no_sft_reason"] for d in cov["documents"] if d["no_sft_reason"]}),
        "validation_sft_share": bal["sft_conversation_share"]["validation"],
        "validation_dapt_token_share": bal["dapt_token_share"]["validation"],
    }
