"""Training half on the tiny demo model: recipe, strict loading, DAPT, SFT, manifests, evaluation."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from importlib.metadata import version

import pytest
import torch

from c64_pipeline.base_model import ModelDirError, chat_template, load_tokenizer
from c64_pipeline.training.common import NonFiniteLossError, require_trainable
from c64_pipeline.training.dapt import train_dapt
from c64_pipeline.training.data import TrainingDataError, filter_long
from c64_pipeline.training.evaluation import ReasoningContract, evaluate, facts_found, key_facts, spread
from c64_pipeline.training.model_loading import StrictLoadingError, load_base_model, lora_target_modules
from c64_pipeline.training.recipe import LORA_TARGETS, TrainingRecipe, demo_profile
from c64_pipeline.training.sft import ChatTemplateError, strict_template_check, train_sft
from c64_pipeline_tests.conftest import LONG_TRAIN, conversation, quick, write_dapt_split, write_jsonl

# ---------------------------------------------------------------------------------------------------- recipe


def test_founding_recipe_and_demo_profile_are_data():
    recipe = TrainingRecipe()
    assert (recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout) == (16, 32, 0.05)
    assert recipe.lora_target_modules == LORA_TARGETS
    assert (recipe.max_length, recipe.per_device_train_batch_size, recipe.gradient_accumulation_steps) == (2048, 2, 16)
    assert (recipe.learning_rate, recipe.num_train_epochs, recipe.eval_strategy) == (2e-5, 3.0, "epoch")
    assert demo_profile("dapt").max_steps < demo_profile("sft").max_steps
    with pytest.raises(ValueError, match="stage"):
        demo_profile("pretraining")
    demo = demo_profile()
    assert demo.max_length < recipe.max_length and demo.gradient_accumulation_steps == 1 and 0 < demo.max_steps <= 1000
    data = json.loads(json.dumps(demo.as_dict()))
    assert TrainingRecipe.from_dict(data) == demo
    with pytest.raises(ValueError, match="eval_steps"):
        TrainingRecipe(eval_strategy="steps")


# ---------------------------------------------------------------------------------------------------- loading


def test_checkpoint_with_a_lost_tensor_fails_loudly(model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(StrictLoadingError, match=r"missing keys: model\.layers\.1\.mlp\.up_proj\.weight"):
        load_base_model(broken)
    assert load_base_model(model_dir).config.architectures == ["Ministral3ForCausalLM"]


def test_lora_on_the_multimodal_model_hits_the_language_model_only(model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Ministral3Config, Mistral3Config, Mistral3ForConditionalGeneration, PixtralVisionConfig

    text = Ministral3Config(vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    vision = PixtralVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 image_size=32, patch_size=16, head_dim=16)
    out = tmp_path / "mm"
    Mistral3ForConditionalGeneration(Mistral3Config(text_config=text, vision_config=vision)).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "SYSTEM_PROMPT.txt"):
        shutil.copy(model_dir / name, out / name)
    model = load_base_model(out)
    assert any("vision_tower" in n and n.endswith("q_proj") for n, _ in model.named_modules())
    targets = lora_target_modules("Mistral3ForConditionalGeneration", LORA_TARGETS)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=targets))
    adapted = {n.split(".lora_A")[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert len(adapted) == len(LORA_TARGETS)
    assert all(".language_model." in n for n in adapted)


def test_no_trainable_parameters_is_an_error(model_dir):
    model = load_base_model(model_dir)
    model.requires_grad_(False)
    with pytest.raises(RuntimeError, match="no trainable parameters"):
        require_trainable(model)


# ---------------------------------------------------------------------------------------------------- template


def test_strict_template_check_accepts_the_project_template(model_dir):
    strict_template_check(load_tokenizer(model_dir), conversation(0)["messages"])


def test_generation_marker_in_a_jinja_comment_is_refused(model_dir):
    from trl.chat_template_utils import has_generation_markers

    tokenizer = load_tokenizer(model_dir)
    template = chat_template().replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
    tokenizer.chat_template = "{# assistant turns belong in {% generation %} blocks #}" + template
    assert has_generation_markers(tokenizer.chat_template)  # TRL's text test is fooled
    with pytest.raises(ChatTemplateError, match="marks no assistant tokens"):
        strict_template_check(tokenizer, conversation(0)["messages"])


def mistral_template(assistant: str, wrap_all: bool = False) -> str:
    """The project's conversation format with a given assistant branch (and optionally one block around it all)."""
    loop = (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' -}}"
        "{%- elif message['role'] == 'user' -%}{{- '[INST]' + message['content'] + '[/INST]' -}}"
        "{%- else -%}" + assistant + "{%- endif -%}{%- endfor -%}"
    )
    return "{{- bos_token -}}" + ("{%- generation -%}" + loop + "{%- endgeneration -%}" if wrap_all else loop)


def test_the_reference_template_passes(model_dir):
    tokenizer = load_tokenizer(model_dir)
    tokenizer.chat_template = mistral_template(
        "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}")
    strict_template_check(tokenizer, conversation(0)["messages"])


@pytest.mark.parametrize(
    ("template", "message"),
    [
        # one block around the whole conversation: system and user turns would be trained
        (mistral_template("{{- message['content'] + eos_token -}}", wrap_all=True), "marks tokens outside"),
        # the end-of-sequence token left outside the block: the model would never learn to stop
        (mistral_template("{%- generation -%}{{- message['content'] -}}{%- endgeneration -%}{{- eos_token -}}"),
         "never learn to stop"),
    ],
)
def test_wrongly_placed_generation_blocks_are_refused(model_dir, template, message):
    tokenizer = load_tokenizer(model_dir)
    tokenizer.chat_template = template
    with pytest.raises(ChatTemplateError, match=message):
        strict_template_check(tokenizer, conversation(0)["messages"])


def test_long_conversations_are_filtered_and_counted(model_dir):
    tokenizer = load_tokenizer(model_dir)
    conversations = [conversation(i)["messages"] for i in range(5)] + [conversation(0, long=True)["messages"]]
    kept, dropped = filter_long(tokenizer, conversations, 512)
    assert (len(kept), dropped) == (5, 1)


# ---------------------------------------------------------------------------------------------------- runs


def test_dapt_run_writes_adapter_metrics_manifest_and_curve(dapt_run, model_dir, data_dir):
    out, metrics = dapt_run
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "metrics.json",
                 "run_manifest.json", "log_history.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not list(out.glob(".*tmp*"))
    assert metrics["global_step"] == 4 and metrics["trainable_parameters"] > 0
    assert metrics["tokens_seen"] > 0 and metrics["tokens_per_second"] > 0
    assert 0 <= metrics["padding_share"] < 0.1  # windows batched by length
    assert math.isfinite(metrics["final_train_loss"]) and math.isfinite(metrics["final_eval_loss"])

    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["stage"] == "dapt" and manifest["assistant_only_loss"] is False
    assert manifest["hyperparameters"] == quick().as_dict()
    assert manifest["training_arguments"]["learning_rate"] == quick().learning_rate
    assert manifest["chat_template_sha256"] == hashlib.sha256(chat_template().encode()).hexdigest()
    train = data_dir / "dapt" / "train.parquet"
    assert manifest["datasets"]["train.parquet"]["sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert manifest["base_model"]["architectures"] == ["Ministral3ForCausalLM"]
    assert manifest["base_model"]["tokenizer_sha256"] == hashlib.sha256(
        (model_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert manifest["seeds"]["seed"] == quick().seed
    for library in ("torch", "transformers", "trl", "peft"):
        assert manifest["libraries"][library] == version(library)
    assert manifest["metrics"] == metrics


def test_sft_run_filters_long_conversations_and_trains_assistant_tokens(sft_run, dapt_run):
    out, metrics = sft_run
    assert (out / "adapter_model.safetensors").is_file()
    assert metrics["filtered_examples"]["too_long_train"] == LONG_TRAIN
    assert metrics["train_conversations"] == 60 and metrics["eval_conversations"] == 6
    assert metrics["trainable_parameters"] > 0 and metrics["global_step"] == 4
    assert metrics["tokens_seen"] > 0 and math.isfinite(metrics["final_eval_loss"])
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["assistant_only_loss"] is True
    assert manifest["training_arguments"]["assistant_only_loss"] is True
    assert manifest["training_arguments"]["packing"] is False
    assert manifest["chat_template_sha256"] == hashlib.sha256(chat_template().encode()).hexdigest()
    assert set(manifest["datasets"]) == {"train.jsonl", "validation.jsonl"}
    assert manifest["adapters_merged_in"][0]["adapter_sha256"] == hashlib.sha256(
        (dapt_run[0] / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert manifest["metrics"]["filtered_examples"] == metrics["filtered_examples"]


def test_nan_loss_stops_training_without_an_adapter(model_dir, data_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    poisoned = tmp_path / "nan-model"
    shutil.copytree(model_dir, poisoned)
    weights = load_file(poisoned / "model.safetensors")
    weights["model.norm.weight"][0] = float("nan")
    save_file(weights, poisoned / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "dapt"
    with pytest.raises(NonFiniteLossError, match="no adapter was written"):
        train_dapt(poisoned, data_dir / "dapt", out, quick())
    assert not (out / "adapter_model.safetensors").exists()
    assert not list((out / "checkpoints").glob("checkpoint-*"))


def test_resume_reproduces_the_uninterrupted_losses(model_dir, data_dir, tmp_path):
    recipe = quick(max_steps=8, save_steps=4, eval_steps=4)
    train_dapt(model_dir, data_dir / "dapt", tmp_path / "straight", recipe)

    class Interrupted(Exception):
        pass

    def crash_at_step_6(event: dict) -> None:
        if event["step"] >= 6:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_dapt(model_dir, data_dir / "dapt", tmp_path / "resumed", recipe, progress=crash_at_step_6)
    assert not (tmp_path / "resumed" / "adapter_model.safetensors").exists()
    metrics = train_dapt(model_dir, data_dir / "dapt", tmp_path / "resumed", recipe, resume=True)
    assert metrics["resumed_from"].endswith("checkpoint-4")

    def losses(run: str) -> list[tuple[int, float]]:
        history = json.loads((tmp_path / run / "log_history.json").read_text())
        return [(e["step"], e["loss"]) for e in history if "loss" in e]

    assert [step for step, _ in losses("resumed")] == list(range(1, 9))
    assert losses("resumed") == losses("straight")  # exactly: same batches, same RNG states

    # Checkpoints of another recipe cannot be resumed: the run starts over.
    again = train_dapt(model_dir, data_dir / "dapt", tmp_path / "resumed", recipe.replace(learning_rate=1e-3))
    assert again["resumed_from"] is None and again["global_step"] == 8


# ---------------------------------------------------------------------------------------------------- bad inputs


def test_missing_or_corrupt_model_dir_is_a_clear_error(data_dir, model_dir, tmp_path):
    with pytest.raises(ModelDirError, match="does not exist"):
        train_dapt(tmp_path / "no-model", data_dir / "dapt", tmp_path / "out", quick())
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_dir, corrupt)
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="not valid JSON"):
        train_dapt(corrupt, data_dir / "dapt", tmp_path / "out", quick())
    (corrupt / "config.json").write_text((model_dir / "config.json").read_text())
    (corrupt / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelDirError, match="could not load the tokenizer"):
        train_dapt(corrupt, data_dir / "dapt", tmp_path / "out", quick())
    shutil.copy(model_dir / "tokenizer.json", corrupt / "tokenizer.json")
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="could not load the model"):
        train_dapt(corrupt, data_dir / "dapt", tmp_path / "out", quick())
    assert not list((tmp_path / "out").glob("checkpoints/checkpoint-*"))


def test_empty_train_set_or_validation_without_rows_fail_before_training(model_dir, data_dir, dapt_run, tmp_path):
    dapt = tmp_path / "dapt"
    shutil.copytree(data_dir / "dapt", dapt)
    write_dapt_split(dapt / "validation.parquet", [])
    with pytest.raises(TrainingDataError, match=r"validation\.parquet has no rows"):
        train_dapt(model_dir, dapt, tmp_path / "out", quick())
    write_dapt_split(dapt / "train.parquet", [])
    with pytest.raises(TrainingDataError, match=r"train\.parquet has no rows"):
        train_dapt(model_dir, dapt, tmp_path / "out", quick())
    assert not (tmp_path / "out").exists()

    sft = tmp_path / "sft"
    shutil.copytree(data_dir / "sft", sft)
    with pytest.raises(ModelDirError, match="missing adapter_config.json"):
        train_sft(model_dir, tmp_path / "no-adapter", sft, tmp_path / "sft-out", quick())
    write_jsonl(sft / "validation.jsonl", [])
    with pytest.raises(TrainingDataError, match=r"validation\.jsonl has no conversations"):
        train_sft(model_dir, dapt_run[0], sft, tmp_path / "sft-out", quick())
    assert not list((tmp_path / "sft-out").glob("checkpoints/checkpoint-*"))


# ---------------------------------------------------------------------------------------------------- evaluation

CONTRACT = ReasoningContract(think_id=7, end_think_id=8, eos_id=2, special_ids=frozenset({1, 2, 3, 4, 7, 8, 9}),
                             blank_ids=frozenset({100}))


@pytest.mark.parametrize(
    ("ids", "problem"),
    [
        ([7, 20, 21, 8, 30, 2], None),
        ([7, 20, 8, 30, 31, 2, 9, 9], None),  # padding after the end of sequence is not part of the turn
        ([7, 20, 8, 30], "no end-of-sequence token"),
        ([20, 8, 30, 2], "missing [THINK]"),
        ([7, 20, 7, 8, 30, 2], "more than one [THINK]"),
        ([7, 20, 30, 2], "missing [/THINK]"),
        ([7, 20, 8, 30, 8, 31, 2], "more than one [/THINK]"),
        ([8, 7, 20, 30, 2], "output before [THINK]"),
        ([20, 7, 21, 8, 30, 2], "output before [THINK]"),
        ([7, 8, 30, 2], "empty reasoning"),
        ([7, 100, 8, 30, 2], "empty reasoning"),
        ([7, 20, 8, 2], "empty final answer"),
        ([7, 20, 8, 100, 100, 2], "empty final answer"),
        ([7, 20, 8, 30, 3, 31, 2], "special token inside the turn"),
    ],
)
def test_reasoning_contract_on_token_ids(ids, problem):
    result = CONTRACT.check(ids)
    assert result.ok is (problem is None)
    assert (result.problem or "").startswith(problem or "")


def test_reasoning_contract_with_the_real_tokenizer(model_dir):
    tokenizer = load_tokenizer(model_dir)
    contract = ReasoningContract.from_tokenizer(tokenizer)
    good = tokenizer("[THINK]Page 3 gives it.[/THINK]It is $D020.</s>", add_special_tokens=False)["input_ids"]
    result = contract.check(good)
    assert result.ok and tokenizer.decode(list(result.answer_ids)) == "It is $D020."
    # Without the markers the text decoded with skip_special_tokens=True would look the same: ids decide.
    bad = tokenizer("Page 3 gives it.It is $D020.</s>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(good, skip_special_tokens=True) == tokenizer.decode(bad, skip_special_tokens=True)
    assert contract.check(bad).problem == "missing [THINK]"


def test_key_facts_of_a_reference_answer():
    facts = key_facts("The border colour register of the VIC-II is $D020 (53280).")
    assert facts == {"$D020", "53280", "VIC-II"}
    assert facts_found(facts, "It is $d020, that is 53280 on the VIC-II.") == facts
    assert facts_found(facts, "It is $D0200 or 532800.") == set()


def test_held_out_prompts_are_spread_over_the_test_split():
    assert spread(list(range(10)), 4) == [0, 2, 5, 7]
    assert spread(list(range(3)), 5) == [0, 1, 2]


def test_evaluation_report_for_the_three_stages(model_dir, data_dir, dapt_run, sft_run, tmp_path):
    report = evaluate(model_dir, dapt_run[0], sft_run[0], data_dir / "dapt", data_dir / "sft", tmp_path,
                      quick(eval_max_prompts=2, eval_max_new_tokens=8, eval_max_test_chunks=2, eval_max_sft_examples=3))
    assert list(report["models"]) == ["base", "base+dapt", "base+dapt+sft"]
    for stage in report["models"].values():
        assert stage["prompts"] == 2 and len(stage["samples"]) == 2
        assert stage["dapt_test_perplexity"] > 1 and stage["sft_test_loss"] > 0
    settings = json.loads((tmp_path / "report.json").read_text())["settings"]
    assert (settings["max_new_tokens"], settings["max_test_chunks"], settings["max_sft_examples"]) == (8, 2, 3)
    assert "| base+dapt+sft |" in (tmp_path / "report.md").read_text()


def test_models_before_sft_can_be_measured_on_fewer_prompts(model_dir, data_dir, dapt_run, sft_run, tmp_path):
    report = evaluate(model_dir, dapt_run[0], sft_run[0], data_dir / "dapt", data_dir / "sft", tmp_path,
                      quick(eval_max_prompts=2, eval_max_prompts_before_sft=1, eval_max_new_tokens=4,
                            eval_max_test_chunks=1, eval_max_sft_examples=1))
    assert [m["prompts"] for m in report["models"].values()] == [1, 1, 2]
    assert "Held-out prompts: 2 from the SFT test split (1 of them for the models before SFT)." in (
        tmp_path / "report.md").read_text()
