"""Conversations from mined records: system prompt, question, `[THINK]reasoning[/THINK]answer`, source references."""

from __future__ import annotations

from collections.abc import Sequence

from c64_pipeline.conversation import Conversation, assistant_turn
from c64_pipeline.datasets.sft.common import Mined, assistant_content, hex4
from c64_pipeline.datasets.sft.registers import Fact


def _conversation(record: Mined, system_prompt: str, turns: list[tuple[str, str]], refs: list[dict]) -> Conversation:
    messages = [{"role": "system", "content": system_prompt}]
    for question, content in turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": content}]
    return Conversation(tuple(messages), tuple(refs), record.doc_id, record.family, "mined")


def build_conversations(records: Sequence[Mined], system_prompt: str, multi_turn_every: int = 4) -> list[Conversation]:
    """One conversation per (record, question kind), each asked exactly once.

    Register rows: every `multi_turn_every`-th row with a next row on the same page opens a conversation with a
    follow-up turn about that row, whose own conversations then skip the kind the follow-up already asked.
    Other families: a record with several kinds asks its second kind as a follow-up of the first (the way a reader
    goes on: "what does CHROUT do?" then "what must be in A?"), the rest one conversation each."""
    conversations: list[Conversation] = []
    asked_in_follow_up: dict[int, str] = {}
    for i, record in enumerate(records):
        if not isinstance(record, Fact):
            kinds = record.kinds()
            turns = [record.turn(k) for k in kinds]
            first = [(t.question, assistant_content(t)) for t in turns[:2]]
            conversations.append(_conversation(record, system_prompt, first, record.refs()))
            for t in turns[2:]:
                conversations.append(_conversation(record, system_prompt, [(t.question, assistant_content(t))], record.refs()))
            continue
        nxt = records[i + 1] if i + 1 < len(records) else None
        follow_up = (
            bool(multi_turn_every)
            and i % multi_turn_every == 0
            and isinstance(nxt, Fact)
            and (nxt.doc_id, nxt.page) == (record.doc_id, record.page)
        )
        kinds = [k for k in record.kinds() if k != asked_in_follow_up.get(i)]
        for number, kind in enumerate(kinds):
            turn = record.turn(kind)
            turns = [(turn.question, assistant_content(turn))]
            refs = record.refs()
            if follow_up and number == 0:
                follow = nxt.turn("meaning")
                reasoning = f"The follow-up points at the next row after {hex4(record.address)} on the same page. " + follow.reasoning
                turns.append((f"And the entry listed next to it, {hex4(nxt.address)}?", assistant_turn(reasoning, follow.answer)))
                refs = refs + nxt.refs()
                asked_in_follow_up[i + 1] = "meaning"
            conversations.append(_conversation(record, system_prompt, turns, refs))
    return conversations
