"""SFT coverage of the shared corpus: what the data half turns into SFT, and which readers' questions it answers.

    python -m bench.sft_coverage [--corpus DIR] [--details]

Runs the data half's domain functions (the ones the Dagster assets call) on ../shared/corpus/{pdf,text}: documents
are inspected and read (text layer, OCR for the scans), each document's SFT conversations are mined, and the report's
own coverage function counts documents and pages that yield SFT and conversations per family. Then each of the
question/answer pairs in qa.jsonl is checked: answered when some conversation citing the pair's document states the
pair's key facts in its final answer (`c64_pipeline.datasets.sft_coverage.key_facts`). The pairs are a sample of what
readers ask, a yardstick: nothing in the builder may be tuned to them.

Results are printed and written to bench/results/sft_coverage.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from c64_pipeline.atomic import write_json
from c64_pipeline.ingest.documents import DocumentRejected, SourceDocument, discover_documents, inspect_document
from c64_pipeline.ingest.extraction import DocumentText, ExtractionSettings, extract_document
from c64_pipeline.datasets.report import document_rows, sft_coverage, sft_family
from c64_pipeline.settings import PROJECT_ROOT, shared_corpus_dir
from c64_pipeline.datasets.sft.grounding import conversation_grounding_problems
from c64_pipeline.datasets.sft_coverage import answering_conversation, key_facts, mine_document, states
from c64_pipeline.datasets.think_metrics import think_stats
from c64_pipeline.conversation import Conversation

SHARED_CORPUS = shared_corpus_dir()
RESULTS = PROJECT_ROOT / "bench" / "results" / "sft_coverage.json"


def read_corpus(corpus: Path, settings: ExtractionSettings | None = None) -> tuple[list[SourceDocument], dict[str, DocumentText], dict]:
    """(document records, doc_id -> page_text result, seconds spent reading per kind of document) for every file in
    corpus/pdf and corpus/text, as the raw_pdfs and page_text assets produce them."""
    settings = settings or ExtractionSettings(ocr_workers=1)
    records, results, seconds = [], {}, Counter()
    for sub in ("pdf", "text"):
        for doc_id, path in sorted(discover_documents(corpus / sub).items()):
            record = inspect_document(doc_id, path)
            records.append(record)
            result = DocumentText(doc_id, record.file_name, record.error)
            started = time.perf_counter()
            if record.ok:
                try:
                    result = DocumentText(doc_id, record.file_name, None,
                                          tuple(extract_document(doc_id, path, record.kind, settings)))
                except DocumentRejected as exc:
                    result = DocumentText(doc_id, record.file_name, str(exc))
            ocr = any(p.method == "ocr" for p in result.pages)
            seconds["ocr_pdfs" if ocr else f"{sub}_files"] += time.perf_counter() - started
            results[doc_id] = result
    return records, results, {k: round(v, 2) for k, v in sorted(seconds.items())}


def measure(corpus: Path = SHARED_CORPUS) -> dict:
    records, results, read_seconds = read_corpus(corpus)
    started = time.perf_counter()
    conversations: dict[str, list[Conversation]] = {}
    outcomes: dict[str, dict] = {}
    for doc_id, result in results.items():
        if result.accepted:
            conversations[doc_id], outcomes[doc_id] = mine_document(result.pages, "", 4)
    sft_seconds = round(time.perf_counter() - started, 2)
    docs = document_rows(records, results, {})
    coverage = sft_coverage(docs, {"all": [c for rows in conversations.values() for c in rows]}, outcomes)

    every = [c for rows in conversations.values() for c in rows]
    think = think_stats(every)
    ungrounded = sum(1 for c in every if conversation_grounding_problems(c))
    by_file = {r.file_name: r.doc_id for r in records}
    pairs = [json.loads(line) for line in (corpus / "qa.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    answered, unanswered = [], []
    for pair in pairs:
        file_name = pair["source_file"].split("/")[-1]
        doc_id = by_file.get(file_name)
        facts = key_facts(pair["answer"], pair["question"])
        hit = answering_conversation(pair["answer"], doc_id, conversations.get(doc_id, []), pair["question"]) if doc_id else None
        row = {"question": pair["question"], "answer": pair["answer"], "file": file_name,
               "key_facts": sorted({*(f"${v:04X}" for v in facts.hex_values), *facts.numbers, *facts.names, *facts.words}),
               "structured_key_facts": facts.structured}
        if hit:
            row["sft_question"] = hit.contents("user")[0]
            row["sft_answer"] = next(a for a in hit.final_answers if states(a, facts))
            row["family"] = sft_family(hit)
            answered.append(row)
        else:
            unanswered.append(row)
    return {
        "corpus": str(corpus),
        "documents": len(records),
        "documents_with_text": coverage["documents_with_text"],
        "documents_with_sft": coverage["documents_with_sft"],
        "pages_with_text": coverage["pages_with_text"],
        "pages_cited": coverage["pages_cited"],
        "document_share": coverage["document_share"],
        "page_share": coverage["page_share"],
        "conversations": sum(len(c) for c in conversations.values()),
        "conversations_per_family": coverage["conversations_per_family"],
        "no_sft_reasons": coverage["no_sft_reasons"],
        "think": {"distinct_ratio": round(think.distinct_ratio, 4), "top_skeleton_share": round(think.top_skeleton_share, 4),
                  "by_family": {k: {"turns": v["assistant_turns"], "distinct_ratio": round(v["distinct_ratio"], 4),
                                    "top_skeleton_share": round(v["top_skeleton_share"], 4)} for k, v in think.by_family.items()}},
        "conversations_with_ungrounded_facts": ungrounded,
        "per_document": coverage["documents"],
        "qa": {
            "pairs": len(pairs),
            "with_structured_key_facts": sum(1 for r in answered + unanswered if r["structured_key_facts"]),
            "answered": len(answered),
            "answered_by_family": dict(Counter(r["family"] for r in answered)),
            "answered_pairs": answered,
            "unanswered_pairs": unanswered,
        },
        "seconds": {**{f"read_{k}": v for k, v in read_seconds.items()}, "mine_sft": sft_seconds},
    }


def summary(figures: dict) -> str:
    qa = figures["qa"]
    lines = [
        f"documents with SFT: {figures['documents_with_sft']} of {figures['documents_with_text']} with text "
        f"({figures['documents']} in the corpus)",
        f"pages cited by SFT: {figures['pages_cited']} of {figures['pages_with_text']} with text ({figures['page_share']:.3f})",
        f"conversations: {figures['conversations']}, per family: "
        + ", ".join(f"{k} {v}" for k, v in figures["conversations_per_family"].items()),
        "documents without SFT: " + (", ".join(f"{k} {v}" for k, v in figures["no_sft_reasons"].items()) or "none"),
        f"THINK: distinct {figures['think']['distinct_ratio']}, top skeleton {figures['think']['top_skeleton_share']}; per family "
        + ", ".join(f"{k} {v['top_skeleton_share']}" for k, v in figures["think"]["by_family"].items())
        + f"; conversations with a final-answer fact not on their cited lines: {figures['conversations_with_ungrounded_facts']}",
        f"questions answered by some SFT conversation: {qa['answered']} of {qa['pairs']} "
        f"({qa['with_structured_key_facts']} with hex/number/name key facts)",
        "seconds: " + ", ".join(f"{k} {v}" for k, v in figures["seconds"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED_CORPUS)
    parser.add_argument("--details", action="store_true", help="list each document and each question")
    args = parser.parse_args(argv)
    if not (args.corpus / "qa.jsonl").is_file():
        print(f"no shared corpus at {args.corpus} (qa.jsonl missing)")
        return 1
    figures = measure(args.corpus)
    print(summary(figures))
    if args.details:
        for d in figures["per_document"]:
            print(f"  {d['file_name']}: {d['conversations']} conversations, {d['pages_cited']}/{d['pages_with_text']} pages"
                  + (f", no SFT: {d['no_sft_reason']}" if d["no_sft_reason"] else ""))
        for r in figures["qa"]["answered_pairs"]:
            print(f"  answered: {r['question']} -> {r['sft_answer'][:100]!r}")
        for r in figures["qa"]["unanswered_pairs"]:
            print(f"  not answered: {r['question']} (key facts {r['key_facts']})")
    write_json(RESULTS, figures)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
