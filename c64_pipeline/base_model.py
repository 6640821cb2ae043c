"""The base model the datasets are tokenized for and the adapters are trained on.

Demo mode builds a tiny Ministral 3 model locally (same architecture class, special tokens, chat template and a
SYSTEM_PROMPT.txt); real mode checks that `models/Ministral-3-8B-Thinking` has everything the pipeline reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from c64_pipeline.atomic import write_text

TEMPLATES = Path(__file__).with_name("templates")
CHAT_TEMPLATE_PATH = TEMPLATES / "mistral3_chat_template_assistant_mask.jinja"
C64_SPECIALIZATION_PATH = TEMPLATES / "c64_specialization.txt"
DEMO_SYSTEM_PROMPT_PATH = TEMPLATES / "demo_system_prompt.txt"

# Same special tokens (and order of the first ids) as the Mistral 3 tokenizer.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[THINK]", "[/THINK]", "<pad>"]
SYSTEM_PROMPT_FILE = "SYSTEM_PROMPT.txt"


class ModelDirError(Exception):
    """The model directory is missing something the pipeline needs; the message lists what."""


@dataclass(frozen=True)
class TinyModelSettings:
    vocab_size: int = 4096
    hidden_size: int = 64
    intermediate_size: int = 192
    # Depth, not width, is what lets a model this small keep track of where it is in a reply ([THINK] reasoning or
    # final answer): with 2 or 4 layers 15-25% of held-out prompts lost the format, with 6 about 1%.
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    rope_theta: float = 1_000_000.0
    seed: int = 0


def chat_template() -> str:
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def compose_system_prompt(model_dir: Path) -> str:
    """The base model's own system prompt with the C64 specialization appended (never replacing it)."""
    base = (Path(model_dir) / SYSTEM_PROMPT_FILE).read_text(encoding="utf-8").strip()
    return base + "\n\n" + C64_SPECIALIZATION_PATH.read_text(encoding="utf-8").strip()


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
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
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
    tokenizer_hash = hashlib.sha256((model_dir / "tokenizer.json").read_bytes()).hexdigest()
    return {
        "model_dir": str(model_dir),
        "architectures": config.get("architectures", []),
        "model_type": config.get("model_type"),
        "weight_files": [w.name for w in weights],
        "tokenizer_sha256": tokenizer_hash,
        "chat_template_sha256": hashlib.sha256(chat_template().encode()).hexdigest(),
    }


def load_tokenizer(model_dir: Path):
    """The model's tokenizer.json with the project's chat template (the official one has no generation blocks)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.chat_template = chat_template()
    return tokenizer


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on the corpus, with the Mistral 3 special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[3:9],
        model_max_length=1_000_000,
    )
    tokenizer.chat_template = chat_template()
    return tokenizer


def build_demo_model(out_dir: Path, texts: list[str], settings: TinyModelSettings = TinyModelSettings()) -> dict:
    """Build the tiny demo model into `out_dir` (replacing it whole) and return its identity."""
    import shutil
    import tempfile

    import torch
    from transformers import Ministral3Config, Ministral3ForCausalLM

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, settings.vocab_size)
    config = Ministral3Config(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_hidden_layers,
        num_attention_heads=settings.num_attention_heads,
        num_key_value_heads=settings.num_key_value_heads,
        head_dim=settings.hidden_size // settings.num_attention_heads,
        max_position_embeddings=settings.max_position_embeddings,
        # the real model's rope layout (YaRN with Llama 4 query scaling), at factor 1 for the short demo context
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": settings.rope_theta,
            "factor": 1.0,
            "original_max_position_embeddings": settings.max_position_embeddings,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "llama_4_scaling_beta": 0.1,
        },
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(settings.seed)
    model = Ministral3ForCausalLM(config)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_text(staging / SYSTEM_PROMPT_FILE, DEMO_SYSTEM_PROMPT_PATH.read_text(encoding="utf-8"))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return validate_model_dir(out_dir)


def demo_tokenizer_texts(sources_dir: Path) -> list[str]:
    """The corpus the demo tokenizer learns from: the bundled sample manuals' sources and the prompts."""
    from c64_pipeline.text_sources import decode_bytes, html_to_text

    texts = []
    for path in sorted(Path(sources_dir).rglob("*")):
        if path.is_file() and path.suffix.lower() in (".md", ".txt", ".html", ".htm"):
            text = decode_bytes(path.read_bytes())
            texts.append(html_to_text(text) if path.suffix.lower() in (".html", ".htm") else text)
    texts.append(DEMO_SYSTEM_PROMPT_PATH.read_text(encoding="utf-8"))
    texts.append(C64_SPECIALIZATION_PATH.read_text(encoding="utf-8"))
    return texts
