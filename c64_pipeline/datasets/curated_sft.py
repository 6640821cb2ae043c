"""User-curated SFT conversations from data/raw/sft/*.jsonl, held to the same rules as the mined ones."""

from __future__ import annotations

import json
from pathlib import Path

from c64_pipeline.conversation import Conversation, shape_problem


def check_conversation(row: object) -> str | None:
    """Why a curated line is unusable, or None."""
    if not isinstance(row, dict):
        return "no 'messages' list"
    return shape_problem(row.get("messages"))


def load_curated_conversations(folder: Path, system_prompt: str) -> tuple[list[Conversation], list[dict]]:
    """(conversations, rejections). The shared system prompt replaces any system message the file carries."""
    conversations, rejections = [], []
    for path in sorted(Path(folder).glob("*.jsonl")) if Path(folder).is_dir() else []:
        for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                rejections.append({"file": path.name, "line": line_no, "reason": f"invalid JSON ({exc.msg})"})
                continue
            problem = check_conversation(row)
            if problem:
                rejections.append({"file": path.name, "line": line_no, "reason": problem})
                continue
            messages = [{"role": "system", "content": system_prompt}] + [
                {"role": m["role"], "content": m["content"]} for m in row["messages"] if m["role"] != "system"
            ]
            refs = row.get("source_refs") or [{"file": path.name, "line": line_no}]
            doc_id = next((r.get("doc_id") for r in refs if isinstance(r, dict) and r.get("doc_id")), None)
            conversations.append(Conversation(tuple(messages), tuple(refs), doc_id, None, f"curated:{path.name}"))
    return conversations, rejections
