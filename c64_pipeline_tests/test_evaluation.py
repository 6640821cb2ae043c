"""Evaluation a user can believe: generation settings, truncation counted apart from broken formats, the user's own
exam scored per stage, fixed-prompt generations during SFT, the report as a stage-by-figure table."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch

from c64_pipeline.base_model import compose_system_prompt
from c64_pipeline.demo.cli import SAMPLE_EXAM_DIR
from c64_pipeline.demo.model import SAMPLE_SOURCES
from c64_pipeline.training.artifacts import SAMPLE_GENERATIONS
from c64_pipeline.training.common import SampleGenerations, make_run_key, sample_generations_markdown
from c64_pipeline.training.evaluation import (
    evaluate,
    form_counts,
    judge_answer,
    score_generations,
    summary_table,
)
from c64_pipeline.training.exam import ExamQuestion, fact_stated, load_exam
from c64_pipeline.training.generation import ReasoningContract, generate
from c64_pipeline.training.model_loading import load_base_model
from c64_pipeline.training.recipe import GenerationSettings, TrainingRecipe, demo_profile, founding_recipe
from c64_pipeline.training.sft import train_sft
from c64_pipeline_tests.conftest import REGISTERS, quick

SAMPLE_EXAM = SAMPLE_EXAM_DIR
CONTRACT = ReasoningContract(think_id=7, end_think_id=8, eos_id=2, special_ids=frozenset({1, 2, 3, 7, 8}))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(**fields) -> str:
    return json.dumps(fields)


# ---------------------------------------------------------------------------------------------------- settings


def test_generation_is_greedy_by_default_and_sampling_is_configuration():
    founding, demo = founding_recipe(), demo_profile()
    assert founding.generation() == GenerationSettings(max_new_tokens=founding.eval_max_new_tokens)
    assert not founding.generation().do_sample and demo.generation().max_new_tokens == demo.eval_max_new_tokens
    # a reasoning model writes its reasoning before the answer: the real budget is larger than the demo's
    assert founding.eval_max_new_tokens > demo.eval_max_new_tokens
    sampled = founding.replace(eval_do_sample=True, eval_temperature=0.7, eval_top_p=0.95).generation(64)
    assert (sampled.do_sample, sampled.temperature, sampled.top_p, sampled.max_new_tokens) == (True, 0.7, 0.95, 64)
    assert TrainingRecipe.from_dict(sampled_recipe := founding.replace(eval_do_sample=True).as_dict()).eval_do_sample
    assert sampled_recipe["eval_temperature"] == founding.eval_temperature
    for bad in ({"eval_temperature": 0.0}, {"eval_top_p": 1.5}, {"eval_max_new_tokens": 0},
                {"sample_generation_prompts": -1}, {"eval_max_test_chunks": -1}, {"eval_max_sft_examples": -1}):
        with pytest.raises(ValueError):
            founding.replace(**bad)


def test_generation_settings_do_not_invalidate_checkpoints(tiny_model_dir):
    recipe = demo_profile()
    key = make_run_key(recipe, tiny_model_dir, [])
    assert make_run_key(recipe.replace(eval_max_new_tokens=64, eval_do_sample=True, sample_generation_prompts=1,
                                       eval_max_test_chunks=5, eval_max_sft_examples=7), tiny_model_dir, []) == key
    assert make_run_key(recipe.replace(learning_rate=1e-4), tiny_model_dir, []) != key


# ---------------------------------------------------------------------------------------------------- truncation


def test_form_counts_keep_truncated_apart_from_malformed():
    results = [CONTRACT.check(ids) for ids in ([7, 20, 8, 30, 2], [7, 20, 8, 30], [7, 20, 20], [20, 30, 2])]
    assert [r.truncated for r in results] == [False, True, True, False]
    counts = form_counts(results)
    assert (counts["format_ok"], counts["truncated"], counts["malformed"], counts["finished"]) == (1, 2, 1, 2)
    assert counts["format_rate"] == 0.5 and counts["truncated_rate"] == 0.5
    assert form_counts([CONTRACT.check([7, 20])])["format_rate"] is None  # nothing finished: no rate at all


def test_final_answer_is_what_follows_the_last_end_of_reasoning():
    assert CONTRACT.final_answer_ids([7, 20, 8, 30, 31, 2, 9]) == [30, 31]
    assert CONTRACT.final_answer_ids([30, 31, 2]) == [30, 31]  # answered directly, no reasoning
    assert CONTRACT.final_answer_ids([7, 20, 30]) == []  # still reasoning when the budget ran out


def test_a_generation_cut_by_a_small_budget_is_truncated_not_malformed(tiny_model_dir, tiny_tokenizer):
    model = load_base_model(tiny_model_dir, torch.float32).eval()
    contract = ReasoningContract.from_tokenizer(tiny_tokenizer)
    conversation = [{"role": "system", "content": compose_system_prompt(tiny_model_dir)},
                    {"role": "user", "content": "Where is the border colour register?"},
                    {"role": "assistant", "content": "[THINK]The VIC-II table.[/THINK]$D020."}]
    ids = generate(model, tiny_tokenizer, conversation[:2], 3)
    assert len(ids) == 3 and tiny_tokenizer.eos_token_id not in ids  # the budget, not the model, ended it
    scored = score_generations(model, tiny_tokenizer, [conversation], GenerationSettings(max_new_tokens=3), contract)
    assert (scored["truncated"], scored["malformed"], scored["format_ok"]) == (1, 0, 0)
    assert scored["format_rate"] is None and scored["contract_problems"] == {"truncated": 1}
    assert scored["samples"][0]["truncated"] and scored["samples"][0]["generated_tokens"] == 3


def test_sampling_is_seeded_and_reproducible(tiny_model_dir, tiny_tokenizer):
    model = load_base_model(tiny_model_dir, torch.float32).eval()
    messages = [{"role": "user", "content": "Where is CHROUT?"}]
    settings = GenerationSettings(max_new_tokens=6, do_sample=True, temperature=1.5, top_p=0.95, seed=7)
    first = generate(model, tiny_tokenizer, messages, settings)
    assert generate(model, tiny_tokenizer, messages, settings) == first
    greedy = generate(model, tiny_tokenizer, messages, 6)
    others = {tuple(generate(model, tiny_tokenizer, messages, GenerationSettings(6, True, 1.5, 0.95, seed)))
              for seed in range(8)}
    assert len(others | {tuple(greedy)}) > 1  # sampling really samples


# ---------------------------------------------------------------------------------------------------- exam files


def test_exam_lines_are_validated_with_file_line_and_reason(tmp_path):
    exam = tmp_path / "eval"
    write_lines(exam / "a.jsonl", [
        row(question="Where is CHROUT?", answer="CHROUT is at $FFD2.", key_facts=["$FFD2"], source="kernal"),
        "{not json",
        row(question="Where is GETIN?"),
        row(question="Where is GETIN?", answer="At $FFE4.", keyfacts=["$FFE4"]),
        row(question="Where is SETLFS?", answer="At $FFBA.", key_facts=["$FFBB"]),
        row(question="Is it fast?", answer="quite fast"),
        "",
        row(question="where is  chrout?", answer="CHROUT is at $FFD2."),
        row(question="Which chip plays sound?", answer="The SID plays sound.", key_facts="SID"),
        "[1, 2]",
    ])
    write_lines(exam / "b.jsonl", [row(question="How many bytes free?", answer="38911 BASIC bytes free.")])
    (exam / "notes.txt").write_text("not an exam file")
    questions, rejections = load_exam(exam)
    assert [(q.file, q.line, q.key_facts, q.facts_derived) for q in questions] == [
        ("a.jsonl", 1, ("$FFD2",), False), ("b.jsonl", 1, ("38911", "BASIC"), True)]
    reasons = {(r.file, r.line): r.reason for r in rejections}
    assert set(reasons) == {("a.jsonl", n) for n in (2, 3, 4, 5, 6, 8, 9, 10)}
    assert reasons[("a.jsonl", 2)].startswith("invalid JSON")
    assert "'answer'" in reasons[("a.jsonl", 3)]
    assert "unknown field(s) 'keyfacts'" in reasons[("a.jsonl", 4)]
    assert "'$FFBB' not stated in the answer" in reasons[("a.jsonl", 5)]
    assert reasons[("a.jsonl", 6)].startswith("no key facts")
    assert reasons[("a.jsonl", 8)] == "the same question as a.jsonl:1"
    assert "'key_facts' must be a non-empty list" in reasons[("a.jsonl", 9)]
    assert reasons[("a.jsonl", 10)] == "not a JSON object"
    assert str(rejections[0]) == f"a.jsonl:2: {reasons[('a.jsonl', 2)]}"
    assert load_exam(tmp_path / "missing") == ([], [])


def test_user_key_facts_match_whole_tokens_and_words():
    assert fact_stated("$FFD2", "jump to $ffd2 now") and not fact_stated("$FFD2", "$FFD20")
    assert fact_stated("38911", "38911 bytes") and not fact_stated("3891", "38911 bytes")
    assert fact_stated("low byte first", "stored Low Byte First.") and not fact_stated("CHROUT", "CHROUTX")


def _source_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()) if path.suffix == ".html" else text


def test_the_sample_exam_is_valid_and_answered_by_the_sample_manuals():
    questions, rejections = load_exam(SAMPLE_EXAM)
    assert rejections == [] and 10 <= len(questions) <= 20
    for q in questions:
        source = SAMPLE_SOURCES / q.source  # the sample manual the answer comes from
        assert source.is_file(), q.source
        text = _source_text(source)
        for fact in q.key_facts:
            assert fact_stated(fact, text), (q.question, fact, q.source)


# ---------------------------------------------------------------------------------------------------- exam scoring


def test_exam_answer_is_judged_on_the_final_answer_only(tiny_tokenizer):
    contract = ReasoningContract.from_tokenizer(tiny_tokenizer)
    question = ExamQuestion("Where is the border colour?", "$D020 (53280).", ("$D020",), False, None, "e.jsonl", 1)

    def judged(text: str) -> dict:
        return judge_answer(question, tiny_tokenizer(text, add_special_tokens=False)["input_ids"], tiny_tokenizer,
                            contract)

    right = judged("[THINK]The VIC-II table lists it.[/THINK]It is $D020.</s>")
    assert right["correct"] and right["final_answer"] == "It is $D020." and not right["truncated"]
    only_in_reasoning = judged("[THINK]Maybe $D020.[/THINK]I do not know.</s>")
    assert not only_in_reasoning["correct"] and only_in_reasoning["facts_found"] == []
    cut = judged("[THINK]It could be $D020 or")
    assert cut["truncated"] and not cut["correct"] and cut["final_answer"] == ""
    direct = judged("It is $d020.</s>")  # a model that answers without reasoning is judged on what it said
    assert direct["correct"] and not direct["contract_ok"]


@pytest.mark.slow
def test_exam_accuracy_per_stage_in_the_report(model_dir, data_dir, dapt_run, sft_run, tmp_path):
    exam = tmp_path / "eval"
    write_lines(exam / "registers.jsonl", [
        row(question=f"Which register sets the {name}?", answer=f"The {name} register is {address} ({decimal}).",
            key_facts=[address], source=chip) for name, address, decimal, chip in REGISTERS[:3]
    ] + ["{broken"])
    out = tmp_path / "evaluation"
    recipe = quick(eval_max_exam_questions=2, eval_max_prompts=1, eval_max_new_tokens=12)
    report = evaluate(model_dir, dapt_run[0], sft_run[0], data_dir / "dapt", data_dir / "sft", out, recipe,
                      exam_dir=exam)
    assert report["exam"]["questions"] == 2 and report["exam"]["available"] == 3
    assert report["exam"]["rejections"] == [{"file": "registers.jsonl", "line": 4, "reason": "invalid JSON (Expecting "
                                                                                            "property name enclosed in double quotes)"}]
    for stage, figures in report["models"].items():
        scored = figures["exam"]
        assert scored["questions"] == 2 and len(scored["answers"]) == 2, stage
        assert scored["accuracy"] == sum(a["correct"] for a in scored["answers"]) / 2
        assert scored["truncated"] == sum(a["generated_tokens"] == 12 and a["truncated"] for a in scored["answers"])
        assert [a["question"] for a in scored["answers"]] == ["Which register sets the border colour?",
                                                              "Which register sets the background colour?"]
    markdown = (out / "report.md").read_text()
    assert "| stage | DAPT test perplexity | SFT test loss | format rate (finished) | truncated |" in markdown
    assert "exam accuracy |" in markdown and "registers.jsonl:4: invalid JSON" in markdown
    assert "### Exam answers: base+dapt+sft" in markdown
    saved = json.loads((out / "report.json").read_text())
    assert saved["settings"]["generation"]["max_new_tokens"] == 12 and saved["settings"]["greedy"] is True


def test_summary_table_is_stage_by_figure():
    def stage(perplexity, loss, ok, finished, truncated, exam_correct):
        return {"dapt_test_perplexity": perplexity, "sft_test_loss": loss, "format_ok": ok, "finished": finished,
                "format_rate": ok / finished if finished else None, "truncated": truncated, "prompts": finished + truncated,
                "malformed": finished - ok, "fact_accuracy": None,
                "exam": {"questions": 4, "correct": exam_correct, "accuracy": exam_correct / 4, "truncated": truncated}}

    table = summary_table({"models": {"base": stage(40.0, 3.0, 0, 0, 4, 0), "base+dapt": stage(20.0, 2.5, 1, 2, 2, 1),
                                      "base+dapt+sft": stage(21.5, 1.25, 4, 4, 0, 3)}})
    rows = [line for line in table.splitlines() if line.startswith("| base")]
    assert rows[0] == "| base | 40.00 | 3.000 | 0/0 (n/a) | 4/4 | 0 | n/a | 0/4 (0%), 4 truncated |"
    assert rows[2] == "| base+dapt+sft | 21.50 | 1.250 | 4/4 (100%) | 0/4 | 0 | n/a | 3/4 (75%) |"


# ---------------------------------------------------------------------------------------------------- the check


def _report(tmp_path: Path, after_sft: dict) -> Path:
    models = tmp_path / "models"
    report = {"models": {"base": {"format_rate": None, "truncated": 4, "prompts": 4},
                         "base+dapt": {"format_rate": 0.0, "truncated": 2, "prompts": 4},
                         "base+dapt+sft": after_sft}}
    (models / "evaluation").mkdir(parents=True)
    (models / "evaluation" / "report.json").write_text(json.dumps(report))
    return models


@pytest.mark.parametrize(("after_sft", "passed"), [
    ({"format_rate": 1.0, "format_ok": 2, "finished": 2, "truncated": 2, "malformed": 0, "prompts": 4}, True),
    ({"format_rate": 0.5, "format_ok": 1, "finished": 2, "truncated": 2, "malformed": 1, "prompts": 4}, False),
    ({"format_rate": None, "format_ok": 0, "finished": 0, "truncated": 4, "malformed": 0, "prompts": 4}, False),
])
def test_reasoning_contract_check_judges_finished_generations_and_reports_truncated(tmp_path, after_sft, passed):
    from c64_pipeline.defs.resources import PipelinePaths, QualityThresholds
    from c64_pipeline.defs.training.checks import reasoning_contract

    models = _report(tmp_path, after_sft)
    paths = PipelinePaths(manuals_dir="m", curated_sft_dir="c", processed_dir="p", docs_dir="d", models_dir=str(models))
    result = reasoning_contract(paths=paths, thresholds=QualityThresholds(min_reasoning_format_rate=0.9))
    assert result.passed is passed
    assert result.metadata["truncated_after_sft"].value == after_sft["truncated"]
    assert f"truncated {after_sft['truncated']}/4" in result.description


def test_evaluation_metadata_is_a_markdown_table(tmp_path):
    from c64_pipeline.training.pipes_child import evaluation_metadata

    figures = {"dapt_test_perplexity": 9.0, "sft_test_loss": 1.0, "format_ok": 3, "finished": 3, "format_rate": 1.0,
               "truncated": 1, "prompts": 4, "malformed": 0, "fact_accuracy": 0.5,
               "exam": {"questions": 2, "correct": 1, "accuracy": 0.5, "truncated": 0}}
    (tmp_path / "report.md").write_text("# Evaluation\n")
    metadata = evaluation_metadata({"models": {"base+dapt+sft": figures},
                                    "exam": {"questions": 2, "rejections": [{"file": "x", "line": 1, "reason": "r"}]}},
                                   tmp_path)
    assert metadata["evaluation"]["type"] == "md" and "| base+dapt+sft | 9.00 |" in metadata["evaluation"]["raw_value"]
    assert metadata["report"] == {"type": "md", "raw_value": "# Evaluation\n"}
    assert (metadata["exam_accuracy_after_sft"], metadata["truncated_after_sft"], metadata["exam_rejected_lines"]) == (
        0.5, 1, 1)
    assert not any(isinstance(v, dict) and v.get("type") == "json" for v in metadata.values())


# ---------------------------------------------------------------------------------------------------- during SFT


@pytest.mark.slow
def test_fixed_prompts_are_generated_at_each_evaluation_step(model_dir, data_dir, dapt_run, tmp_path):
    events = []
    out = tmp_path / "sft"
    metrics = train_sft(model_dir, dapt_run[0], data_dir / "sft", out,
                        quick(sample_generation_prompts=2, sample_generation_max_new_tokens=5), progress=events.append)
    records = [json.loads(line) for line in (out / SAMPLE_GENERATIONS).read_text().splitlines()]
    assert [(r["step"], r["prompt_number"]) for r in records] == [(2, 1), (2, 2), (4, 1), (4, 2)]
    assert all(r["generated_tokens"] <= 5 and r["generation"] for r in records)
    validation = [json.loads(line)["messages"][1]["content"] for line in (data_dir / "sft" / "validation.jsonl").open()]
    assert {r["prompt"] for r in records} <= set(validation)
    reported = [e["sample_generation"] for e in events if "sample_generation" in e]
    assert reported == records
    assert metrics["sample_generation_prompts"] == 2 and 0 < metrics["sample_generation_seconds"] < metrics["train_runtime_s"]
    markdown = sample_generations_markdown(out / SAMPLE_GENERATIONS)
    assert "at step 4 (evaluations at steps 2, 4" in markdown and records[-1]["generation"] in markdown


def test_a_resumed_run_drops_sample_generations_after_its_checkpoint(tiny_tokenizer, tmp_path):
    from transformers import TrainerState

    path = write_lines(tmp_path / SAMPLE_GENERATIONS, [json.dumps({"step": s, "prompt_number": 1}) for s in (2, 4, 6)])
    callback = SampleGenerations(tiny_tokenizer, [], GenerationSettings(max_new_tokens=4), path)
    callback.on_train_begin(None, TrainerState(global_step=4), None)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4]
    callback.on_train_begin(None, TrainerState(global_step=0), None)
    assert path.read_text() == ""


@pytest.mark.slow
def test_resumed_sft_has_the_same_losses_and_one_line_per_prompt_and_step(model_dir, data_dir, dapt_run, tmp_path):
    recipe = quick(sample_generation_prompts=2, sample_generation_max_new_tokens=4)
    train_sft(model_dir, dapt_run[0], data_dir / "sft", tmp_path / "straight", recipe)

    class Interrupted(Exception):
        pass

    def crash_at_step_3(event: dict) -> None:
        if event.get("step", 0) >= 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_sft(model_dir, dapt_run[0], data_dir / "sft", tmp_path / "resumed", recipe, progress=crash_at_step_3)
    metrics = train_sft(model_dir, dapt_run[0], data_dir / "sft", tmp_path / "resumed", recipe, resume=True)
    assert metrics["resumed_from"].endswith("checkpoint-2")

    def losses(run: str) -> list[tuple[int, float]]:
        history = json.loads((tmp_path / run / "log_history.json").read_text())
        return [(e["step"], round(e["loss"], 5)) for e in history if "loss" in e]

    def generations(run: str) -> list[tuple[int, int, str]]:
        lines = (tmp_path / run / SAMPLE_GENERATIONS).read_text().splitlines()
        return [(r["step"], r["prompt_number"], r["generation"]) for r in map(json.loads, lines)]

    assert losses("resumed") == losses("straight")
    assert generations("resumed") == generations("straight")
    assert [(s, n) for s, n, _ in generations("straight")] == [(2, 1), (2, 2), (4, 1), (4, 2)]


def test_exam_answers_in_the_report_keep_one_row_per_question():
    from c64_pipeline.training.evaluation import _markdown

    answer = {"question": "What does A|B give?", "key_facts": ["$D020"], "final_answer": "It is\n$D020 | or not",
              "correct": True, "truncated": False}
    stage = {"dapt_test_perplexity": 2.0, "sft_test_loss": 1.0, "format_ok": 0, "finished": 0, "format_rate": None,
             "truncated": 1, "prompts": 1, "malformed": 0, "fact_accuracy": None, "contract_problems": {}, "samples": [],
             "exam": {"questions": 1, "correct": 1, "accuracy": 1.0, "truncated": 0, "answers": [answer]}}
    report = {"models": {"base": stage}, "exam": {"dir": "eval", "questions": 1, "available": 1, "rejections": []},
              "settings": {"generation": GenerationSettings(max_new_tokens=8).as_dict()}}
    rows = [line for line in _markdown(report, 1).splitlines() if line.startswith("| What")]
    assert rows == ["| What does A\\|B give? | $D020 | It is $D020 \\| or not | correct |"]


def test_the_demo_copies_the_sample_exam_beside_the_users_own(tmp_path):
    from c64_pipeline.demo.cli import copy_sample_exam

    mine = write_lines(tmp_path / "eval" / "mine.jsonl", [row(question="Where is CHROUT?", answer="At $FFD2.")])
    copied = copy_sample_exam(tmp_path / "eval")
    assert [p.name for p in copied] == ["sample_manuals.jsonl"] and mine.read_text().startswith('{"question"')
    questions, rejections = load_exam(tmp_path / "eval")
    assert rejections == [] and {q.file for q in questions} == {"mine.jsonl", "sample_manuals.jsonl"}
