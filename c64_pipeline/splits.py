"""Train/validation/test assignment by whole document.

Rules: a document is in exactly one split; the same inputs always give the same assignment; once there are
three or more documents every split holds one; and adding a manual never moves a document already assigned
(`previous` carries the earlier assignment forward).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitSettings:
    validation_share: float = 0.1
    test_share: float = 0.1
    seed: str = "c64-pipeline"

    def __post_init__(self) -> None:
        if not (0 <= self.validation_share < 1 and 0 <= self.test_share < 1 and self.validation_share + self.test_share < 1):
            raise ValueError("validation_share and test_share must be in [0, 1) and sum below 1")


def _unit_hash(doc_id: str, seed: str) -> float:
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _bucket(doc_id: str, settings: SplitSettings) -> str:
    u = _unit_hash(doc_id, settings.seed)
    if u < settings.validation_share:
        return "validation"
    if u < settings.validation_share + settings.test_share:
        return "test"
    return "train"


def assign_splits(
    doc_ids: Iterable[str],
    previous: Mapping[str, str] | None = None,
    settings: SplitSettings = SplitSettings(),
    sizes: Mapping[str, int] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Return (doc_id -> split, notes). Existing assignments are kept; new documents first fill an empty split
    (train, then validation, then test; the largest new document first, so train gets the most text), then go by
    a hash of their id."""
    ids = sorted(set(doc_ids))
    previous = previous or {}
    sizes = sizes or {}
    assignment = {d: previous[d] for d in ids if previous.get(d) in SPLITS}
    notes: list[str] = []
    new = sorted((d for d in ids if d not in assignment), key=lambda d: (-sizes.get(d, 0), _unit_hash(d, settings.seed)))
    for doc_id in new:
        filled = set(assignment.values())
        empty = [s for s in SPLITS if s not in filled]
        assignment[doc_id] = empty[0] if empty else _bucket(doc_id, settings)
    # Only removals can leave a split empty with 3+ documents: refill it from the largest split.
    if len(assignment) >= len(SPLITS):
        for split in SPLITS:
            if split in assignment.values():
                continue
            sizes = {s: sum(1 for v in assignment.values() if v == s) for s in SPLITS}
            donor = max(SPLITS, key=lambda s: (sizes[s], s == "train"))
            moved = max((d for d, s in assignment.items() if s == donor), key=lambda d: _unit_hash(d, settings.seed))
            assignment[moved] = split
            notes.append(f"{moved} moved from {donor} to {split}: {split} was empty after documents were removed")
    return dict(sorted(assignment.items())), notes
