"""A model people can run: merged safetensors, GGUF through llama.cpp's converter, Ollama Modelfile, llama.cpp check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from c64_pipeline.base_model import (
    SYSTEM_PROMPT_FILE,
    TinyModelSettings,
    build_demo_model,
    compose_system_prompt,
    demo_tokenizer_texts,
    load_tokenizer,
    train_tokenizer,
)
from c64_pipeline.settings import PROJECT_ROOT
from c64_pipeline.training.dapt import train_dapt
from c64_pipeline.training.export import (
    LLAMA_CPP_DIR_ENV,
    ExportError,
    GGUFConversionError,
    convert_to_gguf,
    export_merged_model,
    find_converter,
    inference_chat_template,
    merge_stages,
    modelfile_text,
)
from c64_pipeline.training.model_loading import load_base_model
from c64_pipeline.training.sft import train_sft
from c64_pipeline_tests.test_training import conversation, dapt_texts, quick, write_datasets

SAMPLE = [
    {"role": "system", "content": "You are a Commodore 64 expert."},
    {"role": "user", "content": "Which register sets the border colour?"},
    {"role": "assistant", "content": "[THINK]The VIC-II table gives $D020.[/THINK]The border colour is $D020 (53280)."},
]


@pytest.fixture(scope="module")
def small_tokenizer():
    return train_tokenizer([json.dumps(conversation(i)) for i in range(20)], vocab_size=400)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny demo model with DAPT and SFT adapters from a few quick training steps."""
    root = tmp_path_factory.mktemp("export")
    data = write_datasets(root / "data")
    texts = demo_tokenizer_texts(PROJECT_ROOT / "data" / "sample_manuals")
    texts += [json.dumps(conversation(i)) for i in range(60)] + dapt_texts(40)
    model_dir = root / "tiny"
    build_demo_model(model_dir, texts, TinyModelSettings(vocab_size=1024))
    dapt = root / "fine-tuned-dapt"
    train_dapt(model_dir, data / "dapt", dapt, quick())
    sft = root / "fine-tuned-sft"
    train_sft(model_dir, dapt, data / "sft", sft, quick())
    merged = root / "merged"
    export_merged_model(model_dir, dapt, sft, merged, max_new_tokens=64)
    return {"model": model_dir, "dapt": dapt, "sft": sft, "merged": merged, "data": data}


# ---------------------------------------------------------------------------------------------------- templates


def test_inference_chat_template_renders_the_same_text_without_generation_markers(small_tokenizer):
    assert "generation" in small_tokenizer.chat_template
    training_text = small_tokenizer.apply_chat_template(SAMPLE, tokenize=False)
    template = inference_chat_template()
    assert "{% generation" not in template and "endgeneration" not in template
    small_tokenizer.chat_template = template
    assert small_tokenizer.apply_chat_template(SAMPLE, tokenize=False) == training_text


def test_modelfile_has_template_system_prompt_and_stop_tokens():
    text = modelfile_text("c64-Q8_0.gguf", "You are a C64 expert.\nThink first.", max_new_tokens=320, num_ctx=832)
    lines = text.splitlines()
    assert lines[0] == "FROM ./c64-Q8_0.gguf"
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    for marker in ("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]", "</s>"):
        assert marker in template
    assert template.index("[INST]") < template.index("[/INST]") < template.index("</s>")
    assert 'SYSTEM """You are a C64 expert.\nThink first."""' in text
    assert 'PARAMETER stop "</s>"' in lines and 'PARAMETER stop "[INST]"' in lines
    assert "PARAMETER temperature 0" in lines and "PARAMETER num_predict 320" in lines
    assert "PARAMETER num_ctx 832" in lines


def test_modelfile_refuses_a_system_prompt_that_would_end_its_block():
    with pytest.raises(ExportError, match='system prompt contains """'):
        modelfile_text("m.gguf", 'Say """hi"""', max_new_tokens=8, num_ctx=64)


def test_converter_must_be_a_llama_cpp_tree(tmp_path, monkeypatch):
    monkeypatch.delenv(LLAMA_CPP_DIR_ENV, raising=False)
    with pytest.raises(ExportError, match=LLAMA_CPP_DIR_ENV):
        find_converter()
    with pytest.raises(ExportError, match="convert_hf_to_gguf.py"):
        find_converter(tmp_path)


# ---------------------------------------------------------------------------------------------------- merged model


@pytest.mark.slow
def test_merged_model_loads_with_from_pretrained_alone_and_equals_the_adapters_merged_in_memory(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = trained["merged"]
    model = AutoModelForCausalLM.from_pretrained(str(merged)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    assert type(model).__name__ == "Ministral3ForCausalLM"
    assert all(len(tokenizer.encode(t, add_special_tokens=False)) == 1 for t in ("[THINK]", "[/THINK]", "[INST]"))
    reference = merge_stages(trained["model"], trained["dapt"], trained["sft"])
    ids = torch.tensor([tokenizer.apply_chat_template(SAMPLE, tokenize=True, return_dict=True)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits)
        base = load_base_model(trained["model"])  # unmerged base: the adapters did change it
        assert not torch.allclose(base(ids).logits, reference(ids).logits)
    training_tokenizer = load_tokenizer(trained["model"])
    assert tokenizer.apply_chat_template(SAMPLE, tokenize=False) == training_tokenizer.apply_chat_template(
        SAMPLE, tokenize=False)
    assert (merged / SYSTEM_PROMPT_FILE).read_text(encoding="utf-8").strip() == compose_system_prompt(trained["model"])
    generation = json.loads((merged / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tokenizer.eos_token_id and generation["do_sample"] is False
    manifest = json.loads((merged / "export_manifest.json").read_text())
    assert set(manifest["adapter_sha256"]) == {"dapt", "sft"} and manifest["weight_files"] == ["model.safetensors"]
    assert not list(merged.parent.glob(".merged.*"))  # no staging folder left behind


# ---------------------------------------------------------------------------------------------------- GGUF


@pytest.fixture(scope="module")
def converter():
    tree = os.environ.get(LLAMA_CPP_DIR_ENV)
    if not tree or not Path(tree).is_dir():
        pytest.skip(f"{LLAMA_CPP_DIR_ENV} does not point at a llama.cpp tree (make llama-cpp extracts it)")
    return find_converter(Path(tree))


@pytest.mark.slow
def test_demo_tokenizer_is_refused_by_llama_cpp_with_the_reason(trained, converter, tmp_path):
    """The demo's byte-level BPE vocabulary is trained for it, so llama.cpp's pre-tokenizer hash cannot know it."""
    with pytest.raises(GGUFConversionError, match="BPE pre-tokenizer was not recognized") as caught:
        convert_to_gguf(trained["merged"], tmp_path, "demo", outtypes=("f16",), converter=converter)
    assert "get_vocab_base_pre" in caught.value.reason
    assert not list(tmp_path.iterdir())  # nothing half-written
