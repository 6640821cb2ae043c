"""Training assets: the DAPT and SFT LoRA adapters and the evaluation of base, base+DAPT and base+DAPT+SFT.

Each runs c64_pipeline.training in its own process through Dagster Pipes (logs and metrics stream back), in the
`gpu` pool, and only after every blocking data check on the validation report has passed."""

import dataclasses
import sys
import typing
from enum import Enum
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AutomationCondition,
    Config,
    ConfigurableResource,
    Failure,
    MaterializeResult,
    PipesSubprocessClient,
    asset,
)
from pydantic import create_model, field_validator

from c64_pipeline import atomic
from c64_pipeline.base_model import ModelIdentity
from c64_pipeline.defs.datasets.checks import data_checks
from c64_pipeline.defs.resources import BaseModelSource, PipelinePaths
from c64_pipeline.settings import deployment_from_env
from c64_pipeline.training.artifacts import ModelsLayout
from c64_pipeline.training.recipe import TrainingRecipe, default_recipe
from c64_pipeline.training.request import StageRequest

TEMPLATE_GATE = AssetCheckKey(AssetKey("base_model"), "chat_template_has_generation_blocks")

# Retrain at most nightly, only when inputs changed and every blocking check upstream passed.
NIGHTLY_WHEN_GATES_PASS = AutomationCondition.on_cron("0 2 * * *") & AutomationCondition.all_deps_blocking_checks_passed()


class _StageConfig(Config):
    """Run config of a training step (editable in the Launchpad). `profile` picks the defaults: "auto" is the demo
    profile for the tiny demo model and the founding recipe for the real one; every other field is a field of
    TrainingRecipe, and the ones that are set override the profile's value."""

    profile: str = "auto"  # "auto", "demo" or "founding"
    resume: bool = True

    def recipe(self, model_mode: str, stage: str) -> TrainingRecipe:
        """The recipe of `stage`; the stages after SFT (evaluation, export) use the settings SFT trained with."""
        base = default_recipe(model_mode, "dapt" if stage == "dapt" else "sft", self.profile)
        overrides = {k: v for k, v in self.model_dump().items() if k not in ("profile", "resume") and v is not None}
        return TrainingRecipe.from_dict({**base.as_dict(), **overrides}) if overrides else base


def _override_type(annotation) -> object:
    """A recipe field's type as an optional Launchpad field (None: keep the profile's value). Dagster's config has
    no optional Literal and no tuple: a Literal is a string (the recipe checks its value), a tuple a list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        annotation = str
    elif origin is tuple:
        annotation = list[typing.get_args(annotation)[0]]
    return typing.Optional[annotation]  # noqa: UP007 - also for annotations that are already unions with None


def _recipe_overrides() -> dict[str, tuple]:
    hints = typing.get_type_hints(TrainingRecipe)
    return {f.name: (_override_type(hints[f.name]), None) for f in dataclasses.fields(TrainingRecipe)
            if f.name not in _StageConfig.model_fields}


# Every TrainingRecipe field is an override: a field added to the recipe appears in the Launchpad with no edit here.
TrainingConfig = create_model("TrainingConfig", __base__=_StageConfig, __module__=__name__, **_recipe_overrides())


class Launcher(str, Enum):
    """The programs a training process may be started with; the command line is built here, never taken from config."""

    python = "python"  # this Python, one process
    accelerate = "accelerate"  # accelerate launch (its own config file, e.g. DeepSpeed, is read from its default place)
    accelerate_fsdp = "accelerate_fsdp"  # accelerate launch --use_fsdp
    torchrun = "torchrun"


TRAINING_MODULE = "c64_pipeline.training.pipes_child"


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


def stage_request(stage: str, config: _StageConfig, model_source: BaseModelSource, paths: PipelinePaths,
                  **inputs) -> StageRequest:
    """The training process's request for `stage`: the recipe from the run config, the output folder and adapters
    from the models folder's layout, and the inputs the stage reads: `inputs`, else the resources' folders (the
    base model, the dataset folders, the exam)."""
    available = {"model_dir": model_source.model_dir, "dapt_dir": paths.processed / "dapt",
                 "sft_dir": paths.processed / "sft", "exam_dir": paths.eval_dir or None, **inputs}
    return StageRequest.planned(stage, config.recipe(model_source.mode, stage), ModelsLayout(paths.models_dir),
                                resume=config.resume, **available)


def launch_stage(context, client: PipesSubprocessClient, launcher: "TrainingLauncher",
              request: StageRequest) -> MaterializeResult:
    """Run `request` in the training process through Pipes; its materialization is the asset's."""
    return client.run(context=context, command=launcher.command(), extras=request.to_extras()).get_materialize_result()


def adapter_asset(stage: str, dataset: str, after: list[str], description: str):
    """The asset `{stage}_adapter`: a LoRA adapter trained on the `dataset` asset's folder, after every blocking
    data gate passed (DAPT and SFT differ only in these arguments)."""

    @asset(
        name=f"{stage}_adapter",
        group_name="training",
        pool="gpu",
        ins={"dataset": AssetIn(dataset)},
        deps=[AssetKey(name) for name in after],
        automation_condition=NIGHTLY_WHEN_GATES_PASS,
        description=description,
    )
    # `dataset`: the DatasetFiles or SftDataset record of the dataset asset; the stage reads its folder (`dir`)
    def adapter(context: AssetExecutionContext, config: TrainingConfig, base_model: ModelIdentity, dataset,
                model_source: BaseModelSource, paths: PipelinePaths, training_launcher: TrainingLauncher,
                pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
        require_data_gates(context)
        require_finished_datasets(dataset.dir)
        request = stage_request(stage, config, model_source, paths, model_dir=base_model.model_dir,
                                **{f"{stage}_dir": dataset.dir})
        return launch_stage(context, pipes_subprocess_client, training_launcher, request)

    return adapter


dapt_adapter = adapter_asset(
    "dapt", "dapt_dataset", ["validation_report"],
    "DAPT LoRA adapter trained on the DAPT train split, eval loss on validation "
    "(models/fine-tuned-dapt/: adapter, tokenizer, checkpoints, metrics, run manifest, loss curve).",
)
sft_adapter = adapter_asset(
    "sft", "sft_dataset", ["dapt_adapter", "validation_report"],
    "SFT LoRA adapter: the base model with the DAPT adapter merged in, then TRL SFT with "
    "assistant_only_loss on the SFT train split (models/fine-tuned-sft/).",
)


@asset(
    group_name="evaluation",
    pool="gpu",
    deps=[AssetKey("dapt_adapter"), AssetKey("sft_adapter"), AssetKey("dapt_dataset"), AssetKey("sft_dataset")],
    automation_condition=AutomationCondition.eager(),
    description="Base vs base+DAPT vs base+DAPT+SFT on the test splits: DAPT perplexity, SFT loss, the reasoning "
    "format on generations (checked on token ids; those cut by the token budget counted as truncated), fact accuracy, "
    "and closed-book accuracy on the user's exam (C64_EVAL_DIR, data/raw/eval/*.jsonl) (models/evaluation/).",
)
def model_evaluation(context: AssetExecutionContext, config: TrainingConfig, base_model: ModelIdentity,
                     model_source: BaseModelSource, paths: PipelinePaths, training_launcher: TrainingLauncher,
                     pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    request = stage_request("evaluation", config, model_source, paths, model_dir=base_model.model_dir)
    require_finished_datasets(request.dapt_dir, request.sft_dir)
    return launch_stage(context, pipes_subprocess_client, training_launcher, request)
