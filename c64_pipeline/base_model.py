"""The base model the datasets are tokenized for and the adapters are trained on.

Demo mode builds a tiny Ministral 3 model locally (`c64_pipeline.demo.model`); real mode checks that `models/Ministral-3-8B-Thinking` has everything the pipeline reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from c64_pipeline.records import Record

TEMPLATES = Path(__file__).with_name("templates")
CHAT_TEMPLATE_PATH = TEMPLATES / "mistral3_chat_template_assistant_mask.jinja"
C64_SPECIALIZATION_PATH = TEMPLATES / "c64_specialization.txt"

SYSTEM_PROMPT_FILE = "SYSTEM_PROMPT.txt"

# The Tekken tokenizer's layout of Ministral 3: its first 36 special ids (the <SPECIAL_n> are reserved slots) and the
# regex that splits text before byte-level BPE. A demo tokenizer in this layout can be written as tekken.json, which
# llama.cpp's converter reads without needing to recognise the vocabulary (see training/export.py).
TEKKEN_SPECIAL_TOKENS = [
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]",
    "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]", *[f"<SPECIAL_{i}>" for i in range(20, 34)], "[THINK]",
    "[/THINK]",
]
TEKKEN_PATTERN = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"


@dataclass(frozen=True)
class ModelIdentity(Record):
    """The `base_model` asset's value: where the model is, what it is (`validate_model_dir`'s identity), which mode
    (demo or real) and the tokenizer's vocabulary size."""

    model_dir: str
    architectures: tuple[str, ...] = ()
    model_type: str | None = None
    weight_files: tuple[str, ...] = ()
    tokenizer_sha256: str = ""
    chat_template_sha256: str = ""
    mode: str = ""
    vocab_size: int = 0


class ModelDirError(Exception):
    """The model directory is missing something the pipeline needs; the message lists what."""


def chat_template() -> str:
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def compose_system_prompt(model_dir: Path) -> str:
    """The base model's own system prompt with the C64 specialization appended (never replacing it)."""
    base = (Path(model_dir) / SYSTEM_PROMPT_FILE).read_text(encoding="utf-8").strip()
    return base + "\n\n" + C64_SPECIALIZATION_PATH.read_text(encoding="utf-8").strip()


REAL_MODEL_REPO_ID = "mistralai/Ministral-3-8B-Reasoning-2512"
SHARD_INDEX = "model.safetensors.index.json"
CONSOLIDATED = "consolidated.safetensors"  # Mistral's own (mistral-inference) format: one file, other weight names


def checkpoint_weight_files(model_dir: Path) -> list[Path]:
    """The Hugging Face weight files of a checkpoint: `model.safetensors`, or the shards its index names.

    Raises ModelDirError for a sharded checkpoint without its index (or with shards missing) and for a folder that
    holds only Mistral's `consolidated.safetensors`, which transformers cannot load. An empty list means no weights.
    """
    model_dir = Path(model_dir)
    index = model_dir / SHARD_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise ModelDirError(f"{index} is not a valid shard index ({type(exc).__name__}: {exc})") from exc
        absent = [name for name in shards if not (model_dir / name).is_file()]
        if absent:
            raise ModelDirError(f"{index} names shards that are not in {model_dir}: {', '.join(absent[:5])}")
        return [model_dir / name for name in shards]
    hf_files = sorted(p for p in model_dir.glob("*.safetensors") if p.name != CONSOLIDATED)
    if len(hf_files) > 1 or any("-of-" in p.name for p in hf_files):
        raise ModelDirError(
            f"{model_dir} holds {len(hf_files)} weight shards ({', '.join(p.name for p in hf_files[:3])}, ...) but no "
            f"{SHARD_INDEX}: without it transformers cannot know which weight is where; download the index too"
        )
    if hf_files:
        return hf_files
    if (model_dir / CONSOLIDATED).is_file():
        raise ModelDirError(
            f"{model_dir} holds only {CONSOLIDATED}, Mistral's own checkpoint format, which transformers does not "
            f"load: download the Hugging Face files (model-*.safetensors and {SHARD_INDEX}) of {REAL_MODEL_REPO_ID} "
            "(see README, 'The real model')"
        )
    return sorted(model_dir.glob("*.bin"))


def check_not_quantized(model_dir: Path, config: dict) -> None:
    """LoRA in bf16 needs bf16 weights: refuse an FP8 (or otherwise quantized) checkpoint with what to do instead."""
    quantization = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    if not quantization:
        return
    method = str(quantization.get("quant_method", "unknown"))
    raise ModelDirError(
        f"{model_dir / 'config.json'} declares a {method} quantization_config: this pipeline trains LoRA on the BF16 "
        f"weights, which a quantized checkpoint does not have. Download the BF16 checkpoint ({REAL_MODEL_REPO_ID}) "
        "instead, or dequantize this one to bf16 and remove quantization_config from config.json"
    )


def validate_model_dir(model_dir: Path) -> dict:
    """Check a model directory has tokenizer, config, weights and SYSTEM_PROMPT.txt; return its identity."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(
            f"model directory {model_dir} does not exist: place the model there (see README, 'Real model') "
            "or set C64_BASE_MODEL_DIR"
        )
    missing = []
    if not (model_dir / "tokenizer.json").is_file():
        missing.append("tokenizer.json")
    if not (model_dir / "config.json").is_file():
        missing.append("config.json")
    weights = checkpoint_weight_files(model_dir)
    if not weights:
        missing.append("weights (*.safetensors)")
    if not (model_dir / SYSTEM_PROMPT_FILE).is_file():
        missing.append(SYSTEM_PROMPT_FILE)
    if missing:
        raise ModelDirError(f"model directory {model_dir} is missing: {', '.join(missing)}")
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise ModelDirError(f"{model_dir / 'config.json'} is not valid JSON ({exc})") from exc
    check_not_quantized(model_dir, config)
    tokenizer_hash = hashlib.sha256((model_dir / "tokenizer.json").read_bytes()).hexdigest()
    return {
        "model_dir": str(model_dir),
        "architectures": config.get("architectures", []),
        "model_type": config.get("model_type"),
        "weight_files": [w.name for w in weights],
        "tokenizer_sha256": tokenizer_hash,
        "chat_template_sha256": hashlib.sha256(chat_template().encode()).hexdigest(),
    }


# The control tokens every conversation is written with: each must encode, written in text, to one special id.
CONTROL_TOKENS = ("[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[THINK]", "[/THINK]")


def check_control_tokens(tokenizer, model_dir: Path) -> None:
    """Raise ModelDirError unless the tokenizer is the `tokenizers` backend and every control token, written in
    text, encodes to one special id (the mistral-common backend spells `[THINK]` out as ordinary text tokens)."""
    backend = type(tokenizer).__name__
    if backend not in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        raise ModelDirError(
            f"the tokenizer of {model_dir} loaded as {backend}, not the tokenizers backend built from tokenizer.json"
        )
    special = set(tokenizer.all_special_ids)
    wrong = []
    for token in CONTROL_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1 or ids[0] not in special:
            wrong.append(f"{token} -> {ids}")
    if wrong:
        raise ModelDirError(
            f"the tokenizer of {model_dir} does not encode the control tokens as single special ids "
            f"({'; '.join(wrong)}): training would learn them as plain text"
        )


def load_tokenizer(model_dir: Path):
    """The model's `tokenizer.json` (always the `tokenizers` backend) with the project's chat template.

    Not `AutoTokenizer`: with the `mistral-common` package installed (vLLM, Axolotl and others pull it in) it returns
    the mistral-common backend for a Mistral checkpoint that ships `tekken.json`, which does not turn `[THINK]` written
    in text into its control token. The official chat template has no generation blocks, hence the project's own.
    """
    from transformers import PreTrainedTokenizerFast

    model_dir = Path(model_dir)
    if not (model_dir / "tokenizer.json").is_file():
        raise ModelDirError(f"model directory {model_dir} is missing tokenizer.json")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    tokenizer.chat_template = chat_template()
    check_control_tokens(tokenizer, model_dir)
    return tokenizer


def byte_level_char(byte: int) -> str:
    """The character byte-level BPE writes for `byte` (GPT-2's bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    if byte in printable:
        return chr(byte)
    return chr(256 + [b for b in range(256) if b not in printable].index(byte))
