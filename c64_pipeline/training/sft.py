"""Supervised fine-tuning (SFT): a new LoRA adapter, trained with TRL's SFTTrainer on assistant tokens only, on top of
the base model with the DAPT adapter merged in.

Guards TRL does not give: the rendered assistant mask is checked on a real conversation (a `{% generation %}` marker
inside a Jinja comment passes TRL's text test but masks nothing), conversations longer than max_length are filtered
and counted before training (TRL would cut them silently), and the adapter must have trainable parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

from c64_pipeline.base_model import ModelDirError
from c64_pipeline.training.common import (
    SAMPLE_GENERATIONS,
    GroupedBatchesMixin,
    Progress,
    ReportProgress,
    SampleGenerations,
    StopOnNonFinite,
    TrainingDataError,
    make_run_key,
    prepare_output_dir,
    require_trainable,
    run_metrics,
    training_arguments,
    write_run_outputs,
)
from c64_pipeline.training.dapt import DTYPES, disable_cache, json_targets, lora_config
from c64_pipeline.training.generation import spread
from c64_pipeline.training.manifest import MANIFEST_FILE, base_model_identity, sha256_file
from c64_pipeline.training.model_loading import (
    check_adapter_dir,
    load_base_model,
    load_model_tokenizer,
    merge_adapter,
    model_architecture,
)
from c64_pipeline.training.recipe import TrainingRecipe, resolved_gradient_checkpointing, resolved_precision

ROLES = ("system", "user", "assistant")


class ChatTemplateError(ValueError):
    """The chat template's assistant mask would train on the wrong tokens (or on none)."""


def read_conversations(path: Path) -> list[list[dict]]:
    """The `messages` of every line of an SFT jsonl split, checked for shape."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path} does not exist: materialize the SFT dataset first")
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise TrainingDataError(f"{path}:{number} is not a JSON object with 'messages' ({exc})") from exc
        ok = isinstance(messages, list) and all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages
        )
        if not ok or not any(m["role"] == "assistant" for m in messages):
            raise TrainingDataError(
                f"{path}:{number}: messages must be a list of {{role: system|user|assistant, content: str}} with at "
                "least one assistant turn"
            )
        conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return conversations


def strict_template_check(tokenizer, conversation: list[dict]) -> None:
    """Render `conversation` with its assistant mask and require that exactly the assistant contents, each followed
    by its stop token, are marked: nothing of the system/user turns or the template's scaffolding, and not nothing."""
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    out = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if not any(mask):
        raise ChatTemplateError(
            "the chat template marks no assistant tokens: assistant turns must sit inside "
            "{% generation %}...{% endgeneration %} blocks (a marker inside a Jinja comment does not count), "
            "otherwise assistant_only_loss trains on nothing"
        )
    encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    if list(encoded["input_ids"]) != ids:
        raise ChatTemplateError("tokenizing the rendered conversation does not give the template's token ids")
    offsets = encoded["offset_mapping"]
    expected = [0] * len(ids)
    cursor = 0
    for message in conversation:
        start = rendered.find(message["content"], cursor)
        if start < 0:
            raise ChatTemplateError(f"the template does not render a {message['role']} message's content verbatim")
        end = cursor = start + len(message["content"])
        if message["role"] != "assistant" or not message["content"]:
            continue
        inside = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
        for i in inside:
            expected[i] = 1
        stop = inside[-1] + 1
        if stop >= len(ids) or not mask[stop]:
            raise ChatTemplateError(
                "the token after an assistant turn (its end-of-turn token) is not in the assistant mask: the model "
                "would never learn to stop"
            )
        expected[stop] = 1
    wrong = [i for i, (m, e) in enumerate(zip(mask, expected)) if bool(m) != bool(e)]
    if wrong:
        shown = tokenizer.convert_ids_to_tokens([ids[i] for i in wrong[:10]])
        kind = "marks tokens outside the assistant turns" if mask[wrong[0]] else "leaves assistant tokens unmarked"
        raise ChatTemplateError(f"the chat template's assistant mask {kind}: {len(wrong)} tokens, e.g. {shown}")


def conversation_length(tokenizer, conversation: list[dict]) -> int:
    return len(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"])


def filter_long(tokenizer, conversations: list[list[dict]], max_length: int) -> tuple[list[list[dict]], int]:
    """Conversations that fit in max_length tokens, and how many did not (dropped here, visibly, not cut by TRL)."""
    kept = [c for c in conversations if conversation_length(tokenizer, c) <= max_length]
    return kept, len(conversations) - len(kept)


def _check_dapt_base(model_dir: Path, dapt_adapter_dir: Path) -> dict | None:
    """The DAPT run's manifest, after checking it was trained on this base model."""
    path = Path(dapt_adapter_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    trained_on = manifest.get("base_model", {}).get("tokenizer_sha256")
    if trained_on and trained_on != base_model_identity(model_dir)["tokenizer_sha256"]:
        raise ModelDirError(f"the DAPT adapter in {dapt_adapter_dir} was trained on another base model than {model_dir}")
    return manifest


def train_sft(
    model_dir: Path,
    dapt_adapter_dir: Path,
    sft_dir: Path,
    out_dir: Path,
    recipe: TrainingRecipe | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Train the SFT LoRA adapter (on base + merged DAPT) into `out_dir`; return its metrics."""
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    recipe = recipe or TrainingRecipe()
    precision = resolved_precision(recipe)  # first: a machine that cannot run the recipe refuses before any work
    model_dir, dapt_adapter_dir, sft_dir, out_dir = map(Path, (model_dir, dapt_adapter_dir, sft_dir, out_dir))
    architecture = model_architecture(model_dir)
    check_adapter_dir(dapt_adapter_dir)
    dapt_manifest = _check_dapt_base(model_dir, dapt_adapter_dir)
    files = [sft_dir / "train.jsonl", sft_dir / "validation.jsonl"]
    train_all, eval_all = read_conversations(files[0]), read_conversations(files[1])
    if not train_all:
        raise TrainingDataError(f"{files[0]} has no conversations: there is nothing to train on")
    if not eval_all:
        raise TrainingDataError(f"{files[1]} has no conversations: the eval loss could not be measured")
    tokenizer = load_model_tokenizer(model_dir)
    strict_template_check(tokenizer, train_all[0])
    train, too_long_train = filter_long(tokenizer, train_all, recipe.max_length)
    evals, too_long_eval = filter_long(tokenizer, eval_all, recipe.max_length)
    if recipe.eval_max_examples:
        evals = spread(evals, recipe.eval_max_examples)
    for kept, name in ((train, files[0]), (evals, files[1])):
        if not kept:
            raise TrainingDataError(f"every conversation in {name} is longer than max_length={recipe.max_length}")

    checkpointing = resolved_gradient_checkpointing(recipe)
    run_files = [*files, dapt_adapter_dir / "adapter_model.safetensors"]
    resumed_from = prepare_output_dir(
        out_dir, make_run_key(recipe, model_dir, run_files), resume, [model_dir, dapt_adapter_dir, sft_dir]
    )
    model = merge_adapter(load_base_model(model_dir, DTYPES[precision]), dapt_adapter_dir)
    disable_cache(model)
    arguments = training_arguments(recipe, out_dir / "checkpoints", precision, checkpointing)
    sft_arguments = {**arguments, "assistant_only_loss": True, "packing": False, "max_length": recipe.max_length}
    set_seed(recipe.seed)

    class GroupedSFTTrainer(GroupedBatchesMixin, SFTTrainer):
        pass

    # a few fixed validation prompts, generated at every evaluation step (spread: the split is ordered by page)
    samples = SampleGenerations(tokenizer, spread(evals, recipe.sample_generation_prompts)
                                if recipe.sample_generation_prompts else [],
                                recipe.sample_generation(), out_dir / SAMPLE_GENERATIONS, progress)

    trainer = GroupedSFTTrainer(
        model=model,
        args=SFTConfig(**sft_arguments),
        train_dataset=Dataset.from_list([{"messages": c} for c in train]),
        eval_dataset=Dataset.from_list([{"messages": c} for c in evals]),
        processing_class=tokenizer,
        peft_config=lora_config(recipe, architecture),
        callbacks=[StopOnNonFinite(), *([ReportProgress(progress)] if progress else []), samples],
    )
    trainer.remove_callback(PrinterCallback)
    require_trainable(trainer.model)
    if len(trainer.train_dataset) != len(train) or len(trainer.eval_dataset) != len(evals):
        raise RuntimeError(
            f"TRL kept {len(trainer.train_dataset)}/{len(train)} training and {len(trainer.eval_dataset)}/{len(evals)} "
            "eval conversations after preparation: some lost every assistant token"
        )
    output = trainer.train(resume_from_checkpoint=resumed_from)
    metrics = {
        "stage": "sft",
        "precision": precision,
        "assistant_only_loss": trainer.args.assistant_only_loss,  # as the trainer ran, not as requested
        "train_conversations": len(train),
        "eval_conversations": len(evals),
        "filtered_examples": {"too_long_train": too_long_train, "too_long_validation": too_long_eval},
        "max_length": recipe.max_length,
        **run_metrics(trainer, output, resumed_from),
        "sample_generation_prompts": len(samples.conversations),
        "sample_generation_seconds": samples.seconds,
    }
    merged = [{
        "stage": "dapt",
        "adapter_dir": str(dapt_adapter_dir),
        "adapter_sha256": sha256_file(run_files[2]),
        "run_manifest_created_utc": (dapt_manifest or {}).get("created_utc"),
    }]
    write_run_outputs(
        trainer,
        tokenizer,
        out_dir,
        metrics,
        {
            "stage": "sft",
            "recipe": recipe,
            "training_arguments": sft_arguments,
            "assistant_only_loss": trainer.args.assistant_only_loss,
            "chat_template": tokenizer.chat_template,
            "model_dir": model_dir,
            "dataset_files": files,
            "adapters_merged_in": merged,
            "lora_target_modules": json_targets(trainer.model.peft_config["default"].target_modules),
        },
        title=f"SFT loss, assistant tokens only ({recipe.profile} recipe)",
    )
    return metrics
