"""User-curated SFT conversations from data/raw/sft/*.jsonl, held to the same rules as the mined ones."""

from __future__ import annotations

import json
from pathlib import Path

from c64_pipeline.datasets.think_metrics import parse_assistant_turn

ROLES = {"system", "user", "assistant"}


def check_conversation(row: object) -> str | None:
    """Why a curated conversation is unusable, or None."""
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list) or not row["messages"]:
        return "no 'messages' list"
    turns = [m for m in row["messages"] if isinstance(m, dict) and m.get("role") != "system"]
    for message in row["messages"]:
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            return "every message needs a role (system, user or assistant) and string content"
    if not turns or turns[0]["role"] != "user" or turns[-1]["role"] != "assistant":
        return "turns must start with a user message and end with an assistant message"
    for previous, current in zip(turns, turns[1:]):
        if previous["role"] == current["role"]:
            return "user and assistant turns must alternate"
    for message in turns:
        if message["role"] == "assistant":
            parsed = parse_assistant_turn(message["content"])
            if not parsed.ok:
                return f"assistant turn: {parsed.problem}"
        elif not message["content"].strip():
            return "empty user message"
    return None


def load_curated_conversations(folder: Path, system_prompt: str) -> tuple[list[dict], list[dict]]:
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
            conversations.append({"messages": messages, "source_refs": refs, "doc_id": doc_id, "origin": f"curated:{path.name}"})
    return conversations, rejections
