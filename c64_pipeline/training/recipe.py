"""The training recipe: every hyperparameter of the DAPT and SFT runs in one typed, JSON-serialisable record.

The defaults are the founding recipe for Ministral 3 8B. `demo_profile()` is the same record with values that let
the tiny demo model train on 2 CPU cores in minutes: a profile is data, never a separate code path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated in evaluations: greedy (the default: reproducible), or sampling with the
    temperature and top_p the model card recommends for Ministral 3 Reasoning (0.7, 0.95), seeded."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 42

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be positive and top_p in (0, 1]")

    def as_dict(self) -> dict:
        return asdict(self)


# Fields of the evaluation (how answers are generated, how much of the test splits is measured), never of the trained
# weights: a checkpoint made with other values may still be resumed.
GENERATION_FIELDS: tuple[str, ...] = (
    "eval_max_prompts", "eval_max_new_tokens", "eval_do_sample", "eval_temperature", "eval_top_p",
    "eval_max_exam_questions", "eval_max_test_chunks", "eval_max_sft_examples",
    "sample_generation_prompts", "sample_generation_max_new_tokens",
)


@dataclass(frozen=True)
class TrainingRecipe:
    profile: str = "founding"
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = LORA_TARGETS
    # Modules trained in full beside the LoRA matrices. Empty for the real model; the demo model's randomly
    # initialised output layer needs it to produce anything sharper than noise in a few hundred steps.
    lora_modules_to_save: tuple[str, ...] = ()
    # Precision: "auto" is bf16 where the hardware has it (CUDA with bf16), fp32 otherwise (CPU).
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # Expert override: let "auto" precision fall back to fp32 on a machine without a CUDA device with bf16. Off by
    # default, so the founding recipe (an 8B model) never starts an fp32 run on the CPU that would never end.
    allow_cpu: bool = False
    # None: on where there is a GPU (memory), off on CPU (where it only costs time).
    gradient_checkpointing: bool | None = None
    # Sequences
    max_length: int = 2048
    # Optimisation
    per_device_train_batch_size: int = 2
    per_device_eval_batch_size: int = 2
    gradient_accumulation_steps: int = 16
    learning_rate: float = 2e-5
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    seed: int = 42
    # Evaluation, checkpoints, logs
    eval_strategy: Literal["epoch", "steps", "no"] = "epoch"
    eval_steps: int | None = None
    save_strategy: Literal["epoch", "steps", "no"] = "epoch"
    save_steps: int | None = None
    save_total_limit: int | None = 3
    logging_steps: int = 10
    # the eval loss during training on at most this many validation examples, spread over the split (None: all).
    # Training curves only; the evaluation after training and the validation report use the whole split.
    eval_max_examples: int | None = None
    # Evaluation of the trained models. The budget fits a reasoning model (reasoning + answer); a generation that
    # reaches it without an end of sequence is counted as truncated, not as a broken format.
    eval_max_prompts: int = 50
    eval_max_new_tokens: int = 2048
    eval_do_sample: bool = False  # greedy; True samples with the temperature / top_p below (the model card's values)
    eval_temperature: float = 0.7
    eval_top_p: float = 0.95
    eval_max_exam_questions: int | None = None  # None: every question of the user's exam (data/raw/eval/*.jsonl)
    eval_max_test_chunks: int = 200  # DAPT test perplexity over the first this many test chunks
    eval_max_sft_examples: int = 200  # SFT test loss over the first this many test conversations (that fit max_length)
    # Generations of a few fixed validation prompts at every evaluation step during SFT (0 turns them off)
    sample_generation_prompts: int = 3
    sample_generation_max_new_tokens: int = 512

    def __post_init__(self) -> None:
        problems = []
        if self.lora_r <= 0 or self.lora_alpha <= 0:
            problems.append("lora_r and lora_alpha must be positive")
        if not 0 <= self.lora_dropout < 1:
            problems.append("lora_dropout must be in [0, 1)")
        if self.max_length < 8:
            problems.append("max_length must be at least 8")
        if min(self.per_device_train_batch_size, self.per_device_eval_batch_size, self.gradient_accumulation_steps) < 1:
            problems.append("batch sizes and gradient_accumulation_steps must be at least 1")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be positive")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("warmup_ratio must be in [0, 1)")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            problems.append("set num_train_epochs > 0 or max_steps > 0")
        if self.eval_strategy == "steps" and not self.eval_steps:
            problems.append("eval_strategy='steps' needs eval_steps")
        if self.save_strategy == "steps" and not self.save_steps:
            problems.append("save_strategy='steps' needs save_steps")
        if self.eval_max_examples is not None and self.eval_max_examples < 1:
            problems.append("eval_max_examples must be at least 1 (or None for the whole validation split)")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"precision must be 'auto', 'bf16' or 'fp32', not {self.precision!r}")
        if self.eval_max_new_tokens < 1 or self.sample_generation_max_new_tokens < 1:
            problems.append("eval_max_new_tokens and sample_generation_max_new_tokens must be at least 1")
        if self.eval_temperature <= 0 or not 0 < self.eval_top_p <= 1:
            problems.append("eval_temperature must be positive and eval_top_p in (0, 1]")
        if self.eval_max_exam_questions is not None and self.eval_max_exam_questions < 0:
            problems.append("eval_max_exam_questions must be None or >= 0")
        if min(self.eval_max_prompts, self.eval_max_test_chunks, self.eval_max_sft_examples) < 0:
            problems.append("eval_max_prompts, eval_max_test_chunks and eval_max_sft_examples must be >= 0")
        if self.sample_generation_prompts < 0:
            problems.append("sample_generation_prompts must be >= 0")
        if problems:
            raise ValueError("invalid TrainingRecipe: " + "; ".join(problems))

    def as_dict(self) -> dict:
        data = asdict(self)
        data["lora_target_modules"] = list(self.lora_target_modules)
        data["lora_modules_to_save"] = list(self.lora_modules_to_save)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainingRecipe:
        data = dict(data)
        for key in ("lora_target_modules", "lora_modules_to_save"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def replace(self, **changes) -> TrainingRecipe:
        return replace(self, **changes)

    def generation(self, max_new_tokens: int | None = None) -> GenerationSettings:
        """The evaluation's generation settings (`max_new_tokens` overrides the recipe's budget)."""
        return GenerationSettings(
            max_new_tokens=self.eval_max_new_tokens if max_new_tokens is None else max_new_tokens,
            do_sample=self.eval_do_sample, temperature=self.eval_temperature, top_p=self.eval_top_p, seed=self.seed,
        )

    def sample_generation(self) -> GenerationSettings:
        """Greedy, small budget: the fixed prompts shown at each evaluation step of SFT."""
        return GenerationSettings(max_new_tokens=self.sample_generation_max_new_tokens, seed=self.seed)


class HardwareError(RuntimeError):
    """The machine cannot run this recipe as asked (no CUDA device, or none with bf16); raised before loading."""


def hardware_has_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolved_precision(recipe: TrainingRecipe, has_bf16: bool | None = None) -> Literal["bf16", "fp32"]:
    """bf16 where the hardware runs it natively (CUDA with bf16 support). "auto" on a machine without it refuses to
    start, unless `allow_cpu` says an expert wants the fp32 fallback; the demo profile asks for fp32 outright."""
    has_bf16 = hardware_has_bf16() if has_bf16 is None else has_bf16
    if recipe.precision == "bf16" and not has_bf16:
        raise HardwareError("the recipe asks for bf16 but this machine has no CUDA device with bf16 support")
    if recipe.precision == "auto":
        if has_bf16:
            return "bf16"
        if not recipe.allow_cpu:
            raise HardwareError(
                f"the {recipe.profile} recipe needs a CUDA GPU with bf16 (an 8B model in fp32 on the CPU would never "
                "finish), and this machine has none: torch.cuda.is_available() is False or the GPU lacks bf16 "
                "(PyPI's torch is a CUDA 13 build that needs a recent NVIDIA driver: check `nvidia-smi`). Train "
                "on a GPU machine, use the demo profile for the tiny model, or set allow_cpu=True to accept fp32."
            )
        return "fp32"
    return recipe.precision


def resolved_gradient_checkpointing(recipe: TrainingRecipe) -> bool:
    import torch

    if recipe.gradient_checkpointing is None:
        return torch.cuda.is_available()
    return recipe.gradient_checkpointing


def founding_recipe() -> TrainingRecipe:
    return TrainingRecipe()


DEMO_MAX_STEPS = {"dapt": 200, "sft": 900}
# LoRA rank of the demo stages. The tiny model's layers are 64 wide, so rank 64 is a full-rank update. SFT needs it to
# hold the reasoning format on the whole-manual SFT data (measured on the sample manuals, 50 held-out prompts: rank 16
# 0.57-0.59 well formed; rank 64 0.90-1.0 over two versions of the data and two seeds, 0.96 and 0.99 over 100
# prompts); DAPT at rank 64 and this learning rate falls into loops (0.0-0.13 after SFT), so DAPT keeps the recipe's 16.
DEMO_LORA = {"dapt": (16, 32), "sft": (64, 128)}
# The demo's generations cost CPU minutes: the exam is capped to 8 questions (spread over the bundled 16), and the
# fixed prompts at SFT's evaluation steps get a budget that shows the reasoning forming, not a whole turn.
DEMO_EXAM_QUESTIONS = 8
SAMPLE_GENERATION_TOKENS_DEMO = 96


def demo_profile(stage: str = "sft") -> TrainingRecipe:
    """The tiny demo model on 2 CPU cores: small batches, a high learning rate, bounded steps. max_length 768 keeps
    every sample-manual conversation (the system prompt alone is ~250 tokens of the demo tokenizer). DAPT stops
    earlier than SFT: on the sample manuals' few chunks its validation loss is lowest near step 200 and rises after."""
    if stage not in DEMO_MAX_STEPS:
        raise ValueError(f"stage must be one of {sorted(DEMO_MAX_STEPS)}, not {stage!r}")
    return TrainingRecipe(
        profile="demo",
        lora_r=DEMO_LORA[stage][0],
        lora_alpha=DEMO_LORA[stage][1],
        lora_modules_to_save=("lm_head",),
        precision="fp32",
        gradient_checkpointing=False,
        max_length=768,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=5e-3,
        lr_scheduler_type="linear",
        warmup_ratio=0.05,
        max_steps=DEMO_MAX_STEPS[stage],
        eval_strategy="steps",
        eval_steps=100,
        save_strategy="steps",
        save_steps=100,
        save_total_limit=2,
        logging_steps=10,
        eval_max_examples=64,  # nine evaluations during SFT: the whole validation split would cost minutes each
        eval_max_prompts=50,
        eval_max_new_tokens=320,  # assistant turns of the sample data run to ~220 tokens
        eval_max_exam_questions=DEMO_EXAM_QUESTIONS,
        sample_generation_max_new_tokens=SAMPLE_GENERATION_TOKENS_DEMO,
    )


def default_recipe(model_mode: str, stage: str = "sft", profile: str = "auto") -> TrainingRecipe:
    """The recipe a stage trains with unless the run says otherwise: `profile` "auto" is the demo profile for the tiny
    demo model and the founding recipe for the real one. The datasets read their lengths from it too (chunk size,
    the report's SFT length limit), so one `max_length` governs chunking, the report and training."""
    chosen = profile if profile != "auto" else ("demo" if model_mode == "demo" else "founding")
    if chosen not in ("demo", "founding"):
        raise ValueError(f"profile must be 'auto', 'demo' or 'founding', not {profile!r}")
    return demo_profile(stage) if chosen == "demo" else founding_recipe()
