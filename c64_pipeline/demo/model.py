"""The tiny demo model: a Ministral 3 (`Ministral3ForCausalLM`: same architecture class, special tokens, chat template
and a SYSTEM_PROMPT.txt) with a tokenizer trained here on the bundled sample manuals' sources, so the whole graph runs
on 2 CPU cores with nothing downloaded. Its default tokenizer is in the layout of Ministral 3's Tekken tokenizer, which
llama.cpp converts to GGUF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from c64_pipeline.atomic import write_text
from c64_pipeline.base_model import (
    C64_SPECIALIZATION_PATH, CONTROL_TOKENS, SYSTEM_PROMPT_FILE, TEKKEN_PATTERN, TEKKEN_SPECIAL_TOKENS,
    byte_level_char, chat_template, validate_model_dir,
)

DEMO_SYSTEM_PROMPT_PATH = Path(__file__).with_name("system_prompt.txt")
SAMPLE_SOURCES = Path(__file__).with_name("sample_sources")

# The byte-level tokenizer's special tokens: those of Mistral 3, in the order of its first ids.
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[THINK]", "[/THINK]", "<pad>"]

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
    # "tekken": the Tekken layout of the real tokenizer (its split regex, its first 36 special ids, bytes first),
    # which llama.cpp converts to GGUF; "bytelevel": byte-level BPE with GPT-2 splitting and 10 special tokens, which
    # llama.cpp refuses (its pre-tokenizer hash does not know it)
    tokenizer: str = "tekken"


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


def train_tekken_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on the corpus in the layout of Ministral 3's Tekken tokenizer: Tekken's
    split regex, its 36 first special ids, then the 256 bytes in byte order, then the merged tokens in merge order
    (so token id = special count + Tekken rank, as in tekken.json)."""
    import json as _json

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(TEKKEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=TEKKEN_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    data = _json.loads(core.to_str())
    merges = [m if isinstance(m, list) else m.split(" ") for m in data["model"]["merges"]]
    vocab = {token: i for i, token in enumerate(TEKKEN_SPECIAL_TOKENS)}
    for token in [byte_level_char(b) for b in range(256)] + [left + right for left, right in merges]:
        vocab.setdefault(token, len(vocab))
    data["model"]["vocab"] = vocab
    for added in data["added_tokens"]:
        added["id"] = vocab[added["content"]]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_json.dumps(data)), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", additional_special_tokens=list(CONTROL_TOKENS), model_max_length=1_000_000,
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
    if settings.tokenizer not in ("bytelevel", "tekken"):
        raise ValueError(f"TinyModelSettings.tokenizer must be 'bytelevel' or 'tekken', not {settings.tokenizer!r}")
    trainer = train_tekken_tokenizer if settings.tokenizer == "tekken" else train_tokenizer
    tokenizer = trainer(texts, settings.vocab_size)
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


def demo_tokenizer_texts(sources_dir: Path = SAMPLE_SOURCES) -> list[str]:
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
