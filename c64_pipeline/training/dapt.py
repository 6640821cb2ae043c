"""Domain-adaptive pretraining (DAPT): a LoRA adapter trained as a causal LM on the manuals' token windows.

The chunks are already token windows, so nothing is packed and nothing is cut: a chunk becomes `<s>` + its tokens,
or several near-equal windows when it is longer than the recipe's max_length. Batches group windows of similar
length, so padding is close to zero (and reported).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from c64_pipeline.training.common import (
    GroupedBatchesMixin,
    Progress,
    ReportProgress,
    StopOnNonFinite,
    TrainingDataError,
    make_run_key,
    prepare_output_dir,
    require_trainable,
    run_metrics,
    training_arguments,
    write_run_outputs,
)
from c64_pipeline.training.model_loading import (
    load_base_model,
    load_model_tokenizer,
    lora_target_modules,
    model_architecture,
)
from c64_pipeline.training.recipe import TrainingRecipe, resolved_gradient_checkpointing, resolved_precision

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def read_texts(path: Path) -> tuple[list[str], int]:
    """The non-empty `text` values of a DAPT parquet split, and how many rows were empty."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist: materialize the DAPT dataset first")
    try:
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise TrainingDataError(f"{path} is not a readable parquet file with a 'text' column ({exc})") from exc
    kept = [t for t in texts if t and t.strip()]
    return kept, len(texts) - len(kept)


def token_windows(texts: list[str], tokenizer, max_length: int) -> tuple[list[list[int]], int]:
    """Training sequences for the chunks, and how many chunks had to be split. No token is dropped."""
    bos = tokenizer.bos_token_id
    sequences: list[list[int]] = []
    split = 0
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        if len(ids) < max_length:
            sequences.append([bos, *ids])
        elif len(ids) == max_length:  # no room for <s>; the window is used as it is
            sequences.append(list(ids))
        else:
            pieces = math.ceil(len(ids) / (max_length - 1))
            size = math.ceil(len(ids) / pieces)
            sequences.extend([bos, *ids[i : i + size]] for i in range(0, len(ids), size))
            split += 1
    return sequences, split


class PadCollator:
    """Right-pad a batch of token lists; padding is masked out of attention and loss."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            input_ids[row, : len(f["input_ids"])] = torch.as_tensor(f["input_ids"])
            attention_mask[row, : len(f["input_ids"])] = 1
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def lora_config(recipe: TrainingRecipe, architecture: str):
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=lora_target_modules(architecture, recipe.lora_target_modules),
        modules_to_save=list(recipe.lora_modules_to_save) or None,
        bias="none",
    )


def json_targets(targets) -> list[str] | str:
    return targets if isinstance(targets, str) else sorted(targets)


def disable_cache(model) -> None:
    model.config.use_cache = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().use_cache = False


def train_dapt(
    model_dir: Path,
    dapt_dir: Path,
    out_dir: Path,
    recipe: TrainingRecipe | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Train the DAPT LoRA adapter into `out_dir` and return its metrics (also in out_dir/metrics.json)."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

    recipe = recipe or TrainingRecipe()
    precision = resolved_precision(recipe)  # first: a machine that cannot run the recipe refuses before any work
    model_dir, dapt_dir, out_dir = Path(model_dir), Path(dapt_dir), Path(out_dir)
    architecture = model_architecture(model_dir)
    files = [dapt_dir / "train.parquet", dapt_dir / "validation.parquet"]
    train_texts, empty_train = read_texts(files[0])
    eval_texts, empty_eval = read_texts(files[1])
    if not train_texts:
        raise TrainingDataError(f"{files[0]} has no rows with text: there is nothing to train on")
    if not eval_texts:
        raise TrainingDataError(f"{files[1]} has no rows with text: the eval loss could not be measured")
    tokenizer = load_model_tokenizer(model_dir)
    train_ids, split_train = token_windows(train_texts, tokenizer, recipe.max_length)
    eval_ids, split_eval = token_windows(eval_texts, tokenizer, recipe.max_length)

    checkpointing = resolved_gradient_checkpointing(recipe)
    resumed_from = prepare_output_dir(out_dir, make_run_key(recipe, model_dir, files), resume, [model_dir, dapt_dir])
    model = load_base_model(model_dir, DTYPES[precision])
    disable_cache(model)
    config = lora_config(recipe, architecture)
    set_seed(recipe.seed)  # LoRA weights are initialised randomly: seed before creating them
    model = get_peft_model(model, config)
    require_trainable(model)
    if checkpointing:
        model.enable_input_require_grads()
    arguments = training_arguments(recipe, out_dir / "checkpoints", precision, checkpointing)

    class DaptTrainer(GroupedBatchesMixin, Trainer):
        pass

    trainer = DaptTrainer(
        model=model,
        args=TrainingArguments(**arguments),
        train_dataset=Dataset.from_dict({"input_ids": train_ids}),
        eval_dataset=Dataset.from_dict({"input_ids": eval_ids}),
        data_collator=PadCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[StopOnNonFinite(), *([ReportProgress(progress)] if progress else [])],
    )
    trainer.remove_callback(PrinterCallback)
    # a fresh LoRA adapter is a no-op (its B matrices start at zero), so this is the base model's validation loss
    base_eval_loss = trainer.evaluate()["eval_loss"]
    output = trainer.train(resume_from_checkpoint=resumed_from)
    metrics = {
        "stage": "dapt",
        "base_eval_loss": base_eval_loss,
        "precision": precision,
        "train_chunks": len(train_texts),
        "eval_chunks": len(eval_texts),
        "train_sequences": len(train_ids),
        "eval_sequences": len(eval_ids),
        "chunks_split_to_fit_max_length": split_train + split_eval,
        "filtered_examples": {"empty_text_train": empty_train, "empty_text_validation": empty_eval},
        **run_metrics(trainer, output, resumed_from),
    }
    write_run_outputs(
        trainer,
        tokenizer,
        out_dir,
        metrics,
        {
            "stage": "dapt",
            "recipe": recipe,
            "training_arguments": arguments,
            "assistant_only_loss": False,
            "chat_template": tokenizer.chat_template,
            "model_dir": model_dir,
            "dataset_files": files,
            "lora_target_modules": json_targets(config.target_modules),
        },
        title=f"DAPT loss ({recipe.profile} recipe)",
    )
    return metrics
