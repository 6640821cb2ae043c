"""Generating answers and judging their form: the reasoning contract on token ids, truncation by the token budget,
the final answer after `[/THINK]`. Shared by the evaluation and the sample generations shown during SFT.

The contract is checked on the TOKEN IDS of the continuation: decoding with skip_special_tokens=True would delete
[THINK] and [/THINK] and make any output look well formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from c64_pipeline.conversation import THINK_CLOSE as END_THINK, THINK_OPEN as THINK
from c64_pipeline.training.recipe import GenerationSettings

TRUNCATED = "truncated"  # the problem of a generation that used the whole budget without an end of sequence


@dataclass(frozen=True)
class ContractResult:
    ok: bool
    problem: str | None
    reasoning_ids: tuple[int, ...] = ()
    answer_ids: tuple[int, ...] = ()
    truncated: bool = False  # cut by the token budget: its format is unknown, not broken


@dataclass(frozen=True)
class ReasoningContract:
    """`[THINK]` reasoning `[/THINK]` final answer `</s>`, on token ids. `blank_ids` are ids that decode to
    whitespace only (they do not make reasoning or an answer non-empty); `special_ids` may not appear inside."""

    think_id: int
    end_think_id: int
    eos_id: int
    special_ids: frozenset[int] = frozenset()
    blank_ids: frozenset[int] = frozenset()

    @classmethod
    def from_tokenizer(cls, tokenizer) -> ReasoningContract:
        think, end_think = tokenizer.convert_tokens_to_ids([THINK, END_THINK])
        unk = tokenizer.unk_token_id
        if unk is not None and unk in (think, end_think):
            raise ValueError(f"the tokenizer has no {THINK} / {END_THINK} special tokens")
        blank = frozenset(i for t, i in tokenizer.get_vocab().items() if not tokenizer.decode([i]).strip())
        return cls(think, end_think, tokenizer.eos_token_id, frozenset(tokenizer.all_special_ids), blank)

    def check(self, ids: Sequence[int]) -> ContractResult:
        """The verdict on a continuation. Without an end of sequence the generation was cut by the token budget
        (generation stops only there or at the budget): it is `truncated`, which says nothing about its format."""
        ids = list(ids)
        if self.eos_id not in ids:
            return ContractResult(False, "no end-of-sequence token (ran out of max_new_tokens)", truncated=True)
        body = ids[: ids.index(self.eos_id)]
        opens, closes = body.count(self.think_id), body.count(self.end_think_id)
        if opens != 1:
            return ContractResult(False, "missing [THINK]" if opens == 0 else "more than one [THINK]")
        if closes != 1:
            return ContractResult(False, "missing [/THINK]" if closes == 0 else "more than one [/THINK]")
        if body[0] != self.think_id:
            return ContractResult(False, "output before [THINK]")
        close = body.index(self.end_think_id)
        reasoning, answer = tuple(body[1:close]), tuple(body[close + 1 :])
        if all(i in self.blank_ids for i in reasoning):
            return ContractResult(False, "empty reasoning", reasoning, answer)
        if all(i in self.blank_ids for i in answer):
            return ContractResult(False, "empty final answer", reasoning, answer)
        allowed = {self.think_id, self.end_think_id}
        if any(i in self.special_ids and i not in allowed for i in body):
            return ContractResult(False, "special token inside the turn", reasoning, answer)
        return ContractResult(True, None, reasoning, answer)

    def final_answer_ids(self, ids: Sequence[int]) -> list[int]:
        """What the model gave as its answer: the ids after the last `[/THINK]` (up to the end of sequence); all of
        them when it never opened `[THINK]` (a model answering directly); none while its reasoning is still open."""
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        if self.end_think_id in ids:
            return ids[len(ids) - ids[::-1].index(self.end_think_id) :]
        return [] if self.think_id in ids else ids


def spread(items: list, count: int) -> list:
    """`count` items evenly spaced over `items` (all of them if there are fewer): a test split is ordered by document
    and page, so its first rows would all ask about one page."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def prompt_messages(conversation: list[dict]) -> list[dict]:
    """The turns before the first assistant turn (system + user)."""
    first = next(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    return conversation[:first]


@torch.no_grad()
def generate(model, tokenizer, messages: list[dict], settings: GenerationSettings | int) -> list[int]:
    """Continuation ids (prompt excluded) of the conversation so far: greedy, or sampled (seeded) as `settings`
    say; an int is a greedy token budget."""
    if isinstance(settings, int):
        settings = GenerationSettings(max_new_tokens=settings)
    device = next(model.parameters()).device
    prompt = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True)
    input_ids = torch.tensor([prompt["input_ids"]], device=device)
    sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p} if (
        settings.do_sample) else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    if settings.do_sample:
        torch.manual_seed(settings.seed)
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,  # training turns the cache off in the model config; generation needs it to stay linear
        **sampling,
    )
    return out[0, input_ids.shape[1] :].tolist()
