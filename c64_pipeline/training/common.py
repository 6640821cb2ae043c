"""What DAPT and SFT share inside the stage skeleton (`stage.TrainingStage`): training arguments, length-grouped
batches, guard callbacks, checkpoints and the outputs every run writes (adapter, tokenizer, metrics, manifest, log
history, loss curve), under the names of `artifacts`."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler
from transformers import TrainerCallback

from c64_pipeline.atomic import write_json, write_text, write_with
from c64_pipeline.training import distributed
from c64_pipeline.training.artifacts import RunDir
from c64_pipeline.training.generation import ReasoningContract, generate, prompt_messages
from c64_pipeline.training.manifest import build_manifest, sha256_file, write_manifest
from c64_pipeline.training.recipe import GENERATION_FIELDS, GenerationSettings, TrainingRecipe

Progress = Callable[[dict], None]
logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients became NaN/inf; training stopped and no adapter was written."""


# ---------------------------------------------------------------------------------------------------- batching


class LengthGroupedEpochSampler(Sampler[int]):
    """Batches of examples of similar length (so almost no padding), in a random but seeded order per epoch.

    The order depends only on (seed, epoch), never on the global RNG, so a run resumed from a checkpoint sees the
    same batches as an uninterrupted one. Full batches are shuffled; the one short batch, if any, comes last so that
    the DataLoader's grouping of consecutive indices stays aligned with the batches built here.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        shuffled = torch.randperm(len(self.lengths), generator=generator).tolist()
        ordered = sorted(shuffled, key=lambda i: -self.lengths[i])  # stable: equal lengths keep the random order
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        tail = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        order = torch.randperm(len(batches), generator=generator).tolist()
        return iter([i for b in [batches[j] for j in order] + tail for i in b])


class GroupedBatchesMixin:
    """For a Trainer subclass: length-grouped batches, and counts of real and padded tokens per session."""

    session_tokens_real = 0
    session_tokens_total = 0

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [len(ids) for ids in dataset["input_ids"]]
        return LengthGroupedEpochSampler(lengths, self.args.train_batch_size, self.args.data_seed or self.args.seed)

    def _track_num_input_tokens(self, inputs):
        super()._track_num_input_tokens(inputs)
        ids = inputs["input_ids"]
        self.session_tokens_total += ids.numel()
        mask = inputs.get("attention_mask")
        self.session_tokens_real += int(mask.sum()) if mask is not None else ids.numel()


def grouped(trainer_class: type) -> type:
    """`trainer_class` (Trainer, SFTTrainer) with length-grouped batches and token counts (GroupedBatchesMixin)."""
    return type(f"Grouped{trainer_class.__name__}", (GroupedBatchesMixin, trainer_class), {})


# ---------------------------------------------------------------------------------------------------- callbacks


class StopOnNonFinite(TrainerCallback):
    """Raise NonFiniteLossError on a NaN/inf gradient (checked before every optimizer step) or logged loss."""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        for name, param in model.named_parameters():
            if param.requires_grad and param.grad is not None and not torch.isfinite(param.grad).all():
                raise NonFiniteLossError(
                    f"non-finite gradient in {name} at optimizer step {state.global_step + 1} (the loss is NaN or "
                    "inf): training stopped before the update; no adapter was written. Lower the learning rate or "
                    "check the base weights and the data."
                )

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "eval_loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                raise NonFiniteLossError(
                    f"{key} is {value} at step {state.global_step}: training stopped; no adapter was written. Lower "
                    "the learning rate or check the base weights and the data."
                )


class ReportProgress(TrainerCallback):
    def __init__(self, progress: Progress):
        self.progress = progress

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:  # every rank logs the same (gathered) figures: report them once
            return
        self.progress({"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch, **(logs or {})})


class SampleGenerations(TrainerCallback):
    """At every evaluation step, greedy answers to a few fixed prompts (the Axolotl habit), so the format can be
    watched forming before training ends: reported through `progress` (Dagster logs under Pipes) and appended to
    `out_path` (one JSON object per prompt and step, rewritten atomically). On a resumed run the lines after the
    checkpoint's step are dropped first, so the file stays one line per prompt and evaluation step.

    Every rank generates (the same greedy work, so sharded models see the same collective calls); only the main
    process writes and reports. `seconds` is the time spent here (to keep the habit cheap)."""

    def __init__(self, tokenizer, conversations: list[list[dict]], settings: GenerationSettings, out_path: Path,
                 progress: Progress | None = None):
        self.tokenizer, self.conversations, self.settings = tokenizer, conversations, settings
        self.out_path, self.progress = Path(out_path), progress
        self.contract = ReasoningContract.from_tokenizer(tokenizer)
        self.seconds = 0.0

    def _records(self) -> list[dict]:
        if not self.out_path.is_file():
            return []
        return [json.loads(line) for line in self.out_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def _write(self, records: list[dict]) -> None:
        write_text(self.out_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))

    def on_train_begin(self, args, state, control, **kwargs):
        if distributed.is_main_process():
            self._write([r for r in self._records() if r.get("step", 0) <= state.global_step])

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not self.conversations:
            return
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        records = []
        try:
            for number, conversation in enumerate(self.conversations, start=1):
                ids = generate(model, self.tokenizer, prompt_messages(conversation), self.settings)
                result = self.contract.check(ids)
                verdict = ("well formed" if result.ok else "truncated (budget reached)" if result.truncated
                           else f"malformed: {result.problem}")
                records.append({
                    "step": state.global_step, "prompt_number": number,
                    "prompt": prompt_messages(conversation)[-1]["content"],
                    "generation": self.tokenizer.decode(ids, skip_special_tokens=False),
                    "generated_tokens": len(ids), "max_new_tokens": self.settings.max_new_tokens,
                    "contract_ok": result.ok, "truncated": result.truncated, "verdict": verdict,
                })
        finally:
            if was_training:
                model.train()
        self.seconds += time.perf_counter() - started
        if not distributed.is_main_process():
            return
        self._write(self._records() + records)
        if self.progress:
            for record in records:
                self.progress({"sample_generation": record})


def sample_generations_markdown(path: Path) -> str:
    """The last evaluation step's sample generations in `path` as Markdown (for the adapter's metadata)."""
    path = Path(path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if (
        path.is_file()) else []
    if not records:
        return "_no sample generations (no evaluation step ran, or sample_generation_prompts is 0)_"
    last = max(r["step"] for r in records)
    steps = sorted({r["step"] for r in records})
    lines = [f"Greedy generations of {len({r['prompt_number'] for r in records})} fixed validation prompts at step "
             f"{last} (evaluations at steps {', '.join(map(str, steps))}; all in {path.name}).", ""]
    for r in (r for r in records if r["step"] == last):
        lines += [f"**Prompt {r['prompt_number']}:** {r['prompt']}", "", "```", r["generation"], "```", "",
                  f"{r['verdict']} ({r['generated_tokens']} of at most {r['max_new_tokens']} tokens)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- arguments


# Fixed by the project for every run, whatever the recipe says
FIXED_ARGUMENTS = {
    "fp16": False,
    "logging_first_step": True,
    # A NaN loss must stop the run, not be replaced by the running average (the default filter).
    "logging_nan_inf_filter": False,
    "include_num_input_tokens_seen": "non_padding",
    "prediction_loss_only": True,
    "dataloader_num_workers": 0,
    "report_to": "none",
    "disable_tqdm": True,
}
# Recipe fields whose value the trainer takes under another name or in another form (see `training_arguments`)
RESOLVED_FIELDS = ("gradient_checkpointing", "precision", "warmup_ratio")


def recipe_arguments(recipe: TrainingRecipe, arguments_class: type) -> dict:
    """Every recipe field that is also a field of `arguments_class`, under its own name (max_length reaches
    SFTConfig, not TrainingArguments), except those the recipe states in another form (RESOLVED_FIELDS)."""
    accepted = {f.name for f in dataclasses.fields(arguments_class) if f.init}
    return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe)
            if f.name in accepted and f.name not in RESOLVED_FIELDS}


def training_arguments(recipe: TrainingRecipe, output_dir: Path, precision: str, gradient_checkpointing: bool,
                       arguments_class: type | None = None) -> dict:
    """Keyword arguments of `arguments_class` (TrainingArguments, the default, or TRL's SFTConfig): the recipe's
    fields of the same names, what the recipe states in another form, and the project's fixed settings."""
    if arguments_class is None:
        from transformers import TrainingArguments as arguments_class
    return {
        "output_dir": str(output_dir),
        **recipe_arguments(recipe, arguments_class),
        "warmup_steps": recipe.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        "data_seed": recipe.seed,
        "bf16": precision == "bf16",
        "use_cpu": not torch.cuda.is_available(),
        "gradient_checkpointing": gradient_checkpointing,
        **FIXED_ARGUMENTS,
    }


# ---------------------------------------------------------------------------------------------------- checkpoints


def prepare_output_dir(out_dir: Path, run_key: dict, resume: bool, inputs: list[Path]) -> str | None:
    """Clear stale final outputs; return the checkpoint to resume from (None for a fresh start).

    Checkpoints made with another recipe, other data or another base model cannot be resumed: they are deleted and
    the run starts over, with a warning. Under a distributed launcher only the main process clears and decides; the
    other ranks wait, then resume from whatever checkpoint it kept."""
    from transformers.trainer_utils import get_last_checkpoint

    resumed = _prepare_output_dir(out_dir, run_key, resume, inputs) if distributed.is_main_process() else None
    distributed.wait_for_everyone()
    if not distributed.is_main_process():
        checkpoints = RunDir(out_dir).checkpoints
        resumed = get_last_checkpoint(str(checkpoints)) if resume and checkpoints.is_dir() else None
    return resumed


def _prepare_output_dir(out_dir: Path, run_key: dict, resume: bool, inputs: list[Path]) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    run = RunDir(out_dir)
    if any(run.path.resolve() == Path(p).resolve() for p in inputs):
        raise ValueError(f"the output folder {run.path} is one of the run's inputs; choose another one")
    checkpoints = run.checkpoints
    for path in run.final_files():
        path.unlink(missing_ok=True)
    last = get_last_checkpoint(str(checkpoints)) if resume and checkpoints.is_dir() else None
    if last is not None:
        saved = json.loads(run.run_key.read_text()) if run.run_key.is_file() else None
        if saved == run_key:
            return last
        logger.warning(
            "not resuming from %s: it was made with another recipe, other data or another base model; starting over",
            last,
        )
    if checkpoints.exists():
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True)
    write_json(run.run_key, run_key)
    return None


def make_run_key(recipe: TrainingRecipe, model_dir: Path, files: list[Path]) -> dict:
    """What a checkpoint must have been made from to be resumed (contents, not paths: folders may move)."""
    model_dir = Path(model_dir)
    return {
        "recipe": {k: v for k, v in recipe.as_dict().items() if k not in GENERATION_FIELDS},
        "model": {
            name: sha256_file(model_dir / name) for name in ("config.json", "tokenizer.json")
        } | {w.name: w.stat().st_size for w in sorted(model_dir.glob("*.safetensors"))},
        "files": {Path(f).name: sha256_file(f) for f in files},
    }


# ---------------------------------------------------------------------------------------------------- outputs


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def require_trainable(model) -> tuple[int, int]:
    trainable, total = count_parameters(model)
    if trainable <= 0:
        raise RuntimeError(
            "the model has no trainable parameters: LoRA matched no module (check lora_target_modules against the "
            "model's module names) or every parameter is frozen"
        )
    return trainable, total


def plot_loss_curve(log_history: list[dict], target: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def run_metrics(trainer, train_output, resumed_from: str | None) -> dict[str, Any]:
    """Figures every run reports: tokens, speed, padding, losses, parameters."""
    history = trainer.state.log_history
    train_losses = [e["loss"] for e in history if "loss" in e]
    evals = [e for e in history if "eval_loss" in e]
    if not evals or evals[-1]["step"] != trainer.state.global_step:
        evals.append({"eval_loss": trainer.evaluate()["eval_loss"], "step": trainer.state.global_step})
    runtime = train_output.metrics.get("train_runtime") or 0.0
    real, total = trainer.session_tokens_real, trainer.session_tokens_total
    trainable, all_params = count_parameters(trainer.model)
    return {
        "global_step": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "tokens_seen_this_session": real,
        "tokens_per_second": real / runtime if real and runtime > 0 else None,
        "padding_share": (total - real) / total if total else None,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "mean_train_loss_this_session": train_output.training_loss if real else None,
        "final_eval_loss": evals[-1]["eval_loss"],
        "train_runtime_s": runtime,
        "resumed_from": resumed_from,
        "trainable_parameters": trainable,
        "total_parameters": all_params,
        "world_size": distributed.world_size(),
    }


def write_run_outputs(trainer, tokenizer, out_dir: Path, metrics: dict, manifest_kwargs: dict, title: str) -> dict | None:
    """Adapter + tokenizer (staged, then moved in), log history, loss curve, metrics.json, run_manifest.json: written
    by the main process only (the others wait until it is done and get None)."""
    manifest = _write_run_outputs(trainer, tokenizer, out_dir, metrics, manifest_kwargs, title) if (
        distributed.is_main_process()) else None
    distributed.wait_for_everyone()
    return manifest


def _write_run_outputs(trainer, tokenizer, out_dir: Path, metrics: dict, manifest_kwargs: dict, title: str) -> dict:
    run = RunDir(out_dir)
    out_dir = run.path
    staging = out_dir / ".final.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    for path in sorted(staging.iterdir()):
        os.replace(path, out_dir / path.name)
    staging.rmdir()
    write_json(run.log_history, trainer.state.log_history)
    plot_loss_curve(trainer.state.log_history, run.loss_curve, title)
    write_json(run.metrics, metrics)
    manifest = build_manifest(metrics=metrics, **manifest_kwargs)
    write_manifest(out_dir, manifest)
    return manifest
