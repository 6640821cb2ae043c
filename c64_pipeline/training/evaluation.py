"""Compare base, base+DAPT and base+DAPT+SFT: DAPT test perplexity, SFT test loss on assistant tokens, generations
for held-out SFT prompts checked against the reasoning contract (generations cut by the token budget counted as
truncated, apart from broken formats) and the reference answers' key facts, and the closed-book accuracy on the
user's own exam (data/raw/eval/*.jsonl).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import torch

from c64_pipeline.conversation import final_answer, token_length
from c64_pipeline.atomic import write_json, write_text
from c64_pipeline.training.artifacts import EvaluationDir, dapt_split, sft_split
from c64_pipeline.training.common import Progress
from c64_pipeline.training.data import PadCollator, read_conversations, read_texts, token_windows
from c64_pipeline.training.exam import ExamQuestion, fact_stated, facts_found, key_facts, load_exam
from c64_pipeline.training.generation import (
    END_THINK,
    THINK,
    TRUNCATED,
    ContractResult,
    ReasoningContract,
    generate,
    prompt_messages,
    spread,
)
from c64_pipeline.training.manifest import dataset_versions
from c64_pipeline.training.model_loading import DTYPES, load_base_model, load_model_tokenizer, merge_adapter
from c64_pipeline.training.recipe import GenerationSettings, TrainingRecipe, resolved_precision

__all__ = [
    "END_THINK", "STAGES", "THINK", "TRUNCATED", "ContractResult", "ReasoningContract", "evaluate", "facts_found",
    "key_facts", "score_exam", "score_generations", "spread",
]

STAGES = ("base", "base+dapt", "base+dapt+sft")


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


def form_counts(results: list[ContractResult]) -> dict:
    """Well formed, truncated (cut by the token budget: form unknown) and malformed generations, and the format
    rate over the generations that finished (None when none did)."""
    ok = sum(r.ok for r in results)
    truncated = sum(r.truncated for r in results)
    finished = len(results) - truncated
    return {
        "format_ok": ok,
        "truncated": truncated,
        "malformed": finished - ok,
        "finished": finished,
        "format_rate": ok / finished if finished else None,
        "truncated_rate": truncated / len(results) if results else None,
    }


def score_generations(
    model, tokenizer, conversations: list[list[dict]], settings: GenerationSettings | int, contract: ReasoningContract
) -> dict:
    samples, results, problems = [], [], Counter()
    with_facts = correct = 0
    for conversation in conversations:
        ids = generate(model, tokenizer, prompt_messages(conversation), settings)
        result = contract.check(ids)
        results.append(result)
        problems[TRUNCATED if result.truncated else (result.problem or "ok")] += 1
        if result.ok:
            answer = tokenizer.decode(list(result.answer_ids), skip_special_tokens=True)
        else:  # facts are scored on whatever follows the last [/THINK], or on everything
            tail = ids[len(ids) - ids[::-1].index(contract.end_think_id) :] if contract.end_think_id in ids else ids
            answer = tokenizer.decode(tail, skip_special_tokens=True)
        reference = final_answer(next(m["content"] for m in conversation if m["role"] == "assistant"))
        facts = key_facts(reference)
        found = facts_found(facts, answer)
        if facts:
            with_facts += 1
            correct += found == facts
        samples.append({
            "prompt": prompt_messages(conversation)[-1]["content"],
            "reference_answer": reference,
            "generation": tokenizer.decode(ids, skip_special_tokens=False),
            "generated_tokens": len(ids),
            "contract_ok": result.ok,
            "truncated": result.truncated,
            "problem": result.problem,
            "key_facts": sorted(facts),
            "facts_found": sorted(found),
        })
    return {
        "prompts": len(conversations),
        **form_counts(results),
        "contract_problems": dict(problems),
        "fact_questions": with_facts,
        "fact_accuracy": correct / with_facts if with_facts else None,
        "samples": samples,
    }


def judge_answer(question: ExamQuestion, ids: list[int], tokenizer, contract: ReasoningContract) -> dict:
    """One exam answer: correct when its final answer (after `[/THINK]`, up to the end of sequence) states every
    key fact. Facts in the reasoning do not count; a truncated generation has no final answer unless it already
    closed its reasoning."""
    result = contract.check(ids)
    final = tokenizer.decode(contract.final_answer_ids(ids), skip_special_tokens=True).strip()
    found = [f for f in question.key_facts if fact_stated(f, final)]
    return {
        "question": question.question, "reference_answer": question.answer, "key_facts": list(question.key_facts),
        "facts_found": found, "correct": len(found) == len(question.key_facts), "final_answer": final,
        "generation": tokenizer.decode(ids, skip_special_tokens=False), "generated_tokens": len(ids),
        "truncated": result.truncated, "contract_ok": result.ok, "source": question.source,
        "file": question.file, "line": question.line,
    }


def score_exam(
    model, tokenizer, questions: list[ExamQuestion], system_prompt: str, settings: GenerationSettings | int,
    contract: ReasoningContract,
) -> dict:
    """Closed-book accuracy: each question asked with the system prompt alone (no manual text), judged by
    `judge_answer`. Truncated answers are counted (and are wrong unless their final answer was already given)."""
    answers = [
        judge_answer(q, generate(model, tokenizer, [{"role": "system", "content": system_prompt},
                                                   {"role": "user", "content": q.question}], settings),
                     tokenizer, contract)
        for q in questions
    ]
    n = len(questions)
    correct = sum(a["correct"] for a in answers)
    facts = sum(len(q.key_facts) for q in questions)
    return {
        "questions": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "facts_found_share": sum(len(a["facts_found"]) for a in answers) / facts if facts else None,
        "truncated": sum(a["truncated"] for a in answers),
        "format_ok": sum(a["contract_ok"] for a in answers),
        "answers": answers,
    }


# ---------------------------------------------------------------------------------------------------- report


def _fmt(value, pattern="{:.3f}") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)


def _cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def summary_table(report: dict) -> str:
    """Stage by figure, as a Markdown table (the UI shows it as the evaluation's metadata)."""
    lines = ["| stage | DAPT test perplexity | SFT test loss | format rate (finished) | truncated | malformed | "
             "held-out fact accuracy | exam accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for stage, r in report["models"].items():
        exam = r.get("exam") or {}
        exam_cell = (f"{exam['correct']}/{exam['questions']} ({_fmt(exam['accuracy'], '{:.0%}')})"
                     if exam.get("questions") else "no exam")
        if exam.get("truncated"):
            exam_cell += f", {exam['truncated']} truncated"
        lines.append(
            f"| {stage} | {_fmt(r['dapt_test_perplexity'], '{:.2f}')} | {_fmt(r['sft_test_loss'])} | "
            f"{r['format_ok']}/{r['finished']} ({_fmt(r['format_rate'], '{:.0%}')}) | "
            f"{r['truncated']}/{r['prompts']} | {r['malformed']} | {_fmt(r['fact_accuracy'], '{:.0%}')} | {exam_cell} |"
        )
    return "\n".join(lines) + "\n"


def _markdown(report: dict, samples_per_model: int) -> str:
    settings = report["settings"]
    generation = settings["generation"]
    how = "greedy" if not generation["do_sample"] else (
        f"sampling (temperature {generation['temperature']}, top_p {generation['top_p']}, seed {generation['seed']})")
    measured = list(report["models"].values())
    first, last = measured[0], measured[-1]
    lines = ["# Evaluation: base vs base+DAPT vs base+DAPT+SFT", "", summary_table(report).rstrip(), "",
             f"Generations: {how}, at most {generation['max_new_tokens']} new tokens; a generation that reaches the "
             "budget without an end of sequence is *truncated* (its format is unknown) and left out of the format "
             f"rate. Held-out prompts: {last['prompts']} from the SFT test split"
             + ("." if first["prompts"] == last["prompts"] else
                f" ({first['prompts']} of them for the models before SFT)."), ""]
    exam = report["exam"]
    if exam["questions"] or exam["rejections"]:
        lines += [f"Exam: {exam['questions']} questions from {exam['dir']}"
                  + (f" (capped from {exam['available']})" if exam["available"] > exam["questions"] else "")
                  + "; correct when the final answer (after [/THINK]) states every key fact.", ""]
        if exam["rejections"]:
            lines += [f"Rejected exam lines ({len(exam['rejections'])}):", ""]
            lines += [f"- {r['file']}:{r['line']}: {r['reason']}" for r in exam["rejections"]] + [""]
    lines += [f"Settings: {settings}", ""]
    for stage, r in report["models"].items():
        lines += [f"## Sample generations: {stage}", ""]
        if r["contract_problems"]:
            lines += [f"Contract results: {r['contract_problems']}", ""]
        for s in r["samples"][:samples_per_model]:
            verdict = ("well formed" if s["contract_ok"] else "truncated (budget reached)" if s["truncated"]
                       else f"malformed: {s['problem']}")
            lines += [f"**Q:** {s['prompt']}", "", f"**Reference:** {s['reference_answer']}", "",
                      "```", s["generation"], "```", "",
                      f"{verdict}; facts {s['facts_found']} of {s['key_facts']}", ""]
        answers = (r.get("exam") or {}).get("answers") or []
        if answers:
            lines += [f"### Exam answers: {stage}", "", "| question | key facts | final answer | verdict |",
                      "|---|---|---|---|"]
            for a in answers:
                verdict = "correct" if a["correct"] else ("truncated" if a["truncated"] else "wrong")
                lines.append(f"| {_cell(a['question'])} | {_cell(', '.join(a['key_facts']))} | "
                             f"{_cell(a['final_answer'][:200]) or '_(none)_'} | {verdict} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def evaluate(
    model_dir: Path,
    dapt_adapter_dir: Path,
    sft_adapter_dir: Path,
    dapt_dir: Path,
    sft_dir: Path,
    out_dir: Path,
    recipe: TrainingRecipe | None = None,
    samples_per_model: int = 3,
    progress: Progress | None = None,
    exam_dir: Path | None = None,
) -> dict:
    """Evaluate the three stages on the test splits and the exam in `exam_dir` (if any); write out_dir/report.json
    and out_dir/report.md (with `samples_per_model` sample generations a stage). Every limit of what is measured is a
    recipe field (`eval_max_prompts`, `eval_max_prompts_before_sft`, `eval_max_new_tokens`, `eval_max_test_chunks`, `eval_max_sft_examples`,
    `eval_max_exam_questions`)."""
    from c64_pipeline.base_model import compose_system_prompt

    recipe = recipe or TrainingRecipe()
    max_prompts, max_test_chunks, max_sft_examples = (recipe.eval_max_prompts, recipe.eval_max_test_chunks,
                                                       recipe.eval_max_sft_examples)
    settings = recipe.generation()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    dapt_test, sft_test = dapt_split(dapt_dir, "test"), sft_split(sft_dir, "test")
    tokenizer = load_model_tokenizer(model_dir)
    texts, _ = read_texts(dapt_test)
    windows, _ = token_windows(texts[:max_test_chunks], tokenizer, recipe.max_length)
    chunks = [(ids, ids) for ids in windows]
    conversations = [c for c in read_conversations(sft_test) if token_length(tokenizer, c) <= recipe.max_length]
    labelled = [assistant_labelled(tokenizer, c) for c in conversations[:max_sft_examples]]
    prompts = spread(conversations, max_prompts)
    before_sft = max_prompts if recipe.eval_max_prompts_before_sft is None else recipe.eval_max_prompts_before_sft
    prompts_before_sft = spread(conversations, min(before_sft, max_prompts))
    contract = ReasoningContract.from_tokenizer(tokenizer)
    questions, rejections = load_exam(exam_dir) if exam_dir is not None else ([], [])
    available = len(questions)
    if recipe.eval_max_exam_questions is not None:
        questions = spread(questions, recipe.eval_max_exam_questions) if recipe.eval_max_exam_questions else []
    system_prompt = compose_system_prompt(model_dir) if questions else ""

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
            **score_generations(model, tokenizer, prompts if stage == "base+dapt+sft" else prompts_before_sft, settings,
                                contract),
            "exam": score_exam(model, tokenizer, questions, system_prompt, settings, contract) if questions else None,
        }
        if progress:
            exam = models[stage]["exam"] or {}
            progress({"stage": stage, **{k: v for k, v in models[stage].items() if k not in ("samples", "exam")},
                      **{f"exam_{k}": v for k, v in exam.items() if k != "answers"}})
    report = {
        "models": models,
        "exam": {"dir": str(exam_dir) if exam_dir is not None else None, "questions": len(questions),
                 "available": available, "rejections": [r.as_dict() for r in rejections]},
        "settings": {"max_prompts": max_prompts, "max_prompts_before_sft": len(prompts_before_sft),
                     "max_new_tokens": settings.max_new_tokens,
                     "max_length": recipe.max_length, "max_test_chunks": max_test_chunks,
                     "max_sft_examples": max_sft_examples, "greedy": not settings.do_sample,
                     "max_exam_questions": recipe.eval_max_exam_questions, "generation": settings.as_dict()},
        "inputs": {"model_dir": str(model_dir), "dapt_adapter_dir": str(dapt_adapter_dir),
                   "sft_adapter_dir": str(sft_adapter_dir), "datasets": dataset_versions([dapt_test, sft_test])},
        "runtime_s": time.perf_counter() - started,
    }
    written = EvaluationDir(out_dir)
    write_json(written.report, report)
    write_text(written.report_markdown, _markdown(report, samples_per_model))
    return report
