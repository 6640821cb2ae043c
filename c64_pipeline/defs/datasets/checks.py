"""Blocking data gates. Each judges figures of the validation report against typed thresholds; a failure
(ERROR severity) stops every asset downstream of the report in the same run, training included."""


from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from c64_pipeline.defs.datasets.assets import validation_report
from c64_pipeline.defs.resources import QualityThresholds
from c64_pipeline.splits import SPLITS


def _result(passed: bool, description: str, **metadata) -> AssetCheckResult:
    return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.ERROR, description=description, metadata=metadata)


@asset_check(asset=validation_report, blocking=True, description="Share of pages with usable text is at or above the threshold.")
def coverage_ratio(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    totals = validation_report["totals"]
    ratio, floor = totals["coverage_ratio"], thresholds.min_coverage_ratio
    return _result(
        ratio >= floor and totals["pages"] > 0,
        f"{totals['pages_with_text']} of {totals['pages']} pages have usable text ({ratio:.3f}; threshold {floor})",
        coverage_ratio=ratio, threshold=floor, pages=totals["pages"], pages_with_text=totals["pages_with_text"],
        pages_ocr=totals["pages_ocr"], documents_rejected=totals["documents_rejected"],
    )


def _split_has_rows(report: dict, split: str) -> AssetCheckResult:
    rows = report["splits"][split]
    return _result(
        rows["dapt_chunks"] > 0 and rows["sft_conversations"] > 0,
        f"{split} split: {rows['dapt_chunks']} DAPT chunks, {rows['sft_conversations']} SFT conversations "
        f"from {len(rows['documents'])} document(s)",
        **{f"dapt_{split}_rows": rows["dapt_chunks"], f"sft_{split}_rows": rows["sft_conversations"],
           f"{split}_documents": len(rows["documents"])},
    )


@asset_check(asset=validation_report, blocking=True,
             description="The validation split holds a meaningful minimum: at least the threshold numbers of DAPT chunks "
             "and SFT conversations, and, once there are enough documents, at least the threshold share of DAPT tokens "
             "and SFT conversations.")
def validation_not_empty(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    rows = validation_report["splits"]["validation"]
    balance = validation_report.get("split_balance") or {}
    documents = balance.get("documents_accepted", validation_report["totals"]["documents_accepted"])
    sft_share = (balance.get("sft_conversation_share") or {}).get("validation", 0.0)
    token_share = (balance.get("dapt_token_share") or {}).get("validation", 0.0)
    floor = thresholds.min_validation_share
    shares_apply = documents >= thresholds.held_out_share_from_documents
    counts_ok = (rows["dapt_chunks"] >= max(1, thresholds.min_validation_dapt_chunks)
                 and rows["sft_conversations"] >= max(1, thresholds.min_validation_sft_conversations))
    shares_ok = not shares_apply or (sft_share >= floor and token_share >= floor)
    share_text = (f"; it holds {token_share:.3f} of DAPT tokens and {sft_share:.3f} of SFT conversations (min {floor}"
                  + (")" if shares_apply else f", judged from {thresholds.held_out_share_from_documents} documents on)"))
    return _result(
        counts_ok and shares_ok,
        f"validation split: {rows['dapt_chunks']} DAPT chunks (min {thresholds.min_validation_dapt_chunks}), "
        f"{rows['sft_conversations']} SFT conversations (min {thresholds.min_validation_sft_conversations}) "
        f"from {len(rows['documents'])} document(s)" + share_text,
        dapt_validation_rows=rows["dapt_chunks"], sft_validation_rows=rows["sft_conversations"],
        validation_documents=len(rows["documents"]), validation_sft_share=sft_share,
        validation_dapt_token_share=token_share, documents_accepted=documents,
    )


@asset_check(asset=validation_report, blocking=True, description="DAPT and SFT train splits each hold at least one row.")
def train_not_empty(validation_report: dict) -> AssetCheckResult:
    return _split_has_rows(validation_report, "train")


@asset_check(asset=validation_report, blocking=True,
             description="Assistant turns have exactly one balanced, non-empty THINK block and a non-empty answer.")
def think_coverage(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    think = validation_report["think"]
    floor = thresholds.min_think_coverage
    return _result(
        think["assistant_turns"] > 0 and think["coverage"] >= floor,
        f"{think['well_formed']} of {think['assistant_turns']} assistant turns well formed ({think['coverage']:.4f}; threshold {floor})",
        think_coverage=think["coverage"], threshold=floor, assistant_turns=think["assistant_turns"],
        problems=MetadataValue.json(think["problems"]),
    )


@asset_check(asset=validation_report, blocking=True,
             description="THINK texts are diverse and no reasoning skeleton dominates (catches templated reasoning).")
def think_diversity(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    think = validation_report["think"]
    distinct_ok = think["distinct_ratio"] >= thresholds.min_distinct_think_ratio
    skeleton_ok = think["top_skeleton_share"] <= thresholds.max_skeleton_share
    skeleton_ratio = think["distinct_skeletons"] / think["well_formed"] if think["well_formed"] else 0.0
    spread_ok = skeleton_ratio >= thresholds.min_distinct_skeleton_ratio
    return _result(
        think["well_formed"] > 0 and distinct_ok and skeleton_ok and spread_ok,
        f"distinct THINK ratio {think['distinct_ratio']:.3f} (min {thresholds.min_distinct_think_ratio}); "
        f"top skeleton covers {think['top_skeleton_share']:.3f} of turns (max {thresholds.max_skeleton_share}); "
        f"{think['distinct_skeletons']} skeletons for {think['well_formed']} turns ({skeleton_ratio:.3f}; "
        f"min {thresholds.min_distinct_skeleton_ratio})",
        distinct_ratio=think["distinct_ratio"], top_skeleton_share=think["top_skeleton_share"],
        distinct_skeletons=think["distinct_skeletons"], distinct_skeleton_ratio=round(skeleton_ratio, 4),
        top_skeletons=MetadataValue.json([{"skeleton": s, "turns": n} for s, n in think["top_skeletons"]]),
    )


@asset_check(asset=validation_report, blocking=True,
             description="No document in two splits and no near-duplicate chunk shared between train and validation/test.")
def split_leakage(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    leak = validation_report["leakage"]
    shared_docs = leak["documents_in_several_splits"]
    pairs = leak["near_duplicate_pairs"]
    return _result(
        not shared_docs and pairs <= thresholds.max_near_duplicate_pairs,
        f"{len(shared_docs)} document(s) in several splits; {pairs} near-duplicate chunk pair(s) across splits",
        documents_in_several_splits=len(shared_docs), near_duplicate_pairs=pairs,
        near_duplicate_threshold=leak["near_duplicate_threshold"],
        examples=MetadataValue.json(leak["near_duplicate_examples"]),
        split_documents=MetadataValue.json({s: len(validation_report["splits"][s]["documents"]) for s in SPLITS}),
    )


@asset_check(asset=validation_report, blocking=True,
             description="Share of documents with text that yield SFT conversations, and of their pages that SFT cites, "
             "is at or above the thresholds (WARN by default: reported, training goes on).")
def sft_coverage(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    cov = validation_report["sft_coverage"]
    severity = thresholds.sft_coverage_severity.upper()
    if severity not in ("WARN", "ERROR"):
        raise ValueError(f"sft_coverage_severity must be WARN or ERROR, not {thresholds.sft_coverage_severity!r}")
    passed = (cov["documents_with_text"] > 0 and cov["document_share"] >= thresholds.min_sft_document_share
              and cov["page_share"] >= thresholds.min_sft_page_share)
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity[severity],
        description=f"{cov['documents_with_sft']} of {cov['documents_with_text']} documents with text yield SFT "
        f"({cov['document_share']:.3f}; min {thresholds.min_sft_document_share}); SFT cites {cov['pages_cited']} of "
        f"{cov['pages_with_text']} pages with text ({cov['page_share']:.3f}; min {thresholds.min_sft_page_share})",
        metadata={
            "document_share": cov["document_share"], "page_share": cov["page_share"],
            "documents_with_sft": cov["documents_with_sft"], "documents_with_text": cov["documents_with_text"],
            "conversations_per_family": MetadataValue.json(cov["conversations_per_family"]),
            "documents_without_sft": MetadataValue.json(
                {d["file_name"]: d["no_sft_reason"] for d in cov["documents"] if d["no_sft_reason"]}),
        },
    )


@asset_check(asset=validation_report, blocking=True,
             description="Once there are enough documents, validation and test each hold a share of the DAPT tokens and "
             "of the SFT conversations within the thresholds (WARN: reported, training goes on).")
def split_balance(validation_report: dict, thresholds: QualityThresholds) -> AssetCheckResult:
    balance = validation_report["split_balance"]
    low, high = thresholds.min_held_out_share, thresholds.max_held_out_share
    applies = balance["documents_accepted"] >= thresholds.held_out_share_from_documents
    shares = {f"{s}_{kind}": balance[key][s] for s in ("validation", "test")
              for kind, key in (("dapt_token_share", "dapt_token_share"), ("sft_share", "sft_conversation_share"))}
    outside = sorted(k for k, v in shares.items() if not low <= v <= high)
    if applies:
        verdict = f"outside [{low}, {high}]: {', '.join(outside)}" if outside else f"all within [{low}, {high}]"
    else:
        verdict = f"judged from {thresholds.held_out_share_from_documents} documents on ({balance['documents_accepted']} now)"
    return AssetCheckResult(
        passed=not applies or not outside, severity=AssetCheckSeverity.WARN,
        description="held-out shares of DAPT tokens / SFT conversations: validation "
        f"{shares['validation_dapt_token_share']:.3f} / {shares['validation_sft_share']:.3f}, test "
        f"{shares['test_dapt_token_share']:.3f} / {shares['test_sft_share']:.3f}; {verdict}",
        metadata={**shares, "documents_accepted": balance["documents_accepted"],
                  "near_duplicate_families": MetadataValue.json(balance["near_duplicate_families"])},
    )


data_checks = [coverage_ratio, validation_not_empty, train_not_empty, think_coverage, think_diversity, split_leakage,
               sft_coverage, split_balance]
