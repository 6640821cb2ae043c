"""Domain-adaptive pretraining (DAPT): a LoRA adapter trained as a causal LM on the manuals' token windows.

The chunks become `<s>` + their tokens, or several near-equal windows when longer than the recipe's max_length
(`data.token_windows`: nothing packed, nothing cut). Batches group windows of similar length, so padding is close
to zero (and reported). The run itself is the shared stage skeleton (`stage.TrainingStage`).
"""

from __future__ import annotations

from pathlib import Path

from c64_pipeline.training.artifacts import dapt_split
from c64_pipeline.training.common import Progress, grouped
from c64_pipeline.training.data import PadCollator, read_texts, require_rows, token_windows
from c64_pipeline.training.recipe import TrainingRecipe
from c64_pipeline.training.stage import TrainingStage


class DaptStage(TrainingStage):
    name = "dapt"
    title = "DAPT loss"

    def __init__(self, model_dir: Path, dapt_dir: Path, out_dir: Path, recipe: TrainingRecipe | None = None,
                 resume: bool = True, progress: Progress | None = None):
        super().__init__(model_dir, out_dir, recipe, resume, progress)
        self.dapt_dir = Path(dapt_dir)

    def dataset_files(self) -> list[Path]:
        return [dapt_split(self.dapt_dir, "train"), dapt_split(self.dapt_dir, "validation")]

    def input_dirs(self) -> list[Path]:
        return [self.dapt_dir]

    def read_data(self) -> None:
        train, validation = self.dataset_files()
        self.train_texts, self.empty_train = read_texts(train)
        self.eval_texts, self.empty_eval = read_texts(validation)
        require_rows(self.train_texts, train, "rows with text", "there is nothing to train on")
        require_rows(self.eval_texts, validation, "rows with text", "the eval loss could not be measured")

    def prepare_data(self, tokenizer) -> None:
        self.train_ids, self.split_train = token_windows(self.train_texts, tokenizer, self.recipe.max_length)
        self.eval_ids, self.split_eval = token_windows(self.eval_texts, tokenizer, self.recipe.max_length)

    def arguments_class(self) -> type:
        from transformers import TrainingArguments

        return TrainingArguments

    def make_trainer(self, model, args, lora, tokenizer, callbacks: list):
        from datasets import Dataset
        from peft import get_peft_model
        from transformers import Trainer

        model = get_peft_model(model, lora)
        if args.gradient_checkpointing:
            model.enable_input_require_grads()
        return grouped(Trainer)(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict({"input_ids": self.train_ids}),
            eval_dataset=Dataset.from_dict({"input_ids": self.eval_ids}),
            data_collator=PadCollator(tokenizer.pad_token_id),
            processing_class=tokenizer,
            callbacks=callbacks,
        )

    def before_training(self, trainer) -> dict:
        # a fresh LoRA adapter is a no-op (its B matrices start at zero), so this is the base model's validation loss
        return {"base_eval_loss": trainer.evaluate()["eval_loss"]}

    def data_metrics(self, trainer) -> dict:
        return {
            "train_chunks": len(self.train_texts),
            "eval_chunks": len(self.eval_texts),
            "train_sequences": len(self.train_ids),
            "eval_sequences": len(self.eval_ids),
            "chunks_split_to_fit_max_length": self.split_train + self.split_eval,
            "filtered_examples": {"empty_text_train": self.empty_train, "empty_text_validation": self.empty_eval},
        }


def train_dapt(
    model_dir: Path,
    dapt_dir: Path,
    out_dir: Path,
    recipe: TrainingRecipe | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Train the DAPT LoRA adapter on dapt_dir/train.parquet into `out_dir`; return its metrics."""
    return DaptStage(model_dir, dapt_dir, out_dir, recipe, resume, progress).run()
