from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from c64_pipeline.settings import shared_corpus_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_CORPUS = shared_corpus_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The demo model, built the way the base_model asset builds it (tokenizer trained on the sample sources)."""
    from c64_pipeline.demo.model import TinyModelSettings, build_demo_model, demo_tokenizer_texts

    out = tmp_path_factory.mktemp("models") / "tiny"
    build_demo_model(out, demo_tokenizer_texts(), TinyModelSettings(vocab_size=2048))
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from c64_pipeline.base_model import load_tokenizer

    return load_tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def sample_manuals(tmp_path_factory) -> Path:
    """The bundled sample manuals, rendered once per test session."""
    from c64_pipeline.demo.sample_manuals import render_sample_manuals

    out = tmp_path_factory.mktemp("manuals")
    render_sample_manuals(out)
    return out


@pytest.fixture
def shared_corpus() -> Path:
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {SHARED_CORPUS}")
    return SHARED_CORPUS


def ocr_noise(text: str, rate: float, seed: int) -> str:
    """What a scan of `text` reads like: look-alike characters swapped, some letters lost, table rules re-read."""
    import random
    import re

    rng = random.Random(seed)
    swaps = {"o": "0", "l": "1", "e": "c", "S": "5", "B": "8", "m": "rn", "h": "b", "i": "l"}
    out = []
    for ch in text:
        if rng.random() < rate:
            out.append(swaps.get(ch, rng.choice(".,:~ ") if ch.isalnum() else ch))
        else:
            out.append(ch)
    return re.sub(r"\s{2,}", " | ", "".join(out)).replace(". ", ".\n")


# ---- small training datasets and quick runs on the tiny model (training, evaluation, export, bench tests) ----------
# The fixtures are module-scoped: each test module trains its own quick runs once.

REGISTERS = [
    ("border colour", "$D020", 53280, "VIC-II"),
    ("background colour", "$D021", 53281, "VIC-II"),
    ("sprite enable", "$D015", 53269, "VIC-II"),
    ("volume and filter mode", "$D418", 54296, "SID"),
    ("raster line", "$D012", 53266, "VIC-II"),
    ("voice 1 frequency low byte", "$D400", 54272, "SID"),
    ("sprite 0 X position", "$D000", 53248, "VIC-II"),
    ("screen control", "$D011", 53265, "VIC-II"),
    ("memory setup", "$D018", 53272, "VIC-II"),
    ("interrupt control", "$DC0D", 56333, "CIA"),
]
QUESTIONS = ["Which register sets the {}?", "Where is the {} register?", "What address controls the {}?"]
LONG_TRAIN = 3  # conversations longer than the demo max_length, to be filtered out of SFT


def conversation(i: int, long: bool = False) -> dict:
    name, address, decimal, chip = REGISTERS[i % len(REGISTERS)]
    question = QUESTIONS[i % 3].format(name)
    if long:
        question = f"I read that the {chip} holds many registers. " * 60 + question
    answer = f"[THINK]The table on page {3 + i % 7} gives {address} for the {name} of the {chip}.[/THINK]" \
             f"The {name} register is {address} ({decimal})."
    return {
        "messages": [
            {"role": "system", "content": "You are a Commodore 64 expert."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "source_refs": [f"doc{i % 3}#page={3 + i % 7}"],
        "doc_id": f"doc{i % 3}",
        "origin": "generated",
    }


def dapt_texts(n: int) -> list[str]:
    texts = []
    for i in range(n):
        name, address, decimal, chip = REGISTERS[i % len(REGISTERS)]
        texts.append(f"The {chip} register {address} ({decimal}) holds the {name}. " * (1 + i % 4))
    return texts


def write_dapt_split(path: Path, texts: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(texts)
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "token_count": pa.array([len(t) // 3 for t in texts], pa.int64()),
        "doc_id": pa.array(["doc0"] * n, pa.string()),
        "chunk_id": pa.array([f"doc0-{i}" for i in range(n)], pa.string()),
        "page_start": pa.array([1] * n, pa.int64()),
        "page_end": pa.array([1] * n, pa.int64()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_datasets(root: Path, n_train: int = 60, n_val: int = 6, n_test: int = 12, long_train: int = 0) -> Path:
    conversations = [conversation(i) for i in range(n_train + n_val + n_test)]
    write_jsonl(root / "sft" / "train.jsonl",
                conversations[:n_train] + [conversation(i, long=True) for i in range(long_train)])
    write_jsonl(root / "sft" / "validation.jsonl", conversations[n_train : n_train + n_val])
    write_jsonl(root / "sft" / "test.jsonl", conversations[n_train + n_val :])
    for split, n in (("train", 40), ("validation", 4), ("test", 6)):
        write_dapt_split(root / "dapt" / f"{split}.parquet", dapt_texts(n))
    return root


def quick(**changes):
    """The demo profile cut to a handful of steps, with a checkpoint every 2 steps (a TrainingRecipe)."""
    from c64_pipeline.training.recipe import demo_profile

    settings = {"max_steps": 4, "eval_steps": 2, "save_steps": 2, "logging_steps": 1,
                "sample_generation_max_new_tokens": 8, **changes}
    return demo_profile().replace(**settings)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_datasets(tmp_path_factory.mktemp("data"), long_train=LONG_TRAIN)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data_dir) -> Path:
    """A tiny demo model whose tokenizer also learnt the `data_dir` texts."""
    from c64_pipeline.demo.model import TinyModelSettings, build_demo_model, demo_tokenizer_texts

    texts = demo_tokenizer_texts()
    texts += [json.dumps(conversation(i)) for i in range(60)] + dapt_texts(40)
    out = tmp_path_factory.mktemp("models") / "tiny"
    build_demo_model(out, texts, TinyModelSettings(vocab_size=1024))
    return out


@pytest.fixture(scope="module")
def dapt_run(tmp_path_factory, model_dir, data_dir) -> tuple[Path, dict]:
    from c64_pipeline.training.dapt import train_dapt

    out = tmp_path_factory.mktemp("runs") / "fine-tuned-dapt"
    return out, train_dapt(model_dir, data_dir / "dapt", out, quick())


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, model_dir, data_dir, dapt_run) -> tuple[Path, dict]:
    from c64_pipeline.training.sft import train_sft

    out = tmp_path_factory.mktemp("runs") / "fine-tuned-sft"
    return out, train_sft(model_dir, dapt_run[0], data_dir / "sft", out, quick())
