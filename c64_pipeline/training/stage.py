"""The one skeleton of a LoRA training stage. DAPT and SFT are small subclasses that say what they read, which
model they start from and which trainer they use; the order of the work, the guards and the outputs are here:

refuse a machine that cannot run the recipe -> check the model and the inputs -> read and tokenize the data (every
data error before any training work) -> clear stale outputs, decide on resuming -> load the model -> seed, add the
LoRA adapter, build the trainer -> train -> write adapter, tokenizer, metrics, run manifest, log history, loss curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from c64_pipeline.training.artifacts import RunDir
from c64_pipeline.training.common import (
    Progress,
    ReportProgress,
    StopOnNonFinite,
    make_run_key,
    prepare_output_dir,
    require_trainable,
    run_metrics,
    training_arguments,
    write_run_outputs,
)
from c64_pipeline.training.model_loading import (
    DTYPES,
    disable_cache,
    json_targets,
    load_base_model,
    load_model_tokenizer,
    lora_config,
    model_architecture,
)
from c64_pipeline.training.recipe import TrainingRecipe, resolved_gradient_checkpointing, resolved_precision


class TrainingStage:
    """One LoRA training run into `out_dir`. Subclasses set `name`, `title` and the hooks below; `run()` is the same
    for every stage."""

    name: ClassVar[str]
    title: ClassVar[str]  # the loss curve's title, before "({profile} recipe)"

    def __init__(self, model_dir: Path, out_dir: Path, recipe: TrainingRecipe | None = None, resume: bool = True,
                 progress: Progress | None = None):
        self.model_dir = Path(model_dir)
        self.out = RunDir(out_dir)
        self.recipe = recipe or TrainingRecipe()
        self.resume, self.progress = resume, progress

    # ------------------------------------------------------------------------------------------------ hooks

    # Keyword arguments this stage adds to the recipe's (recorded in the manifest with them)
    extra_arguments: ClassVar[dict[str, Any]] = {}

    def dataset_files(self) -> list[Path]:
        """The train and validation files the run reads (hashed into the run key and the manifest)."""
        raise NotImplementedError

    def input_dirs(self) -> list[Path]:
        """Folders the run reads besides the model (the output folder must be none of them)."""
        raise NotImplementedError

    def check_inputs(self) -> None:
        """Inputs to check before any data is read (the DAPT adapter SFT starts from)."""

    def read_data(self) -> None:
        """Read and check the training data files."""
        raise NotImplementedError

    def prepare_data(self, tokenizer) -> None:
        """Tokenize and filter the data; the last data errors are raised here, before any training work."""
        raise NotImplementedError

    def run_files(self) -> list[Path]:
        """What the checkpoints depend on besides the recipe and the base model."""
        return self.dataset_files()

    def load_model(self, dtype):
        return load_base_model(self.model_dir, dtype)

    def arguments_class(self) -> type:
        """The trainer's arguments class (TrainingArguments, or TRL's SFTConfig)."""
        raise NotImplementedError

    def make_trainer(self, model, args, lora, tokenizer, callbacks: list):
        """The trainer, with the LoRA adapter `lora` added to `model` (the seed is set just before)."""
        raise NotImplementedError

    def before_training(self, trainer) -> dict[str, Any]:
        """Figures measured before the first step (they open the metrics)."""
        return {}

    def data_metrics(self, trainer) -> dict[str, Any]:
        """What the run trained on: counts of examples and of those filtered out."""
        raise NotImplementedError

    def after_training(self) -> dict[str, Any]:
        """Figures that close the metrics."""
        return {}

    def manifest_extras(self, trainer) -> dict[str, Any]:
        """Run manifest fields of this stage (adapters merged in, ...)."""
        return {}

    def assistant_only_loss(self, trainer) -> bool:
        return False

    # ------------------------------------------------------------------------------------------------ the run

    def run(self) -> dict:
        """Train the adapter into the output folder; return its metrics (also written to metrics.json)."""
        from transformers import PrinterCallback, set_seed

        recipe = self.recipe
        precision = resolved_precision(recipe)  # first: a machine that cannot run the recipe refuses before any work
        architecture = model_architecture(self.model_dir)
        self.check_inputs()
        self.read_data()
        tokenizer = load_model_tokenizer(self.model_dir)
        self.prepare_data(tokenizer)

        checkpointing = resolved_gradient_checkpointing(recipe)
        resumed_from = prepare_output_dir(self.out.path, make_run_key(recipe, self.model_dir, self.run_files()),
                                          self.resume, [self.model_dir, *self.input_dirs()])
        model = self.load_model(DTYPES[precision])
        disable_cache(model)
        arguments_class = self.arguments_class()
        arguments = {**training_arguments(recipe, self.out.checkpoints, precision, checkpointing, arguments_class),
                     **self.extra_arguments}
        callbacks = [StopOnNonFinite(), *([ReportProgress(self.progress)] if self.progress else [])]
        set_seed(recipe.seed)  # LoRA weights are initialised randomly: seed before creating them
        trainer = self.make_trainer(model, arguments_class(**arguments), lora_config(recipe, architecture), tokenizer,
                                    callbacks)
        trainer.remove_callback(PrinterCallback)
        require_trainable(trainer.model)
        before = self.before_training(trainer)
        output = trainer.train(resume_from_checkpoint=resumed_from)
        metrics = {
            "stage": self.name,
            **before,
            "precision": precision,
            **self.data_metrics(trainer),
            **run_metrics(trainer, output, resumed_from),
            **self.after_training(),
        }
        manifest = {
            "stage": self.name,
            "recipe": recipe,
            "training_arguments": arguments,
            "assistant_only_loss": self.assistant_only_loss(trainer),
            "chat_template": tokenizer.chat_template,
            "model_dir": self.model_dir,
            "dataset_files": self.dataset_files(),
            **self.manifest_extras(trainer),
            "lora_target_modules": json_targets(trainer.model.peft_config["default"].target_modules),
        }
        write_run_outputs(trainer, tokenizer, self.out.path, metrics, manifest,
                          title=f"{self.title} ({recipe.profile} recipe)")
        return metrics

