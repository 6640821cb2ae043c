from __future__ import annotations

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
