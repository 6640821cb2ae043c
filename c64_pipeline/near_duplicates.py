"""Near-duplicate texts across dataset splits (train vs validation/test), via MinHash LSH.

Plain Python (no Dagster), used by the blocking leakage check: a validation or test text that is a near copy of a
train text makes evaluation figures meaningless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
