"""Training assets: the DAPT and SFT LoRA adapters and the evaluation of base, base+DAPT and base+DAPT+SFT.

Each runs c64_pipeline.training in its own process through Dagster Pipes (logs and metrics stream back), in the
`gpu` pool, and only after every blocking data check on the validation report has passed."""

import sys
from enum import Enum
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    Config,
    ConfigurableResource,
    Failure,
    MaterializeResult,
    PipesSubprocessClient,
    asset,
)
from pydantic import field_validator

from c64_pipeline import atomic
from c64_pipeline.defs.datasets.checks import data_checks
from c64_pipeline.defs.resources import BaseModelSource, PipelinePaths
from c64_pipeline.settings import deployment_from_env
from c64_pipeline.training.recipe import TrainingRecipe, default_recipe

TEMPLATE_GATE = AssetCheckKey(AssetKey("base_model"), "chat_template_has_generation_blocks")

# Retrain at most nightly, only when inputs changed and every blocking check upstream passed.
NIGHTLY_WHEN_GATES_PASS = AutomationCondition.on_cron("0 2 * * *") & AutomationCondition.all_deps_blocking_checks_passed()


class TrainingConfig(Config):
    """Run config of a training step (editable in the Launchpad). `profile` picks the defaults: "auto" is the demo
    profile for the tiny demo model and the founding recipe for the real one; set fields override them."""

    profile: str = "auto"  # "auto", "demo" or "founding"
    max_length: int | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    learning_rate: float | None = None
    num_train_epochs: float | None = None
    max_steps: int | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    seed: int | None = None
    allow_cpu: bool | None = None  # expert override: train the founding recipe without a bf16 GPU (fp32, slow)
    # generation in the evaluation (greedy unless eval_do_sample; the model card's temperature 0.7 / top_p 0.95)
    eval_max_new_tokens: int | None = None
    eval_do_sample: bool | None = None
    eval_temperature: float | None = None
    eval_top_p: float | None = None
    eval_max_prompts: int | None = None
    eval_max_exam_questions: int | None = None
    resume: bool = True

    def recipe(self, model_mode: str, stage: str) -> TrainingRecipe:
        base = default_recipe(model_mode, stage, self.profile)
        overrides = {k: v for k, v in self.model_dump().items() if k not in ("profile", "resume") and v is not None}
        return base.replace(**overrides) if overrides else base


class Launcher(str, Enum):
    """The programs a training process may be started with; the command line is built here, never taken from config."""

    python = "python"  # this Python, one process
    accelerate = "accelerate"  # accelerate launch (its own config file, e.g. DeepSpeed, is read from its default place)
    accelerate_fsdp = "accelerate_fsdp"  # accelerate launch --use_fsdp
    torchrun = "torchrun"


TRAINING_MODULE = "c64_pipeline.orchestration.training_process"


class TrainingLauncher(ConfigurableResource):
    """How a training process starts: one of the `Launcher`s with `processes` processes (the deployment sets them
    with C64_TRAINING_LAUNCHER and C64_TRAINING_PROCESSES). There is no free-form command: whoever reaches the
    Launchpad can pick an allowed launcher, not run a program of their own."""

    launcher: Launcher = Launcher.python
    processes: int = 1

    @field_validator("processes")
    @classmethod
    def _processes_in_range(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError(f"processes must be between 1 and 64, not {value}")
        return value

    @classmethod
    def from_env(cls) -> "TrainingLauncher":
        deployment = deployment_from_env()
        name = deployment.training_launcher
        if name not in Launcher.__members__:
            raise ValueError(f"C64_TRAINING_LAUNCHER must be one of {', '.join(Launcher.__members__)}, not {name!r}")
        return cls(launcher=Launcher[name], processes=deployment.training_processes)

    def command(self) -> list[str]:
        n = str(self.processes)
        prefix = {
            Launcher.python: [sys.executable, "-m"],
            Launcher.accelerate: ["accelerate", "launch", "--num_processes", n, "-m"],
            Launcher.accelerate_fsdp: ["accelerate", "launch", "--num_processes", n, "--use_fsdp", "-m"],
            Launcher.torchrun: ["torchrun", "--nproc_per_node", n, "-m"],
        }[Launcher(self.launcher)]
        return [*prefix, TRAINING_MODULE]


def require_data_gates(context: AssetExecutionContext) -> None:
    """Refuse to train unless the latest evaluation of every blocking data check (and the chat-template check) passed (also when training is
    launched in a run of its own, where Dagster's in-run blocking does not apply)."""
    failed = []
    keys = [key for check in data_checks for key in check.check_keys] + [TEMPLATE_GATE]
    for key in keys:
        record = context.instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.event.dagster_event.event_specific_data if record and record.event else None
        if evaluation is None or not evaluation.passed:
            failed.append(f"{key.name} ({'never evaluated' if evaluation is None else evaluation.description})")
    if failed:
        raise Failure("training refused: blocking data checks have not passed: " + "; ".join(failed))


def require_finished_datasets(*folders: str | Path) -> None:
    """Refuse to train on a dataset folder whose last write did not finish (its _SUCCESS.json manifest is missing
    or does not match the split files: e.g. a new train split beside an old or missing validation split)."""
    for folder in folders:
        try:
            atomic.read_file_set(Path(folder))
        except atomic.IncompleteFileSet as exc:
            raise Failure(f"training refused: {exc}") from exc


def _model_dir(base_model: dict) -> Path:
    return Path(base_model["model_dir"])


def _run(context, client: PipesSubprocessClient, launcher: TrainingLauncher, extras: dict) -> MaterializeResult:
    return client.run(context=context, command=launcher.command(), extras=extras).get_materialize_result()


@asset(
    group_name="training",
    pool="gpu",
    deps=[AssetKey("validation_report")],
    automation_condition=NIGHTLY_WHEN_GATES_PASS,
    description="DAPT LoRA adapter trained on the DAPT train split, eval loss on validation "
    "(models/fine-tuned-dapt/: adapter, tokenizer, checkpoints, metrics, run manifest, loss curve).",
)
def dapt_adapter(context: AssetExecutionContext, config: TrainingConfig, base_model: dict, dapt_dataset: dict,
                 model_source: BaseModelSource, paths: PipelinePaths, training_launcher: TrainingLauncher,
                 pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    require_data_gates(context)
    require_finished_datasets(dapt_dataset["dir"])
    recipe = config.recipe(model_source.mode, "dapt")
    return _run(context, pipes_subprocess_client, training_launcher, {
        "stage": "dapt", "recipe": recipe.as_dict(), "resume": config.resume,
        "model_dir": str(_model_dir(base_model)), "dapt_dir": dapt_dataset["dir"],
        "out_dir": str(Path(paths.models_dir) / "fine-tuned-dapt"),
    })


@asset(
    group_name="training",
    pool="gpu",
    deps=[AssetKey("dapt_adapter"), AssetKey("validation_report")],
    automation_condition=NIGHTLY_WHEN_GATES_PASS,
    description="SFT LoRA adapter: the base model with the DAPT adapter merged in, then TRL SFT with "
    "assistant_only_loss on the SFT train split (models/fine-tuned-sft/).",
)
def sft_adapter(context: AssetExecutionContext, config: TrainingConfig, base_model: dict, sft_dataset: dict,
                model_source: BaseModelSource, paths: PipelinePaths, training_launcher: TrainingLauncher,
                pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    require_data_gates(context)
    require_finished_datasets(sft_dataset["dir"])
    recipe = config.recipe(model_source.mode, "sft")
    return _run(context, pipes_subprocess_client, training_launcher, {
        "stage": "sft", "recipe": recipe.as_dict(), "resume": config.resume,
        "model_dir": str(_model_dir(base_model)), "sft_dir": sft_dataset["dir"],
        "dapt_adapter_dir": str(Path(paths.models_dir) / "fine-tuned-dapt"),
        "out_dir": str(Path(paths.models_dir) / "fine-tuned-sft"),
    })


@asset(
    group_name="evaluation",
    pool="gpu",
    deps=[AssetKey("dapt_adapter"), AssetKey("sft_adapter"), AssetKey("dapt_dataset"), AssetKey("sft_dataset")],
    automation_condition=AutomationCondition.eager(),
    description="Base vs base+DAPT vs base+DAPT+SFT on the test splits: DAPT perplexity, SFT loss, the reasoning "
    "format on generations (checked on token ids; those cut by the token budget counted as truncated), fact accuracy, "
    "and closed-book accuracy on the user's exam (C64_EVAL_DIR, data/raw/eval/*.jsonl) (models/evaluation/).",
)
def model_evaluation(context: AssetExecutionContext, config: TrainingConfig, base_model: dict,
                     model_source: BaseModelSource, paths: PipelinePaths, training_launcher: TrainingLauncher,
                     pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    recipe = config.recipe(model_source.mode, "sft")  # the settings the SFT model was trained with
    models = Path(paths.models_dir)
    require_finished_datasets(paths.processed / "dapt", paths.processed / "sft")
    return _run(context, pipes_subprocess_client, training_launcher, {
        "stage": "evaluation", "recipe": recipe.as_dict(),
        "model_dir": str(_model_dir(base_model)),
        "dapt_dir": str(paths.processed / "dapt"), "sft_dir": str(paths.processed / "sft"),
        "dapt_adapter_dir": str(models / "fine-tuned-dapt"), "sft_adapter_dir": str(models / "fine-tuned-sft"),
        "out_dir": str(models / "evaluation"), "exam_dir": paths.eval_dir,
    })
