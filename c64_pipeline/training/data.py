"""The data every training stage and the evaluation read: DAPT token windows from the parquet splits, SFT
conversations from the jsonl splits, their token lengths, and the padding collator for token lists.

The chunks are already token windows, so nothing is packed and nothing is cut: a chunk becomes `<s>` + its tokens,
or several near-equal windows when it is longer than the recipe's max_length.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from c64_pipeline.conversation import shape_problem, token_length

class TrainingDataError(ValueError):
    """A dataset a run needs is missing, unreadable or empty; raised before any training step."""


# ---------------------------------------------------------------------------------------------------- DAPT


def read_texts(path: Path) -> tuple[list[str], int]:
    """The non-empty `text` values of a DAPT parquet split, and how many rows were empty."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist: materialize the DAPT dataset first")
    try:
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise TrainingDataError(f"{path} is not a readable parquet file with a 'text' column ({exc})") from exc
    kept = [t for t in texts if t and t.strip()]
    return kept, len(texts) - len(kept)


def token_windows(texts: list[str], tokenizer, max_length: int) -> tuple[list[list[int]], int]:
    """Training sequences for the chunks, and how many chunks had to be split. No token is dropped."""
    bos = tokenizer.bos_token_id
    sequences: list[list[int]] = []
    split = 0
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        if len(ids) < max_length:
            sequences.append([bos, *ids])
        elif len(ids) == max_length:  # no room for <s>; the window is used as it is
            sequences.append(list(ids))
        else:
            pieces = math.ceil(len(ids) / (max_length - 1))
            size = math.ceil(len(ids) / pieces)
            sequences.extend([bos, *ids[i : i + size]] for i in range(0, len(ids), size))
            split += 1
    return sequences, split


class PadCollator:
    """Right-pad a batch of token lists; padding is masked out of attention and loss."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            input_ids[row, : len(f["input_ids"])] = torch.as_tensor(f["input_ids"])
            attention_mask[row, : len(f["input_ids"])] = 1
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# ---------------------------------------------------------------------------------------------------- SFT


def read_conversations(path: Path) -> list[list[dict]]:
    """The chat messages of every line of an SFT jsonl split, each held to the conversation shape
    (`conversation.shape_problem`): the file and line are named when one is not."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist: materialize the SFT dataset first")
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path}:{number} is not JSON ({exc})") from exc
        problem = shape_problem(row.get("messages") if isinstance(row, dict) else None)
        if problem:
            raise TrainingDataError(f"{path}:{number}: not a conversation to train on: {problem}")
        conversations.append([{"role": m["role"], "content": m["content"]} for m in row["messages"]])
    return conversations


def filter_long(tokenizer, conversations: list[list[dict]], max_length: int) -> tuple[list[list[dict]], int]:
    """Conversations that fit in max_length tokens, and how many did not (dropped here, visibly, not cut by TRL)."""
    kept = [c for c in conversations if token_length(tokenizer, c) <= max_length]
    return kept, len(conversations) - len(kept)


# ---------------------------------------------------------------------------------------------------- both


def require_rows(rows: list, path: Path, what: str, why: str) -> list:
    """`rows` when there are any; otherwise a TrainingDataError naming the file."""
    if not rows:
        raise TrainingDataError(f"{path} has no {what}: {why}")
    return rows
