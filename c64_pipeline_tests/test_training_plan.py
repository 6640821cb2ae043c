"""How a training run is planned: the models folder's layout, the typed request the training process receives, the
Launchpad fields derived from the recipe, and the trainer arguments derived from the recipe's fields."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from c64_pipeline.training.artifacts import ModelsLayout, RunDir
from c64_pipeline.training.recipe import TrainingRecipe, demo_profile
from c64_pipeline.training.request import STAGES, StageRequest


def _available(tmp_path) -> dict:
    return {"model_dir": tmp_path / "base", "dapt_dir": tmp_path / "processed" / "dapt",
            "sft_dir": tmp_path / "processed" / "sft", "exam_dir": tmp_path / "eval"}


# ---------------------------------------------------------------------------------------------------- the request


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_request_survives_the_pipes_extras_unchanged(stage, tmp_path):
    request = StageRequest.planned(stage, demo_profile("sft").replace(learning_rate=1e-3), ModelsLayout(tmp_path),
                                   resume=False, **_available(tmp_path))
    extras = json.loads(json.dumps(request.to_extras()))  # what Pipes carries: JSON
    assert StageRequest.from_extras(extras) == request


def test_planned_requests_read_and_write_the_models_folder_layout(tmp_path):
    models = ModelsLayout(tmp_path / "models")
    available = _available(tmp_path)
    sft = StageRequest.planned("sft", demo_profile("sft"), models, **available)
    assert (sft.out_dir, sft.dapt_adapter_dir, sft.sft_dir) == (models.sft.path, models.dapt.path, available["sft_dir"])
    assert sft.dapt_dir is None and sft.exam_dir is None  # what SFT does not read is not sent
    evaluation = StageRequest.planned("evaluation", demo_profile("sft"), models, **available)
    assert evaluation.out_dir == models.evaluation.path and evaluation.exam_dir == available["exam_dir"]
    assert (evaluation.dapt_adapter_dir, evaluation.sft_adapter_dir) == (models.dapt.path, models.sft.path)
    gguf = StageRequest.planned("gguf", demo_profile("sft"), models, **available)
    assert (gguf.merged_dir, gguf.out_dir, gguf.model_dir) == (models.merged, models.gguf, None)
    assert models.gguf_check.parent == gguf.out_dir


def test_a_request_lacking_what_its_stage_reads_is_refused(tmp_path):
    with pytest.raises(ValueError, match="a sft request needs dapt_adapter_dir, sft_dir"):
        StageRequest("sft", demo_profile("sft"), tmp_path / "out", model_dir=tmp_path / "base")
    with pytest.raises(ValueError, match="unknown training stage 'distill'"):
        StageRequest("distill", demo_profile("sft"), tmp_path / "out")
    extras = StageRequest("merge", demo_profile("sft"), tmp_path / "out", model_dir=tmp_path / "base",
                          dapt_adapter_dir=tmp_path / "d", sft_adapter_dir=tmp_path / "s").to_extras()
    with pytest.raises(ValueError, match="unknown fields in the stage request: epochs"):
        StageRequest.from_extras({**extras, "epochs": 3})
    with pytest.raises(ValueError, match="lacks recipe"):
        StageRequest.from_extras({k: v for k, v in extras.items() if k != "recipe"})


# ---------------------------------------------------------------------------------------------------- the layout


def test_the_console_heartbeat_finds_the_training_steps_in_the_layout(tmp_path):
    from c64_pipeline.demo.console import TrainingHeartbeat

    heartbeat = TrainingHeartbeat(tmp_path)
    assert heartbeat._latest() is None
    state = ModelsLayout(tmp_path).sft.checkpoints / "checkpoint-5" / "trainer_state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"global_step": 5, "max_steps": 9,
                                 "log_history": [{"loss": 2.5, "step": 5}, {"eval_loss": 2.75, "step": 5}]}))
    os.utime(state, (heartbeat.started + 1, heartbeat.started + 1))
    assert heartbeat._latest() == ("sft", 5, 9, 2.5, 2.75)


def test_a_run_folder_reads_back_what_it_names(tmp_path):
    run = ModelsLayout(tmp_path).dapt
    assert run == RunDir(tmp_path / "fine-tuned-dapt") and run.read_metrics() is None
    run.path.mkdir()
    run.metrics.write_text(json.dumps({"final_eval_loss": 1.5}))
    assert run.read_metrics() == {"final_eval_loss": 1.5}
    with pytest.raises(ValueError, match="training stage must be one of dapt, sft"):
        ModelsLayout(tmp_path).run("evaluation")


# ---------------------------------------------------------------------------------------------------- one recipe


def test_every_recipe_field_is_a_launchpad_override_and_nothing_else_is():
    from c64_pipeline.defs.training.assets import TrainingConfig

    recipe_fields = {f.name for f in dataclasses.fields(TrainingRecipe)}
    assert set(TrainingConfig.model_fields) == recipe_fields | {"resume"}  # "profile" picks the defaults
    TrainingConfig.to_config_schema()  # Dagster can show it in the Launchpad


def test_launchpad_overrides_replace_the_profiles_values_only(tmp_path):
    from c64_pipeline.defs.training.assets import TrainingConfig

    config = TrainingConfig(profile="demo", learning_rate=1e-3, lora_target_modules=["q_proj", "v_proj"],
                            eval_strategy="no", allow_cpu=True)
    recipe = config.recipe("real", "dapt")
    expected = demo_profile("dapt").replace(learning_rate=1e-3, lora_target_modules=("q_proj", "v_proj"),
                                            eval_strategy="no", allow_cpu=True)
    assert recipe == expected
    assert config.recipe("real", "gguf") == demo_profile("sft").replace(**{
        k: getattr(expected, k) for k in ("learning_rate", "lora_target_modules", "eval_strategy", "allow_cpu")})
    with pytest.raises(ValueError, match="precision must be 'auto', 'bf16' or 'fp32'"):
        TrainingConfig(precision="fp8").recipe("demo", "sft")


def test_trainer_arguments_carry_every_recipe_field_the_arguments_class_has(tmp_path):
    from transformers import TrainingArguments
    from trl import SFTConfig

    from c64_pipeline.training.common import training_arguments

    recipe = demo_profile("sft").replace(learning_rate=3e-4, weight_decay=0.01, max_grad_norm=0.5, seed=7,
                                         logging_steps=3, save_total_limit=1, max_length=321, warmup_ratio=0.1)
    for arguments_class in (TrainingArguments, SFTConfig):
        args = arguments_class(**training_arguments(recipe, tmp_path, "fp32", False, arguments_class))
        shared = [f.name for f in dataclasses.fields(recipe) if hasattr(args, f.name) and f.name != "warmup_ratio"]
        assert {"learning_rate", "weight_decay", "seed", "max_steps", "eval_steps"} <= set(shared)
        assert {name: getattr(args, name) for name in shared} == {name: getattr(recipe, name) for name in shared}
        assert args.data_seed == 7 and args.warmup_steps == 0.1 and not args.bf16
    assert SFTConfig(**training_arguments(recipe, tmp_path, "fp32", False, SFTConfig)).max_length == 321
    assert "max_length" not in training_arguments(recipe, tmp_path, "fp32", False, TrainingArguments)
