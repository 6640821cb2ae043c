"""Token windows over whole documents, with page provenance. Nothing is ever truncated: a long document
becomes several windows (consecutive windows share `overlap` tokens).

Memory: documents are tokenized in batches of at most MAX_BATCH_CHARS characters (a single larger document
alone), and only the tokenizer's own encoding is kept: a window needs its length and the character offsets of its
first and last token, so no per-token Python lists are built (they cost ~300 bytes a token)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from c64_pipeline.records import Record

PAGE_SEPARATOR = "\n\n"
MAX_BATCH_CHARS = 4_000_000  # characters of document text tokenized in one call (the batch is tokenized in parallel)


@dataclass(frozen=True)
class Chunk(Record):
    chunk_id: str
    doc_id: str
    index: int
    text: str
    token_count: int
    page_start: int  # 1-based, inclusive
    page_end: int


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
    chunks: list[Chunk] = []
    for batch in _batches([len(t) for t in texts], MAX_BATCH_CHARS):
        encodings = _encode(tokenizer, [texts[i] for i in batch])
        for source, encoding in zip(batch, encodings):
            doc_id, text = doc_ids[source], texts[source]
            for index, (first_token, end_token) in enumerate(windows(len(encoding), max_tokens, overlap)):
                start = encoding.token_to_chars(first_token)[0]
                end = encoding.token_to_chars(end_token - 1)[1]
                first = int(np.searchsorted(page_starts[source], start, side="right")) - 1
                last = int(np.searchsorted(page_starts[source], max(start, end - 1), side="right")) - 1
                chunks.append(
                    Chunk(
                        chunk_id=f"{doc_id}:{index:04d}",
                        doc_id=doc_id,
                        index=index,
                        text=text[start:end],
                        token_count=end_token - first_token,
                        page_start=int(page_numbers[source][max(first, 0)]),
                        page_end=int(page_numbers[source][max(last, 0)]),
                    )
                )
        del encodings
    return chunks


def windows(n_tokens: int, max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) token ranges: windows of `max_tokens` whose neighbours share `overlap` tokens, the last one
    ending at the last token (the ranges the tokenizer's own overflow with `stride=overlap` gives)."""
    ranges, step = [], max_tokens - overlap
    for start in range(0, n_tokens, step):
        end = min(start + max_tokens, n_tokens)
        ranges.append((start, end))
        if end == n_tokens:
            break
    return ranges


def _batches(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive index groups whose sizes add up to at most `budget` (an item over it forms a group alone)."""
    groups: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not groups or total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += size
    return groups


def _encode(tokenizer, texts: list[str]):
    """The tokenizer's encodings (no special tokens, no truncation, no padding) without converting them to lists."""
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()  # the transformers wrapper re-applies its own settings on every call it makes
    backend.no_padding()
    return backend.encode_batch(texts, add_special_tokens=False)
