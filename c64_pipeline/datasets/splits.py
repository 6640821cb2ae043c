"""Train/validation/test assignment by whole document, and by family of near-duplicate documents.

Rules:
- a document is in exactly one split, and documents that are near-duplicates of each other (the same book from two
  sources, a scan and a digital copy: `near_duplicates.document_families`) form one family that always shares a
  split;
- the same inputs always give the same assignment;
- adding a manual never moves a document already assigned (`previous` carries the earlier assignment forward); a
  new document that joins a family already assigned takes that family's split;
- new families are placed by weight, largest first, toward the target shares of text (what DAPT holds) and of SFT
  conversations, so validation and test each get a meaningful share, not whatever a hash gave them;
- once there are three or more families every split holds one.

Only two things move an assigned document, each with a note: a family whose members were assigned to different
splits before (an old ledger, or a new document that links two families) is brought together in the split that
held most of its weight, and a split left empty by removals is refilled from the split with the most families.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from c64_pipeline.datasets.near_duplicates import NEAR_DUPLICATE_CONTAINMENT
from c64_pipeline.records import Record

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitSettings:
    validation_share: float = 0.1
    test_share: float = 0.1
    seed: str = "c64-pipeline"
    # share of the smaller document's word 3-shingles found in the other at which two documents are one family
    near_duplicate_containment: float = NEAR_DUPLICATE_CONTAINMENT

    def __post_init__(self) -> None:
        if not (0 <= self.validation_share < 1 and 0 <= self.test_share < 1 and self.validation_share + self.test_share < 1):
            raise ValueError("validation_share and test_share must be in [0, 1) and sum below 1")
        if not 0 < self.near_duplicate_containment <= 1:
            raise ValueError("near_duplicate_containment must be in (0, 1]")

    @property
    def targets(self) -> dict[str, float]:
        return {"train": 1 - self.validation_share - self.test_share, "validation": self.validation_share,
                "test": self.test_share}


@dataclass(frozen=True)
class DocumentSplits(Record):
    """The `document_splits` asset's value: doc id -> split, the notes on documents that moved, the doc ids gone
    since the previous assignment, and the near-duplicate families kept in one split."""

    assignment: dict[str, str]
    notes: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    families: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping) -> DocumentSplits:
        return cls(dict(data["assignment"]), tuple(data.get("notes", ())), tuple(data.get("removed", ())),
                   tuple(tuple(f) for f in data.get("families", ())))

    def documents(self, split: str) -> list[str]:
        return sorted(d for d, s in self.assignment.items() if s == split)


def _unit_hash(doc_id: str, seed: str) -> float:
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _families(ids: Sequence[str], families: Iterable[Sequence[str]] | None) -> list[tuple[str, ...]]:
    """Every id in exactly one family (ids not named in `families` are families of one), sorted."""
    known = set(ids)
    seen: set[str] = set()
    out = []
    for family in families or ():
        members = tuple(sorted(d for d in set(family) if d in known and d not in seen))
        if members:
            out.append(members)
            seen.update(members)
    out += [(d,) for d in ids if d not in seen]
    return sorted(out)


def assign_splits(
    doc_ids: Iterable[str],
    previous: Mapping[str, str] | None = None,
    settings: SplitSettings = SplitSettings(),
    sizes: Mapping[str, int] | None = None,
    *,
    sft_sizes: Mapping[str, int] | None = None,
    families: Iterable[Sequence[str]] | None = None,
    min_held_out_sft: int = 0,
) -> tuple[dict[str, str], list[str]]:
    """Return (doc_id -> split, notes).

    `sizes` is each document's amount of text (what DAPT holds) and `sft_sizes` its SFT conversations; the new
    families are balanced on both (each as a share of the corpus total), or on document counts when neither is
    given. `families` lists groups of near-duplicate documents; documents not in a group stand alone.
    `min_held_out_sft` is the fewest SFT conversations a held-out split can be measured with (the validation gate's
    minimum): an empty held-out split is seeded with a family that yields at least that many, when one does."""
    ids = sorted(set(doc_ids))
    previous = previous or {}
    groups = _families(ids, families)
    dims = [dict(m) for m in (sizes, sft_sizes) if m and sum(m.get(d, 0) for d in ids) > 0] or [{d: 1 for d in ids}]
    totals = [sum(m.get(d, 0) for d in ids) for m in dims]

    def weight(members: Sequence[str]) -> list[float]:
        return [sum(m.get(d, 0) for d in members) / t for m, t in zip(dims, totals)]

    targets = settings.targets
    held = {s: [0.0] * len(dims) for s in SPLITS}
    assignment: dict[str, str] = {}
    notes: list[str] = []

    def place(members: Sequence[str], split: str) -> None:
        for d in members:
            assignment[d] = split
        held[split] = [h + w for h, w in zip(held[split], weight(members))]

    new_groups = []
    for members in groups:
        before = {d: previous[d] for d in members if previous.get(d) in SPLITS}
        if not before:
            new_groups.append(members)
            continue
        splits_before = set(before.values())
        if len(splits_before) == 1:
            (split,) = splits_before
        else:  # the family straddled splits: bring it together where most of its weight already was
            split = max(SPLITS, key=lambda s: (sum(weight([d for d, v in before.items() if v == s])),
                                               s in splits_before, -SPLITS.index(s)))
            for d, s in sorted(before.items()):
                if s != split:
                    others = ", ".join(m for m in members if m != d)
                    notes.append(f"{d} moved from {s} to {split}: it is a near-duplicate of {others}, which must share its split")
        place(members, split)

    def need(split: str) -> list[float]:
        return [targets[split] - h for h in held[split]]

    def score(split: str, w: list[float]) -> float:
        n = need(split)
        overshoot = sum(max(0.0, wi - ni) for wi, ni in zip(w, n))
        return (sum(n) - overshoot) / len(n)

    new_groups.sort(key=lambda g: (-sum(weight(g)), _unit_hash(g[0], settings.seed)))
    # An empty held-out split is seeded with the new family whose weight is closest to its target share (one that
    # yields SFT, when any does), not with whatever the largest-first order leaves over, as long as a family is left
    # for an empty train split.
    if len(groups) >= len(SPLITS):
        for split in ("validation", "test"):
            train_waiting = "train" not in assignment.values()
            if split in assignment.values() or len(new_groups) <= int(train_waiting):
                continue
            enough = [g for g in new_groups if all(weight(g))
                      and sum((sft_sizes or {}).get(d, 0) for d in g) >= min_held_out_sft]
            pool = enough or [g for g in new_groups if all(weight(g))] or new_groups
            seed = min(pool, key=lambda g: (sum(abs(w - targets[split]) for w in weight(g)), _unit_hash(g[0], settings.seed)))
            new_groups.remove(seed)
            place(seed, split)
    for k, members in enumerate(new_groups):
        w = weight(members)
        filled = set(assignment.values())
        empty = [s for s in SPLITS if s not in filled]
        remaining = len(new_groups) - k
        candidates = empty if remaining <= len(empty) else list(SPLITS)
        place(members, max(candidates, key=lambda s: (score(s, w), -SPLITS.index(s))))

    # Only removals can leave a split empty once there are 3+ families: refill it from the split with most families.
    by_group = {g: assignment[g[0]] for g in groups}
    if len(groups) >= len(SPLITS):
        for split in SPLITS:
            if split in by_group.values():
                continue
            counts = {s: sum(1 for v in by_group.values() if v == s) for s in SPLITS}
            donor = max(SPLITS, key=lambda s: (counts[s], s == "train"))
            moved = max((g for g, s in by_group.items() if s == donor), key=lambda g: _unit_hash(g[0], settings.seed))
            by_group[moved] = split
            for d in moved:
                assignment[d] = split
                notes.append(f"{d} moved from {donor} to {split}: {split} was empty after documents were removed")
    return dict(sorted(assignment.items())), notes


def split_shares(assignment: Mapping[str, str], amounts: Mapping[str, float]) -> dict[str, float]:
    """Share of the total of `amounts` (per document) that each split holds."""
    total = sum(amounts.get(d, 0) for d in assignment)
    return {s: round(sum(amounts.get(d, 0) for d, v in assignment.items() if v == s) / total, 4) if total else 0.0
            for s in SPLITS}
