"""What an SFT conversation is, defined once: its record, its shape, its assistant turns and its length in tokens.

- An assistant turn is `[THINK]short reasoning[/THINK]final answer` (`assistant_turn` writes it,
  `parse_assistant_turn` reads it back or says why it is malformed). The markers are the Ministral 3 control tokens;
  the THINK metrics and the gates read them, the tokenizer checks and the reasoning contract look them up by name.
- A conversation is a system prompt, then user and assistant turns alternating, ending with an assistant turn
  (`shape_problem` says what is wrong with one, for curated lines and for the jsonl files training reads).
- `Conversation` is the record the SFT builder makes and the jsonl files hold, one per line: `messages` (the chat
  template's input), `source_refs` (document, page, line, verbatim evidence), `doc_id`, `family` (mined ones) and
  `origin` ("mined", or "curated:<file>").
- `token_length`: a conversation's length as the chat template renders it, the one measure the report and training
  both use.

Plain Python: no Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from c64_pipeline.records import Record

THINK_OPEN = "[THINK]"
THINK_CLOSE = "[/THINK]"
ROLES = ("system", "user", "assistant")

# Anything that looks like a think marker. Only the exact markers are special tokens of the tokenizer; a variant
# (`[think]`, `[ THINK ]`, `<think>`, `[THINK\]`) would survive as raw text and teach the model to emit it literally.
_MARKER_LIKE = re.compile(r"[\[<]\s*/?\s*think(?:ing)?\s*\\?[\]>]", re.IGNORECASE)


def assistant_turn(reasoning: str, answer: str) -> str:
    """An assistant turn's content in the one form the project trains on."""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{answer}"


@dataclass(frozen=True)
class ThinkParse:
    ok: bool
    reasoning: str
    answer: str
    problem: str | None


def _bad(problem: str) -> ThinkParse:
    return ThinkParse(ok=False, reasoning="", answer="", problem=problem)


def parse_assistant_turn(content: str) -> ThinkParse:
    """Split an assistant turn into reasoning and final answer, or say why it is malformed."""
    if not isinstance(content, str):
        return _bad("non-text content")
    if any(m.group() not in (THINK_OPEN, THINK_CLOSE) for m in _MARKER_LIKE.finditer(content)):
        return _bad("malformed marker")
    opens, closes = content.count(THINK_OPEN), content.count(THINK_CLOSE)
    if opens == 0:
        return _bad("missing [THINK]")
    if opens > 1:
        return _bad("two [THINK] blocks")
    if not content.lstrip().startswith(THINK_OPEN):
        return _bad("[THINK] not at start")
    if closes == 0:
        return _bad("missing [/THINK]")
    if closes > 1:
        return _bad("unbalanced markers")
    reasoning, answer = content.lstrip()[len(THINK_OPEN) :].split(THINK_CLOSE)
    if not reasoning.strip():
        return _bad("empty reasoning")
    if not answer.strip():
        return _bad("empty final answer")
    return ThinkParse(ok=True, reasoning=reasoning.strip(), answer=answer.strip(), problem=None)


def final_answer(content: str) -> str:
    """What an assistant turn gives as its answer: the text after `[/THINK]`, or all of it when there is none."""
    return content.split(THINK_CLOSE, 1)[1].strip() if THINK_CLOSE in content else content.strip()


def shape_problem(messages: Any) -> str | None:
    """Why `messages` is not a conversation the project trains on, or None: a list of {role, content} with string
    content, system messages aside the turns start with a user message, alternate, and end with an assistant turn;
    no user message is empty and every assistant turn is `[THINK]reasoning[/THINK]answer`."""
    if not isinstance(messages, list | tuple) or not messages:
        return "no 'messages' list"
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            return "every message needs a role (system, user or assistant) and string content"
    turns = [m for m in messages if m["role"] != "system"]
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


@dataclass(frozen=True)
class Conversation(Record):
    """One SFT conversation, as a line of the jsonl files holds it."""

    messages: tuple[dict, ...]
    source_refs: tuple[dict, ...] = ()
    doc_id: str | None = None
    family: str | None = None  # the knowledge family a mined conversation teaches; curated ones have none
    origin: str = "mined"

    def to_dict(self) -> dict:
        data = super().to_dict()
        if self.family is None:
            del data["family"]
        return data

    @property
    def chat(self) -> list[dict]:
        """The messages as the chat template takes them (role and content only)."""
        return [{"role": m["role"], "content": m["content"]} for m in self.messages]

    def contents(self, role: str) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == role]

    @property
    def final_answers(self) -> list[str]:
        """The final answer of each assistant turn."""
        return [final_answer(c) for c in self.contents("assistant")]

    def cites(self, doc_id: str) -> bool:
        """Whether the conversation comes from `doc_id` or quotes evidence from it."""
        return self.doc_id == doc_id or any(r.get("doc_id") == doc_id for r in self.source_refs)


def token_length(tokenizer, messages: Sequence[Mapping]) -> int:
    """Tokens of `messages` as the tokenizer's chat template renders them (what training sees)."""
    return len(tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=True)["input_ids"])
