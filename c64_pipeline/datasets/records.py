"""What the dataset assets hand on besides the files they write: where the files are and what is in them.

Plain Python: no Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from c64_pipeline.conversation import Conversation
from c64_pipeline.records import Record


@dataclass(frozen=True)
class DatasetFiles(Record):
    """A dataset written as one file per split: its folder and the rows each split holds."""

    dir: str
    rows: dict[str, int]


@dataclass(frozen=True)
class SftDataset(Record):
    """The SFT dataset as the report reads it: its folder (one jsonl file per split, written once: `conversations`
    reads them back), the conversations each split holds and their token counts, the curated lines rejected, the
    length training keeps, and what the builder said about each document (`mine_document`'s outcome)."""

    dir: str
    rows: dict[str, int]
    token_counts: dict[str, list[int]]
    curated_rejections: tuple[dict, ...] = ()
    max_length: int = 0
    outcomes: dict[str, dict] = field(default_factory=dict)

    def conversations(self, split: str) -> list[Conversation]:
        """The conversations of `split` as its jsonl file holds them."""
        path = Path(self.dir) / f"{split}.jsonl"
        return [Conversation.from_dict(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    @classmethod
    def from_dict(cls, data: Mapping) -> SftDataset:
        # a value stored before the conversations were kept only in the jsonl files held them under "rows"
        rows = {s: len(v) if isinstance(v, list) else v for s, v in dict(data["rows"]).items()}
        return cls(data["dir"], rows, dict(data["token_counts"]), tuple(data.get("curated_rejections", ())),
                   data.get("max_length", 0), dict(data.get("outcomes") or {}))
