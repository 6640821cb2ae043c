"""The validation report: every figure the quality checks judge, as JSON and as a Markdown QC report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from statistics import mean
from typing import TYPE_CHECKING

from c64_pipeline.datasets.splits import SPLITS

if TYPE_CHECKING:
    from c64_pipeline.conversation import Conversation
    from c64_pipeline.datasets.chunking import Chunk
    from c64_pipeline.datasets.near_duplicates import NearDuplicatePair
    from c64_pipeline.datasets.records import SftDataset
    from c64_pipeline.datasets.splits import DocumentSplits
    from c64_pipeline.datasets.think_metrics import ThinkStats
    from c64_pipeline.ingest.documents import SourceDocument
    from c64_pipeline.ingest.extraction import DocumentText, PageText


def token_stats(counts: Sequence[int]) -> dict:
    if not counts:
        return {"count": 0, "total": 0, "min": 0, "mean": 0.0, "p95": 0, "max": 0}
    ordered = sorted(counts)
    return {
        "count": len(ordered),
        "total": int(sum(ordered)),
        "min": int(ordered[0]),
        "mean": round(mean(ordered), 1),
        "p95": int(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
        "max": int(ordered[-1]),
    }


def document_error(doc: SourceDocument, result: DocumentText | None, pages_with_text: int) -> str | None:
    """Why a document is not usable, judged from what was actually read: its own rejection, its page_text
    rejection, no page_text value at all, or no page with usable text. None only for a document that was read."""
    if doc.error or not doc.ok:
        return doc.error or f"{doc.file_name}: rejected"
    if result is None:
        return f"{doc.file_name}: its page text was never stored (the reading step failed or has not run)"
    if result.error:
        return result.error
    if pages_with_text == 0:
        return f"{doc.file_name}: no page with usable text was read"
    return None


def document_rows(documents: Sequence[SourceDocument], texts: Mapping[str, DocumentText],
                  assignment: Mapping[str, str]) -> list[dict]:
    """The report's row of each document: what `raw_pdfs` said of it, what reading it gave (`texts`, by doc id), its
    split."""
    rows = []
    for doc in sorted(documents, key=lambda d: d.doc_id):
        result = texts.get(doc.doc_id)
        pages = result.pages if result is not None else ()
        methods = Counter(p.method for p in pages)
        error = document_error(doc, result, methods["text_layer"] + methods["ocr"])
        rows.append(
            {
                "doc_id": doc.doc_id,
                "file_name": doc.file_name,
                "kind": doc.kind,
                "sha256": doc.sha256,
                "status": "rejected" if error else "ok",
                "error": error,
                "split": assignment.get(doc.doc_id),
                "pages": len(pages) if pages else doc.pages,
                "pages_with_text": methods["text_layer"] + methods["ocr"],
                "pages_text_layer": methods["text_layer"],
                "pages_ocr": methods["ocr"],
                "pages_without_text": methods["none"],
                "ocr_reasons": dict(Counter(p.ocr_reason for p in pages if p.ocr_reason)),
                **flagged_pages(pages),
            }
        )
    return rows


# Pages still poor after OCR (PageText.flag): counted and listed per document, warned about, listed in the QC report.
def flagged_pages(pages: Sequence[PageText]) -> dict:
    flagged = [{"page": p.page, "quality": p.quality, "flag": p.flag} for p in pages if p.flag]
    return {"pages_flagged": len(flagged), "flagged_pages": flagged}


def flag_warnings(docs: Sequence[dict]) -> list[str]:
    return [
        f"{d['file_name']}: {d['pages_flagged']} page(s) flagged as low quality after OCR "
        f"(pages {', '.join(str(p['page']) for p in d['flagged_pages'])})"
        for d in docs
        if d["status"] == "ok" and d.get("pages_flagged")
    ]


def flag_markdown(docs: Sequence[dict]) -> list[str]:
    lines = ["", "## Flagged pages (low quality after OCR)", ""]
    rows = [(d["file_name"], p) for d in docs if d["status"] == "ok" for p in d.get("flagged_pages", [])]
    return lines + ([f"- {name} page {p['page']}: {p['flag']}" for name, p in rows] or ["- none"])


def build_report(
    *,
    documents: Sequence[SourceDocument],
    texts: Mapping[str, DocumentText],
    splits: DocumentSplits,
    chunks: Sequence[Chunk],
    sft: SftDataset,
    conversations: Mapping[str, Sequence[Conversation]],
    think: ThinkStats | None = None,
    near_duplicates: Sequence[NearDuplicatePair] = (),
    near_duplicate_threshold: float,
    model: Mapping | None = None,
) -> dict:
    """The validation report from the stages' records: the documents (`raw_pdfs`), what reading them gave (`texts`,
    by doc id), the split assignment, the DAPT chunks, the SFT dataset and its conversations by split, their THINK figures and the near-duplicate
    chunk pairs found across splits (at `near_duplicate_threshold`)."""
    docs = document_rows(documents, texts, splits.assignment)
    sft_rows, sft_token_counts, sft_max_length = conversations, sft.token_counts, sft.max_length
    split_notes, removed_documents, assignment = splits.notes, splits.removed, splits.assignment
    near_duplicates = [asdict(p) for p in near_duplicates]
    accepted = [d for d in docs if d["status"] == "ok"]
    total_pages = sum(d["pages"] for d in accepted)
    with_text = sum(d["pages_with_text"] for d in accepted)
    per_split_docs = {s: splits.documents(s) for s in SPLITS}
    doc_split_count = Counter(d for s in SPLITS for d in per_split_docs[s])
    warnings: list[str] = list(split_notes)
    for d in docs:
        if d["status"] == "rejected":
            warnings.append(f"rejected {d['file_name']}: {d['error']}")
        elif d["pages_without_text"]:
            warnings.append(f"{d['file_name']}: {d['pages_without_text']} page(s) without usable text")
    warnings += flag_warnings(docs)
    for doc_id in removed_documents:
        warnings.append(f"{doc_id} was removed from the manuals folder; its chunks and examples are gone from the datasets")
    too_long = {s: sum(1 for n in sft_token_counts.get(s, []) if n > sft_max_length) for s in SPLITS}
    if any(too_long.values()):
        warnings.append(f"SFT conversations longer than {sft_max_length} tokens (filtered before training): {too_long}")
    for s in SPLITS:
        if not per_split_docs[s]:
            warnings.append(f"no document in the {s} split")
    return {
        "totals": {
            "documents": len(docs),
            "documents_accepted": len(accepted),
            "documents_rejected": len(docs) - len(accepted),
            "pages": total_pages,
            "pages_with_text": with_text,
            "pages_ocr": sum(d["pages_ocr"] for d in accepted),
            "coverage_ratio": round(with_text / total_pages, 4) if total_pages else 0.0,
        },
        "documents": docs,
        "rejected_documents": [{"file_name": d["file_name"], "reason": d["error"]} for d in docs if d["status"] == "rejected"],
        "removed_documents": list(removed_documents),
        "splits": {
            s: {
                "documents": per_split_docs[s],
                "dapt_chunks": sum(1 for c in chunks if assignment.get(c.doc_id) == s),
                "dapt_tokens": token_stats([c.token_count for c in chunks if assignment.get(c.doc_id) == s]),
                "sft_conversations": len(sft_rows.get(s, [])),
                "sft_assistant_turns": sum(
                    len(row.contents("assistant")) for row in sft_rows.get(s, [])
                ),
                "sft_tokens": token_stats(list(sft_token_counts.get(s, []))),
                "sft_over_max_length": too_long[s],
            }
            for s in SPLITS
        },
        "think": asdict(think) if think is not None else {},
        "sft_max_length": sft_max_length,
        "leakage": {
            "documents_in_several_splits": sorted(d for d, n in doc_split_count.items() if n > 1),
            "near_duplicate_threshold": near_duplicate_threshold,
            "near_duplicate_pairs": len(near_duplicates),
            "near_duplicate_examples": list(near_duplicates[:10]),
        },
        "curated_sft_rejections": list(sft.curated_rejections),
        "sft_coverage": sft_coverage(docs, sft_rows, sft.outcomes),
        "split_balance": split_balance(docs, chunks, sft_rows, assignment, splits.families),
        "model": model or {},
        "warnings": warnings,
    }


def render_markdown(report: dict) -> str:
    t = report["totals"]
    lines = [
        "# Data QC report",
        "",
        f"- Documents: {t['documents']} ({t['documents_accepted']} accepted, {t['documents_rejected']} rejected)",
        f"- Pages: {t['pages']}, with text {t['pages_with_text']}, OCR'd {t['pages_ocr']}",
        f"- Coverage ratio: {t['coverage_ratio']:.3f}",
        "",
        "## Documents",
        "",
        "| document | kind | split | pages | text layer | OCR | no text | status |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for d in report["documents"]:
        status = "ok" if d["status"] == "ok" else f"rejected: {d['error']}"
        lines.append(
            f"| {d['file_name']} | {d['kind']} | {d['split'] or '-'} | {d['pages']} | {d['pages_text_layer']} | "
            f"{d['pages_ocr']} | {d['pages_without_text']} | {status.replace('|', '/')} |"
        )
    lines += ["", "## Splits", "", "| split | documents | DAPT chunks | DAPT tokens | SFT conversations | assistant turns | SFT tokens mean/max | over max length |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for name, s in report["splits"].items():
        lines.append(
            f"| {name} | {len(s['documents'])} | {s['dapt_chunks']} | {s['dapt_tokens']['total']} | {s['sft_conversations']} | "
            f"{s['sft_assistant_turns']} | {s['sft_tokens']['mean']}/{s['sft_tokens']['max']} | {s['sft_over_max_length']} |"
        )
    th = report["think"]
    lines += [
        "",
        "## THINK blocks",
        "",
        f"- Assistant turns: {th.get('assistant_turns', 0)}, well formed: {th.get('well_formed', 0)} (coverage {th.get('coverage', 0):.4f})",
        f"- Distinct reasoning texts: {th.get('distinct_reasoning', 0)} (ratio {th.get('distinct_ratio', 0):.3f})",
        f"- Distinct skeletons: {th.get('distinct_skeletons', 0)}; most common covers {th.get('top_skeleton_share', 0):.3f} of turns",
        "",
        "Most common reasoning skeletons:",
        "",
    ]
    for skeleton, count in th.get("top_skeletons", [])[:5]:
        lines.append(f"- {count} x `{skeleton[:160]}`")
    lines += render_sft_coverage(report)
    lk = report["leakage"]
    lines += [
        "",
        "## Leakage",
        "",
        f"- Documents in more than one split: {len(lk['documents_in_several_splits'])}",
        f"- Near-duplicate chunk pairs between train and validation/test (Jaccard >= {lk['near_duplicate_threshold']}): {lk['near_duplicate_pairs']}",
        "",
        "## Rejected documents",
        "",
    ]
    lines += [f"- {r['file_name']}: {r['reason']}" for r in report["rejected_documents"]] or ["- none"]
    lines += flag_markdown(report["documents"])
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in report["warnings"]] or ["- none"]
    return "\n".join(lines) + "\n"


# --- SFT coverage and split balance (issue 10) -----------------------------------------------------------------

NO_TEXT = "no page with text"
NO_STRUCTURE = "no minable structure"


def sft_family(conversation: Conversation) -> str:
    """The knowledge family of a conversation; "curated" for a curated one that names none."""
    if conversation.family:
        return conversation.family
    return "curated" if conversation.origin.startswith("curated") else "register"


def no_sft_reason(outcome: Mapping | None) -> str:
    """Why a document with text yields no SFT, from what the builder reported about it (`candidates` mined,
    `rejections` {reason: count}); a builder that reports nothing gives "no minable structure"."""
    if not outcome or not outcome.get("candidates"):
        return NO_STRUCTURE
    rejections = outcome.get("rejections") or {}
    detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(rejections.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"all {outcome['candidates']} mined rows rejected" + (f" ({detail})" if detail else "")


def sft_coverage(docs: Sequence[dict], sft_rows: Mapping[str, Sequence[Conversation]], outcomes: Mapping[str, dict] | None) -> dict:
    """Per accepted document and in total: conversations per family, pages cited by SFT source references out of
    pages with text, for documents with no SFT the reason, and mined rows the builder rejected, by reason."""
    outcomes = outcomes or {}
    families: dict[str, Counter] = {}
    cited: dict[str, set] = {}
    for rows in sft_rows.values():
        for row in rows:
            families.setdefault(row.doc_id, Counter())[sft_family(row)] += 1
            for ref in row.source_refs:
                if ref.get("doc_id") and ref.get("page") is not None:
                    cited.setdefault(ref["doc_id"], set()).add(ref["page"])
    per_doc = []
    for d in docs:
        if d["status"] != "ok":
            continue
        fam = families.get(d["doc_id"], Counter())
        pages_cited = min(len(cited.get(d["doc_id"], ())), d["pages_with_text"])
        conversations = sum(fam.values())
        reason = None
        if not conversations:
            reason = NO_TEXT if not d["pages_with_text"] else no_sft_reason(outcomes.get(d["doc_id"]))
        per_doc.append({
            "doc_id": d["doc_id"], "file_name": d["file_name"], "conversations": conversations,
            "families": dict(sorted(fam.items())), "pages_with_text": d["pages_with_text"], "pages_cited": pages_cited,
            "candidates": (outcomes.get(d["doc_id"]) or {}).get("candidates"), "no_sft_reason": reason,
        })
    with_text = [r for r in per_doc if r["pages_with_text"]]
    covered = [r for r in with_text if r["conversations"]]
    pages_with_text = sum(r["pages_with_text"] for r in with_text)
    pages_cited = sum(r["pages_cited"] for r in with_text)
    total_families: Counter = Counter()
    for fam in families.values():
        total_families.update(fam)
    rejected: Counter = Counter()
    for outcome in outcomes.values():
        rejected.update((outcome or {}).get("rejections") or {})
    return {
        "documents_with_text": len(with_text),
        "documents_with_sft": len(covered),
        "document_share": round(len(covered) / len(with_text), 4) if with_text else 0.0,
        "pages_with_text": pages_with_text,
        "pages_cited": pages_cited,
        "page_share": round(pages_cited / pages_with_text, 4) if pages_with_text else 0.0,
        "conversations_per_family": dict(sorted(total_families.items())),
        "no_sft_reasons": dict(Counter(r["no_sft_reason"] for r in per_doc if r["no_sft_reason"])),
        "rows_rejected": dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
        "documents": per_doc,
    }


def split_balance(docs: Sequence[dict], chunks: Sequence[Chunk], sft_rows: Mapping[str, Sequence[Conversation]],
                  assignment: Mapping[str, str], families: Sequence[Sequence[str]] = ()) -> dict:
    """Share of DAPT tokens and of SFT conversations each split holds (`docs`: the report's document rows), and the
    near-duplicate families that were kept in one split."""
    tokens = {s: sum(c.token_count for c in chunks if assignment.get(c.doc_id) == s) for s in SPLITS}
    conversations = {s: len(sft_rows.get(s, [])) for s in SPLITS}
    all_tokens, all_conversations = sum(tokens.values()), sum(conversations.values())
    return {
        "documents_accepted": sum(1 for d in docs if d["status"] == "ok"),
        "dapt_token_share": {s: round(tokens[s] / all_tokens, 4) if all_tokens else 0.0 for s in SPLITS},
        "sft_conversation_share": {s: round(conversations[s] / all_conversations, 4) if all_conversations else 0.0
                                   for s in SPLITS},
        "near_duplicate_families": [list(f) for f in families],
    }


def render_sft_coverage(report: dict) -> list[str]:
    """The QC report's SFT coverage and split balance sections."""
    cov = report.get("sft_coverage")
    if not cov:
        return []
    lines = [
        "",
        "## SFT coverage",
        "",
        f"- Documents with SFT: {cov['documents_with_sft']} of {cov['documents_with_text']} with text ({cov['document_share']:.3f})",
        f"- Pages cited by SFT: {cov['pages_cited']} of {cov['pages_with_text']} with text ({cov['page_share']:.3f})",
        "- Conversations per family: " + (", ".join(f"{k} {v}" for k, v in cov["conversations_per_family"].items()) or "none"),
        "- Documents without SFT: " + (", ".join(f"{k} {v}" for k, v in cov["no_sft_reasons"].items()) or "none"),
        "- Mined rows rejected: " + (", ".join(f"{k} {v}" for k, v in cov.get("rows_rejected", {}).items()) or "none reported"),
        "",
        "| document | conversations | families | pages cited / with text | no SFT because |",
        "|---|---:|---|---:|---|",
    ]
    for d in cov["documents"]:
        fams = ", ".join(f"{k} {v}" for k, v in d["families"].items()) or "-"
        lines.append(f"| {d['file_name']} | {d['conversations']} | {fams} | {d['pages_cited']} / {d['pages_with_text']} | "
                     f"{(d['no_sft_reason'] or '').replace('|', '/')} |")
    bal = report.get("split_balance")
    if bal:
        lines += ["", "## Split balance", "", "| split | DAPT token share | SFT conversation share |", "|---|---:|---:|"]
        lines += [f"| {s} | {bal['dapt_token_share'][s]:.3f} | {bal['sft_conversation_share'][s]:.3f} |" for s in SPLITS]
        fams = bal["near_duplicate_families"]
        lines += ["", "Near-duplicate families kept in one split: " + ("; ".join(" + ".join(f) for f in fams) or "none")]
    return lines
