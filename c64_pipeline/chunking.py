"""Token windows over whole documents, with page provenance. Nothing is ever truncated: a long document
becomes several windows (consecutive windows share `overlap` tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    index: int
    text: str
    token_count: int
    page_start: int  # 1-based, inclusive
    page_end: int

    def as_dict(self) -> dict:
        return asdict(self)


def join_pages(pages: Sequence[tuple[int, str]]) -> tuple[str, np.ndarray, np.ndarray]:
    """Document text from (page number, text) pairs, and where each page starts in it."""
    parts, starts, numbers, offset = [], [], [], 0
    for number, text in pages:
        if not text.strip():
            continue
        if parts:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        starts.append(offset)
        numbers.append(number)
        parts.append(text)
        offset += len(text)
    return "".join(parts), np.asarray(starts, dtype=np.int64), np.asarray(numbers, dtype=np.int64)


def chunk_documents(
    documents: dict[str, Sequence[tuple[int, str]]], tokenizer, max_tokens: int = 2048, overlap: int = 128
) -> list[Chunk]:
    """Chunk every document (doc_id -> [(page, text)]) in one batched tokenizer call."""
    if not 0 <= overlap < max_tokens // 2:
        raise ValueError(f"overlap must be at least 0 and below half of max_tokens ({max_tokens}), got {overlap}")
    doc_ids, texts, page_starts, page_numbers = [], [], [], []
    for doc_id in sorted(documents):
        text, starts, numbers = join_pages(documents[doc_id])
        if text:
            doc_ids.append(doc_id)
            texts.append(text)
            page_starts.append(starts)
            page_numbers.append(numbers)
    if not texts:
        return []
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=True,
        max_length=max_tokens,
        stride=overlap,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    chunks: list[Chunk] = []
    counters: dict[str, int] = {}
    for ids, offsets, source in zip(
        encoded["input_ids"], encoded["offset_mapping"], encoded["overflow_to_sample_mapping"]
    ):
        if not ids:
            continue
        doc_id, text = doc_ids[source], texts[source]
        start, end = offsets[0][0], offsets[-1][1]
        first = int(np.searchsorted(page_starts[source], start, side="right")) - 1
        last = int(np.searchsorted(page_starts[source], max(start, end - 1), side="right")) - 1
        index = counters.get(doc_id, 0)
        counters[doc_id] = index + 1
        chunks.append(
            Chunk(
                chunk_id=f"{doc_id}:{index:04d}",
                doc_id=doc_id,
                index=index,
                text=text[start:end],
                token_count=len(ids),
                page_start=int(page_numbers[source][max(first, 0)]),
                page_end=int(page_numbers[source][max(last, 0)]),
            )
        )
    return chunks
