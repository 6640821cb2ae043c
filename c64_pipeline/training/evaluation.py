"""Compare base, base+DAPT and base+DAPT+SFT: DAPT test perplexity, SFT test loss on assistant tokens, and greedy
generations for held-out SFT prompts checked against the reasoning contract and the reference answers' key facts.

The contract is checked on the TOKEN IDS of the continuation: decoding with skip_special_tokens=True would delete
[THINK] and [/THINK] and make any output look well formed.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from c64_pipeline.atomic import write_json, write_text
from c64_pipeline.training.common import Progress
from c64_pipeline.training.dapt import DTYPES, PadCollator, read_texts, token_windows
from c64_pipeline.training.manifest import dataset_versions
from c64_pipeline.training.model_loading import load_base_model, load_model_tokenizer, merge_adapter
from c64_pipeline.training.recipe import TrainingRecipe, resolved_precision
from c64_pipeline.training.sft import conversation_length, read_conversations

THINK, END_THINK = "[THINK]", "[/THINK]"
STAGES = ("base", "base+dapt", "base+dapt+sft")


# ---------------------------------------------------------------------------------------------------- contract


@dataclass(frozen=True)
class ContractResult:
    ok: bool
    problem: str | None
    reasoning_ids: tuple[int, ...] = ()
    answer_ids: tuple[int, ...] = ()


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
        ids = list(ids)
        if self.eos_id not in ids:
            return ContractResult(False, "no end-of-sequence token (ran out of max_new_tokens)")
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


# ---------------------------------------------------------------------------------------------------- facts

_HEX = re.compile(r"(?<![\w$])\$[0-9A-Fa-f]+\b")
_NUMBER = re.compile(r"(?<![\w$#%.])\d+(?:\.\d+)?(?![\w])")
_CAPS = re.compile(r"(?<![\w$])[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*(?![\w-])")


def key_facts(answer: str) -> set[str]:
    """`$`-hex addresses, numbers and ALL-CAPS names (2+ characters) of a reference answer."""
    facts = {m.group().upper() for m in _HEX.finditer(answer)}
    facts |= set(_NUMBER.findall(answer))
    facts |= {m.group() for m in _CAPS.finditer(answer) if len(m.group()) > 1}
    return facts


def facts_found(facts: set[str], answer: str) -> set[str]:
    present = {m.group().upper() for m in _HEX.finditer(answer)} | set(_NUMBER.findall(answer))
    present |= {m.group() for m in _CAPS.finditer(answer)}
    return facts & present


def reference_answer(content: str) -> str:
    return content.split(END_THINK, 1)[1].strip() if END_THINK in content else content.strip()


# ---------------------------------------------------------------------------------------------------- losses


@torch.no_grad()
def mean_nll(model, sequences: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> tuple[float, int]:
    """Token-weighted mean negative log-likelihood of (input_ids, labels) pairs, and the number of scored tokens."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    for start in range(0, len(order), batch_size):
        batch = [sequences[i] for i in order[start : start + batch_size]]
        padded = PadCollator(pad_id)([{"input_ids": ids} for ids, _ in batch])
        labels = torch.full_like(padded["input_ids"], -100)
        for row, (_, lab) in enumerate(batch):
            labels[row, : len(lab)] = torch.as_tensor(lab)
        scored = int((labels[:, 1:] != -100).sum())
        if not scored:
            continue
        out = model(input_ids=padded["input_ids"].to(device), attention_mask=padded["attention_mask"].to(device),
                    labels=labels.to(device))
        total += float(out.loss) * scored
        count += scored
    return (total / count if count else float("nan")), count


def assistant_labelled(tokenizer, conversation: list[dict]) -> tuple[list[int], list[int]]:
    out = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    return ids, [i if m else -100 for i, m in zip(ids, out["assistant_masks"])]


# ---------------------------------------------------------------------------------------------------- generations


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
def generate(model, tokenizer, messages: list[dict], max_new_tokens: int) -> list[int]:
    """Greedy continuation ids (prompt excluded) of the conversation so far."""
    device = next(model.parameters()).device
    prompt = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True)
    input_ids = torch.tensor([prompt["input_ids"]], device=device)
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return out[0, input_ids.shape[1] :].tolist()


def score_generations(
    model, tokenizer, conversations: list[list[dict]], max_new_tokens: int, contract: ReasoningContract
) -> dict:
    samples, problems = [], Counter()
    with_facts = correct = 0
    for conversation in conversations:
        ids = generate(model, tokenizer, prompt_messages(conversation), max_new_tokens)
        result = contract.check(ids)
        problems[result.problem or "ok"] += 1
        if result.ok:
            answer = tokenizer.decode(list(result.answer_ids), skip_special_tokens=True)
        else:  # facts are scored on whatever follows the last [/THINK], or on everything
            tail = ids[len(ids) - ids[::-1].index(contract.end_think_id) :] if contract.end_think_id in ids else ids
            answer = tokenizer.decode(tail, skip_special_tokens=True)
        reference = reference_answer(next(m["content"] for m in conversation if m["role"] == "assistant"))
        facts = key_facts(reference)
        found = facts_found(facts, answer)
        if facts:
            with_facts += 1
            correct += found == facts
        samples.append({
            "prompt": prompt_messages(conversation)[-1]["content"],
            "reference_answer": reference,
            "generation": tokenizer.decode(ids, skip_special_tokens=False),
            "contract_ok": result.ok,
            "problem": result.problem,
            "key_facts": sorted(facts),
            "facts_found": sorted(found),
        })
    n = len(conversations)
    return {
        "prompts": n,
        "format_ok": problems["ok"],
        "format_rate": problems["ok"] / n if n else None,
        "contract_problems": dict(problems),
        "fact_questions": with_facts,
        "fact_accuracy": correct / with_facts if with_facts else None,
        "samples": samples,
    }


# ---------------------------------------------------------------------------------------------------- report


def _markdown(report: dict, samples_per_model: int) -> str:
    lines = ["# Evaluation: base vs base+DAPT vs base+DAPT+SFT", ""]
    lines += ["| model | DAPT test perplexity | SFT test loss (assistant tokens) | format rate | fact accuracy |",
              "|---|---|---|---|---|"]

    def fmt(value, pattern="{:.3f}"):
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)

    for stage, r in report["models"].items():
        lines.append(
            f"| {stage} | {fmt(r['dapt_test_perplexity'], '{:.2f}')} | {fmt(r['sft_test_loss'])} | "
            f"{r['format_ok']}/{r['prompts']} | {fmt(r['fact_accuracy'], '{:.0%}')} |"
        )
    lines += ["", f"Settings: {report['settings']}", ""]
    for stage, r in report["models"].items():
        lines += [f"## Sample generations: {stage}", ""]
        if r["contract_problems"]:
            lines += [f"Contract results: {r['contract_problems']}", ""]
        for s in r["samples"][:samples_per_model]:
            verdict = "well formed" if s["contract_ok"] else f"malformed: {s['problem']}"
            lines += [f"**Q:** {s['prompt']}", "", f"**Reference:** {s['reference_answer']}", "",
                      "```", s["generation"], "```", "",
                      f"{verdict}; facts {s['facts_found']} of {s['key_facts']}", ""]
    return "\n".join(lines) + "\n"


def evaluate(
    model_dir: Path,
    dapt_adapter_dir: Path,
    sft_adapter_dir: Path,
    dapt_dir: Path,
    sft_dir: Path,
    out_dir: Path,
    recipe: TrainingRecipe | None = None,
    max_prompts: int | None = None,
    max_new_tokens: int | None = None,
    max_test_chunks: int = 200,
    max_sft_examples: int = 200,
    samples_per_model: int = 3,
    progress: Progress | None = None,
) -> dict:
    """Evaluate the three stages on the test splits; write out_dir/report.json and out_dir/report.md."""
    recipe = recipe or TrainingRecipe()
    max_prompts = recipe.eval_max_prompts if max_prompts is None else max_prompts
    max_new_tokens = recipe.eval_max_new_tokens if max_new_tokens is None else max_new_tokens
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    dapt_test, sft_test = Path(dapt_dir) / "test.parquet", Path(sft_dir) / "test.jsonl"
    tokenizer = load_model_tokenizer(model_dir)
    texts, _ = read_texts(dapt_test)
    windows, _ = token_windows(texts[:max_test_chunks], tokenizer, recipe.max_length)
    chunks = [(ids, ids) for ids in windows]
    conversations = [c for c in read_conversations(sft_test) if conversation_length(tokenizer, c) <= recipe.max_length]
    labelled = [assistant_labelled(tokenizer, c) for c in conversations[:max_sft_examples]]
    prompts = spread(conversations, max_prompts)
    contract = ReasoningContract.from_tokenizer(tokenizer)

    started = time.perf_counter()
    model = load_base_model(model_dir, DTYPES[resolved_precision(recipe)], "cuda" if torch.cuda.is_available() else None)
    models: dict[str, dict] = {}
    for stage in STAGES:
        if stage == "base+dapt":
            model = merge_adapter(model, dapt_adapter_dir)
        elif stage == "base+dapt+sft":
            model = merge_adapter(model, sft_adapter_dir)
        model.eval()
        nll, tokens = mean_nll(model, chunks, tokenizer.pad_token_id, recipe.per_device_eval_batch_size)
        sft_loss, sft_tokens = mean_nll(model, labelled, tokenizer.pad_token_id, recipe.per_device_eval_batch_size)
        models[stage] = {
            "dapt_test_perplexity": math.exp(nll) if tokens else None,
            "dapt_test_tokens": tokens,
            "sft_test_loss": sft_loss if sft_tokens else None,
            "sft_test_tokens": sft_tokens,
            **score_generations(model, tokenizer, prompts, max_new_tokens, contract),
        }
        if progress:
            progress({"stage": stage, **{k: v for k, v in models[stage].items() if k != "samples"}})
    report = {
        "models": models,
        "settings": {"max_prompts": max_prompts, "max_new_tokens": max_new_tokens, "max_length": recipe.max_length,
                     "max_test_chunks": max_test_chunks, "max_sft_examples": max_sft_examples, "greedy": True},
        "inputs": {"model_dir": str(model_dir), "dapt_adapter_dir": str(dapt_adapter_dir),
                   "sft_adapter_dir": str(sft_adapter_dir), "datasets": dataset_versions([dapt_test, sft_test])},
        "runtime_s": time.perf_counter() - started,
    }
    write_json(out_dir / "report.json", report)
    write_text(out_dir / "report.md", _markdown(report, samples_per_model))
    return report
