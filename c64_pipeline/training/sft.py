"""Supervised fine-tuning (SFT): a new LoRA adapter, trained with TRL's SFTTrainer on assistant tokens only, on top of
the base model with the DAPT adapter merged in.

Guards TRL does not give: the rendered assistant mask is checked on a real conversation (a `{% generation %}` marker
inside a Jinja comment passes TRL's text test but masks nothing), conversations longer than max_length are filtered
and counted before training (TRL would cut them silently), and the adapter must have trainable parameters. The run
itself is the shared stage skeleton (`stage.TrainingStage`).
"""

from __future__ import annotations

from pathlib import Path

from c64_pipeline.base_model import ModelDirError
from c64_pipeline.training.artifacts import RunDir, sft_split
from c64_pipeline.training.common import Progress, SampleGenerations, grouped
from c64_pipeline.training.data import TrainingDataError, filter_long, read_conversations, require_rows
from c64_pipeline.training.generation import spread
from c64_pipeline.training.manifest import base_model_identity, sha256_file
from c64_pipeline.training.model_loading import check_adapter_dir, load_base_model, merge_adapter
from c64_pipeline.training.recipe import TrainingRecipe
from c64_pipeline.training.stage import TrainingStage


class ChatTemplateError(ValueError):
    """The chat template's assistant mask would train on the wrong tokens (or on none)."""


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


def _check_dapt_base(model_dir: Path, dapt_adapter_dir: Path) -> dict | None:
    """The DAPT run's manifest, after checking it was trained on this base model."""
    manifest = RunDir(dapt_adapter_dir).read_manifest()
    if manifest is None:
        return None
    trained_on = manifest.get("base_model", {}).get("tokenizer_sha256")
    if trained_on and trained_on != base_model_identity(model_dir)["tokenizer_sha256"]:
        raise ModelDirError(f"the DAPT adapter in {dapt_adapter_dir} was trained on another base model than {model_dir}")
    return manifest


class SftStage(TrainingStage):
    name = "sft"
    title = "SFT loss, assistant tokens only"
    extra_arguments = {"assistant_only_loss": True, "packing": False}  # max_length is the recipe's (an SFTConfig field)

    def __init__(self, model_dir: Path, dapt_adapter_dir: Path, sft_dir: Path, out_dir: Path,
                 recipe: TrainingRecipe | None = None, resume: bool = True, progress: Progress | None = None):
        super().__init__(model_dir, out_dir, recipe, resume, progress)
        self.dapt = RunDir(dapt_adapter_dir)
        self.sft_dir = Path(sft_dir)

    def dataset_files(self) -> list[Path]:
        return [sft_split(self.sft_dir, "train"), sft_split(self.sft_dir, "validation")]

    def input_dirs(self) -> list[Path]:
        return [self.dapt.path, self.sft_dir]

    def run_files(self) -> list[Path]:
        return [*self.dataset_files(), self.dapt.adapter_weights]

    def check_inputs(self) -> None:
        check_adapter_dir(self.dapt.path)
        self.dapt_manifest = _check_dapt_base(self.model_dir, self.dapt.path)

    def read_data(self) -> None:
        train, validation = self.dataset_files()
        self.train_all, self.eval_all = read_conversations(train), read_conversations(validation)
        require_rows(self.train_all, train, "conversations", "there is nothing to train on")
        require_rows(self.eval_all, validation, "conversations", "the eval loss could not be measured")

    def prepare_data(self, tokenizer) -> None:
        recipe = self.recipe
        strict_template_check(tokenizer, self.train_all[0])
        self.train, self.too_long_train = filter_long(tokenizer, self.train_all, recipe.max_length)
        self.evals, self.too_long_eval = filter_long(tokenizer, self.eval_all, recipe.max_length)
        if recipe.eval_max_examples:
            self.evals = spread(self.evals, recipe.eval_max_examples)
        for kept, name in zip((self.train, self.evals), self.dataset_files()):
            if not kept:
                raise TrainingDataError(f"every conversation in {name} is longer than max_length={recipe.max_length}")

    def load_model(self, dtype):
        return merge_adapter(load_base_model(self.model_dir, dtype), self.dapt.path)

    def arguments_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def make_trainer(self, model, args, lora, tokenizer, callbacks: list):
        from datasets import Dataset
        from trl import SFTTrainer

        recipe = self.recipe
        # a few fixed validation prompts, generated at every evaluation step (spread: the split is ordered by page)
        self.samples = SampleGenerations(tokenizer, spread(self.evals, recipe.sample_generation_prompts)
                                         if recipe.sample_generation_prompts else [],
                                         recipe.sample_generation(), self.out.sample_generations, self.progress)
        return grouped(SFTTrainer)(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([{"messages": c} for c in self.train]),
            eval_dataset=Dataset.from_list([{"messages": c} for c in self.evals]),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[*callbacks, self.samples],
        )

    def before_training(self, trainer) -> dict:
        if len(trainer.train_dataset) != len(self.train) or len(trainer.eval_dataset) != len(self.evals):
            raise RuntimeError(
                f"TRL kept {len(trainer.train_dataset)}/{len(self.train)} training and "
                f"{len(trainer.eval_dataset)}/{len(self.evals)} eval conversations after preparation: some lost every "
                "assistant token"
            )
        return {}

    def assistant_only_loss(self, trainer) -> bool:
        return trainer.args.assistant_only_loss  # as the trainer ran, not as requested

    def data_metrics(self, trainer) -> dict:
        return {
            "assistant_only_loss": self.assistant_only_loss(trainer),
            "train_conversations": len(self.train),
            "eval_conversations": len(self.evals),
            "filtered_examples": {"too_long_train": self.too_long_train, "too_long_validation": self.too_long_eval},
            "max_length": self.recipe.max_length,
        }

    def after_training(self) -> dict:
        return {"sample_generation_prompts": len(self.samples.conversations),
                "sample_generation_seconds": self.samples.seconds}

    def manifest_extras(self, trainer) -> dict:
        return {"adapters_merged_in": [{
            "stage": "dapt",
            "adapter_dir": str(self.dapt.path),
            "adapter_sha256": sha256_file(self.dapt.adapter_weights),
            "run_manifest_created_utc": (self.dapt_manifest or {}).get("created_utc"),
        }]}


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
    return SftStage(model_dir, dapt_adapter_dir, sft_dir, out_dir, recipe, resume, progress).run()
