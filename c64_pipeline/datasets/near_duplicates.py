"""Near-duplicate texts, via MinHash.

- `cross_split_near_duplicates`: chunks shared between train and validation/test (MinHash LSH), for the blocking
  leakage check: a validation or test text that is a near copy of a train text makes evaluation figures meaningless.
- `document_families`: whole documents that are copies of one text (the same book from two sources, a scan and a
  digital copy), which the splitter keeps in one split so that the leakage check never has to catch them.

Plain Python (no Dagster).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

TRAIN = "train"
HELD_OUT = ("validation", "test")


def shingles(text: str, k: int = 5) -> set[str]:
    """Word k-shingles of the lower-cased, whitespace-normalised text; a text shorter than k words is one shingle."""
    words = text.lower().split()
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


@dataclass(frozen=True)
class NearDuplicatePair:
    left_id: str  # the train item
    right_id: str  # the validation or test item
    similarity: float  # MinHash estimate of the Jaccard similarity of the shingle sets


def cross_split_near_duplicates(
    items: Iterable[tuple[str, str, str]], threshold: float = 0.8, num_perm: int = 128, seed: int = 1
) -> list[NearDuplicatePair]:
    """Pairs (train item, validation/test item) whose texts have estimated Jaccard similarity >= threshold.

    `items` are (item_id, split, text) with split in train/validation/test and unique ids; empty texts are
    skipped. Sorted by similarity (highest first), then ids.
    """
    ids_seen: set[str] = set()
    ids: list[str] = []
    splits: list[str] = []
    minhashes: list[LeanMinHash] = []
    # Copying one MinHash reuses its permutations (as MinHash.bulk does); shingles are hashed in one batch per text
    # and dropped right away, so memory holds only the 128-value sketches.
    template = MinHash(num_perm=num_perm, seed=seed)
    for item_id, split, text in items:
        if split != TRAIN and split not in HELD_OUT:
            raise ValueError(f"item {item_id!r}: unknown split {split!r}")
        if item_id in ids_seen:
            raise ValueError(f"duplicate item id {item_id!r}")
        ids_seen.add(item_id)
        if sh := shingles(text):
            m = template.copy()
            m.update_batch([s.encode("utf-8") for s in sh])
            ids.append(item_id)
            splits.append(split)
            minhashes.append(LeanMinHash(m))

    # LSH only proposes candidates, each verified below. With the default weights (0.5, 0.5) a pair right at the
    # threshold becomes a candidate only ~40% of the time (0.8, 128 perms); a leakage check needs recall instead.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.05, 0.95))
    with lsh.insertion_session() as session:
        for i, split in enumerate(splits):
            if split == TRAIN:
                session.insert(i, minhashes[i], check_duplication=False)

    pairs = []
    for j, split in enumerate(splits):
        if split == TRAIN:
            continue
        for i in lsh.query(minhashes[j]):
            similarity = minhashes[j].jaccard(minhashes[i])
            if similarity >= threshold:
                pairs.append(NearDuplicatePair(ids[i], ids[j], similarity))
    return sorted(pairs, key=lambda p: (-p.similarity, p.left_id, p.right_id))


# ---------------------------------------------------------------------------------------------------------------
# Whole documents that are copies of one text (the same book from two sources, a scan and a digital copy).

# OCR confuses these characters with each other; folding them makes a scan's words match the digital copy's.
# Share of the smaller document's word 3-shingles found in the other at which two documents are one family: a 2%
# character error rate (a fair scan) keeps ~0.8, 5% (a poor one) ~0.53; unrelated C64 references on the same
# subject reach ~0.38 at most (measured on ../shared/corpus with simulated OCR noise, see the README).
NEAR_DUPLICATE_CONTAINMENT = 0.45

_OCR_FOLD = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "5": "s"})
_TOKEN = re.compile(r"[a-z0-9$]+")


def document_shingles(text: str, k: int = 3) -> set[str]:
    """Word k-shingles of a whole document, robust to layout and OCR noise: lower case, punctuation and table rules
    dropped, look-alike characters folded (0/o, 1/l/i, 5/s). Short word runs keep OCR slips local: one misread word
    spoils k shingles, not a whole sentence."""
    words = _TOKEN.findall(text.lower().translate(_OCR_FOLD))
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


@dataclass(frozen=True)
class DocumentSimilarity:
    left_id: str
    right_id: str
    jaccard: float  # of the two shingle sets
    containment: float  # share of the smaller document's shingles found in the larger one


def document_similarities(
    texts: Mapping[str, str], min_containment: float = NEAR_DUPLICATE_CONTAINMENT, num_perm: int = 256, seed: int = 1
) -> list[DocumentSimilarity]:
    """Pairs of documents whose containment, |A n B| / min(|A|, |B|) over their shingle sets, is >= min_containment
    (sorted by id). Containment groups a partial scan with its complete digital copy, which Jaccard alone would not.

    MinHash proposes the candidates: from its Jaccard estimate J and the exact set sizes, |A n B| ~ J (|A| + |B|) /
    (1 + J). That estimate is loose when one document is many times the other (J is then small and noisy), so it
    only has to reach half the threshold, and each candidate is then measured exactly on its two shingle sets.
    Every pair is compared (documents number in the hundreds at most; each comparison is one vector operation)."""
    ids, sizes, rows = [], [], []
    template = MinHash(num_perm=num_perm, seed=seed)
    for doc_id in sorted(texts):
        sh = document_shingles(texts[doc_id])
        if not sh:
            continue
        m = template.copy()
        m.update_batch([s.encode("utf-8") for s in sh])
        ids.append(doc_id)
        sizes.append(len(sh))
        rows.append(m.hashvalues)
    if len(ids) < 2:
        return []
    matrix = np.vstack(rows)
    exact: dict[str, set[str]] = {}

    def shingle_set(doc_id: str) -> set[str]:
        if doc_id not in exact:
            exact[doc_id] = document_shingles(texts[doc_id])
        return exact[doc_id]

    pairs = []
    for i in range(len(ids) - 1):
        jaccards = (matrix[i + 1 :] == matrix[i]).mean(axis=1)
        for offset, j_est in enumerate(jaccards):
            j = i + 1 + offset
            estimate = j_est * (sizes[i] + sizes[j]) / (1 + j_est) / min(sizes[i], sizes[j])
            if estimate < min_containment / 2:
                continue
            left, right = shingle_set(ids[i]), shingle_set(ids[j])
            shared = len(left & right)
            containment = shared / min(len(left), len(right))
            if containment >= min_containment:
                jaccard = shared / len(left | right)
                pairs.append(DocumentSimilarity(ids[i], ids[j], round(jaccard, 4), round(containment, 4)))
    return pairs


def document_families(texts: Mapping[str, str], min_containment: float = NEAR_DUPLICATE_CONTAINMENT) -> list[list[str]]:
    """Groups of near-duplicate documents (connected by pairwise containment), each sorted, every document in
    exactly one group; sorted by first id."""
    parent = {d: d for d in texts}

    def root(d: str) -> str:
        while parent[d] != d:
            parent[d] = parent[parent[d]]
            d = parent[d]
        return d

    for pair in document_similarities(texts, min_containment):
        a, b = sorted((root(pair.left_id), root(pair.right_id)))
        parent[b] = a
    groups: dict[str, list[str]] = {}
    for d in sorted(texts):
        groups.setdefault(root(d), []).append(d)
    return sorted(groups.values())
