"""What the dataset assets hand on besides the files they write: where the files are and what is in them.

Plain Python: no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from c64_pipeline.records import Record


@dataclass(frozen=True)
class DatasetFiles(Record):
    """A dataset written as one file per split: its folder and the rows each split holds."""

    dir: str
    rows: dict[str, int]


@dataclass(frozen=True)
class SftDataset(Record):
    """The SFT dataset as the report reads it: its folder, the conversations of each split (as written to the jsonl
    files, the training rows' own format), their token counts, the curated lines rejected, the length training keeps,
    and what the builder said about each document (`mine_document`'s outcome)."""

    dir: str
    rows: dict[str, list[dict]]
    token_counts: dict[str, list[int]]
    curated_rejections: tuple[dict, ...] = ()
    max_length: int = 0
    outcomes: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping) -> SftDataset:
        return cls(data["dir"], dict(data["rows"]), dict(data["token_counts"]),
                   tuple(data.get("curated_rejections", ())), data.get("max_length", 0), dict(data.get("outcomes") or {}))
