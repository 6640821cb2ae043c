"""Load the base model for training, strictly: a checkpoint with missing or unexpected weights is an error; and the
pieces every stage shares around it: the torch dtype of a precision, the LoRA config, merging an adapter in.

transformers 5 initialises weights that a checkpoint lacks randomly and only logs a line about it; a LoRA run on such
a model trains on noise and still reports a falling loss, so every load here checks the loading report and raises.

Two kinds of checkpoint: the tiny demo model (`Ministral3ForCausalLM`, a plain causal LM) and the real Ministral 3
(`Mistral3ForConditionalGeneration`: a language model plus a vision encoder). The real one is loaded whole and LoRA
is aimed at its language model only, since `all-linear` or bare projection names would also hit vision layers.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from c64_pipeline.base_model import ModelDirError, validate_model_dir
from c64_pipeline.conversation import THINK_CLOSE, THINK_OPEN
from c64_pipeline.training.artifacts import ADAPTER_FILES, ADAPTER_WEIGHTS

CAUSAL_LM_ARCHITECTURES = ("Ministral3ForCausalLM", "MistralForCausalLM")
# The torch dtype of each precision a recipe resolves to (recipe.resolved_precision)
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MULTIMODAL_ARCHITECTURES = ("Mistral3ForConditionalGeneration",)

logger = logging.getLogger(__name__)


class StrictLoadingError(RuntimeError):
    """The checkpoint does not match the model: weights are missing, unexpected or of the wrong shape."""


def model_architecture(model_dir: Path) -> str:
    """The architecture named in `config.json`, checked to be one this pipeline trains."""
    validate_model_dir(model_dir)
    config = json.loads((Path(model_dir) / "config.json").read_text())
    architectures = config.get("architectures") or []
    supported = CAUSAL_LM_ARCHITECTURES + MULTIMODAL_ARCHITECTURES
    if len(architectures) != 1 or architectures[0] not in supported:
        raise ModelDirError(
            f"{Path(model_dir) / 'config.json'} names architectures {architectures}; expected exactly one of "
            f"{', '.join(supported)}"
        )
    return architectures[0]


def lora_target_modules(architecture: str, names: tuple[str, ...]) -> list[str] | str:
    """Module names for a plain causal LM; for the multimodal model a regex matching the language model only."""
    if architecture in MULTIMODAL_ARCHITECTURES:
        return rf".*language_model.*\.({'|'.join(names)})"
    return list(names)


def lora_config(recipe, architecture: str):
    """The recipe's LoRA adapter (a peft LoraConfig) for a model of `architecture`."""
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
    """LoRA target modules as the run manifest records them (a sorted list, or the regex)."""
    return targets if isinstance(targets, str) else sorted(targets)


def disable_cache(model) -> None:
    """No KV cache while training (it only costs memory; gradient checkpointing refuses it)."""
    model.config.use_cache = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().use_cache = False


def _model_class(architecture: str):
    import transformers

    return getattr(transformers, architecture)


# Extra tensors some checkpoints carry that hold no learned weight (buffers recomputed at load): ignored, logged.
HARMLESS_UNEXPECTED = (re.compile(r"(^|\.)rotary_emb\.inv_freq$"), re.compile(r"(^|\.)num_batches_tracked$"))


def harmless(name: str) -> bool:
    return any(pattern.search(name) for pattern in HARMLESS_UNEXPECTED)


def check_loading_info(model_dir: Path, info: dict) -> None:
    """Raise StrictLoadingError when the loading report lists missing, unexpected or mismatched weights
    (unexpected buffers on the HARMLESS_UNEXPECTED allow-list are logged and ignored)."""
    problems = []
    ignored = sorted(name for name in info.get("unexpected_keys") or () if harmless(name))
    if ignored:
        logger.info("ignoring %d harmless extra tensors in %s (e.g. %s)", len(ignored), model_dir, ignored[0])
    for key in ("missing_keys", "unexpected_keys"):
        names = sorted(n for n in info.get(key) or () if not (key == "unexpected_keys" and harmless(n)))
        if names:
            shown = ", ".join(names[:8]) + (f" ... ({len(names)} in all)" if len(names) > 8 else "")
            problems.append(f"{key.replace('_', ' ')}: {shown}")
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        problems.append("mismatched shapes: " + ", ".join(str(m) for m in mismatched[:8]))
    if info.get("error_msgs"):
        problems.append("errors: " + "; ".join(map(str, info["error_msgs"]))[:1000])
    if problems:
        raise StrictLoadingError(
            f"the checkpoint in {model_dir} does not match its architecture (transformers would initialise the "
            f"missing weights randomly and train on them): {' | '.join(problems)}. Re-download or rebuild the model."
        )


def load_base_model(model_dir: Path, dtype: torch.dtype = torch.float32, device: str | None = None):
    """The base model with strict weight loading, on the CPU unless `device` is given. Training leaves it there: the
    Trainer moves it to each rank's own device once the process group exists (moving it to "cuda" here would put
    every rank on GPU 0)."""
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    architecture = model_architecture(model_dir)
    try:
        config = AutoConfig.from_pretrained(str(model_dir))
        model, info = _model_class(architecture).from_pretrained(
            str(model_dir), config=config, dtype=dtype, output_loading_info=True
        )
    except Exception as exc:  # corrupt files surface as OSError, ValueError, SafetensorError, ...
        raise ModelDirError(f"could not load the model in {model_dir}: {type(exc).__name__}: {exc}") from exc
    check_loading_info(model_dir, info)
    return model.to(device) if device else model


def check_adapter_dir(adapter_dir: Path) -> Path:
    adapter_dir = Path(adapter_dir)
    missing = [n for n in ADAPTER_FILES if not (adapter_dir / n).is_file()]
    if missing:
        raise ModelDirError(f"adapter directory {adapter_dir} is missing {', '.join(missing)}: train that stage first")
    return adapter_dir


def merge_adapter(model, adapter_dir: Path):
    """`model` with the LoRA adapter in `adapter_dir` merged into its weights; every adapter tensor must load."""
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors import safe_open

    adapter_dir = check_adapter_dir(adapter_dir)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
        with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), "pt") as fh:
            saved = set(fh.keys())
    except Exception as exc:  # corrupt files surface as OSError, ValueError, SafetensorError, ...
        raise ModelDirError(f"could not load the adapter in {adapter_dir}: {type(exc).__name__}: {exc}") from exc
    expected = set(get_peft_model_state_dict(peft_model).keys())
    check_loading_info(adapter_dir, {"missing_keys": expected - saved, "unexpected_keys": saved - expected})
    return peft_model.merge_and_unload()


def load_model_tokenizer(model_dir: Path):
    """The model's tokenizer with the project's chat template, checked for the tokens training relies on."""
    from c64_pipeline.base_model import load_tokenizer

    try:
        tokenizer = load_tokenizer(model_dir)
    except Exception as exc:  # a corrupt tokenizer.json surfaces as many exception types
        raise ModelDirError(f"could not load the tokenizer in {model_dir}: {type(exc).__name__}: {exc}") from exc
    vocab = tokenizer.get_vocab()
    missing = [t for t in (THINK_OPEN, THINK_CLOSE) if t not in vocab]
    if missing or tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
        raise ModelDirError(
            f"the tokenizer in {model_dir} lacks {', '.join(missing) or 'a bos/eos token'}: not a Ministral 3 tokenizer"
        )
    if tokenizer.pad_token_id is None:  # padding is masked out, any id will do
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
