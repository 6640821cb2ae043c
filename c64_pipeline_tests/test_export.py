"""A model people can run: merged safetensors, GGUF through llama.cpp's converter, Ollama Modelfile, llama.cpp check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from c64_pipeline.base_model import SYSTEM_PROMPT_FILE, compose_system_prompt, load_tokenizer
from c64_pipeline.demo.model import TinyModelSettings, build_demo_model, demo_tokenizer_texts, train_tokenizer
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
from c64_pipeline_tests.conftest import conversation, dapt_texts, quick, write_datasets

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
    texts = demo_tokenizer_texts()
    texts += [json.dumps(conversation(i)) for i in range(60)] + dapt_texts(40)
    model_dir = root / "tiny"
    build_demo_model(model_dir, texts, TinyModelSettings(vocab_size=1024))
    dapt = root / "fine-tuned-dapt"
    train_dapt(model_dir, data / "dapt", dapt, quick())
    sft = root / "fine-tuned-sft"
    train_sft(model_dir, dapt, data / "sft", sft, quick())
    merged = root / "merged"
    export_merged_model(model_dir, dapt, sft, merged, max_new_tokens=64)
    return {"model": model_dir, "dapt": dapt, "sft": sft, "merged": merged, "data": data, "texts": texts}


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
    monkeypatch.setenv(LLAMA_CPP_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(ExportError, match="absent is not a llama.cpp source tree"):
        find_converter()
    with pytest.raises(ExportError, match="convert_hf_to_gguf.py"):
        find_converter(tmp_path)


def test_converter_is_unpacked_from_the_sdist_without_the_rest(tmp_path):
    import io
    import tarfile

    from c64_pipeline.training.export import extract_converter

    sdist = tmp_path / "llama_cpp_python-0.0.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in ("convert_hf_to_gguf.py", "conversion/base.py", "gguf-py/gguf/__init__.py", "src/llama.cpp"):
            data = b"# " + name.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-0.0.0/vendor/llama.cpp/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    converter = extract_converter(sdist, tmp_path / "tree")
    assert converter.script == tmp_path / "tree" / "convert_hf_to_gguf.py" and converter.script.is_file()
    assert (tmp_path / "tree" / "conversion" / "base.py").is_file() and not (tmp_path / "tree" / "src").exists()
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz"):
        pass
    with pytest.raises(ExportError, match="other.tar.gz holds no vendor/llama.cpp/convert_hf_to_gguf.py"):
        extract_converter(tmp_path / "other.tar.gz", tmp_path / "x")


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


@pytest.mark.slow
def test_merge_stage_of_the_pipes_process_reports_the_merged_model(trained, tmp_path):
    from c64_pipeline.training.pipes_child import run_stage
    from c64_pipeline.training.recipe import demo_profile
    from c64_pipeline.training.request import StageRequest

    out = tmp_path / "merged"
    request = StageRequest("merge", demo_profile("sft"), out, model_dir=trained["model"],
                           dapt_adapter_dir=trained["dapt"], sft_adapter_dir=trained["sft"])
    metrics, metadata = run_stage(StageRequest.from_extras(request.to_extras()), progress=None)
    assert metrics["architecture"] == "Ministral3ForCausalLM" and metrics["parameters"] > 0
    assert metadata["weight_files"]["raw_value"] == ["model.safetensors"] and (out / "model.safetensors").is_file()
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == demo_profile("sft").eval_max_new_tokens


def test_export_is_its_own_job_downstream_of_the_sft_adapter():
    from dagster import AssetKey

    from c64_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    export = defs.resolve_job_def("export_model").asset_layer.selected_asset_keys
    training = defs.resolve_job_def("train_and_evaluate").asset_layer.selected_asset_keys
    assert export == {AssetKey("merged_model"), AssetKey("gguf_model")} and not export & training
    assert AssetKey("sft_adapter") in graph.get(AssetKey("merged_model")).parent_keys
    assert AssetKey("merged_model") in graph.get(AssetKey("gguf_model")).parent_keys


# ---------------------------------------------------------------------------------------------------- GGUF


@pytest.fixture(scope="module")
def converter():
    return find_converter()  # `make setup` unpacks it; without it these tests fail with what to do, never skip


@pytest.mark.slow
def test_a_tokenizer_llama_cpp_does_not_know_is_refused_with_the_reason(converter, tmp_path):
    """A byte-level BPE tokenizer with GPT-2 splitting trained here (TinyModelSettings(tokenizer="bytelevel")) is
    unknown to llama.cpp's pre-tokenizer hash and not in the Tekken layout, so there is no honest route: the export
    fails with the reason and leaves nothing behind."""
    model_dir = tmp_path / "bytelevel"
    texts = [json.dumps(conversation(i)) for i in range(20)] + dapt_texts(10)
    build_demo_model(model_dir, texts, TinyModelSettings(vocab_size=512, num_hidden_layers=1, tokenizer="bytelevel"))
    out = tmp_path / "gguf"
    out.mkdir()
    with pytest.raises(GGUFConversionError, match="BPE pre-tokenizer was not recognized") as caught:
        convert_to_gguf(model_dir, out, "demo", outtypes=("f16",), converter=converter)
    assert "get_vocab_base_pre" in caught.value.reason
    assert not list(out.iterdir())  # nothing half-written


# ---------------------------------------------------------------------------------------------------- GGUF, end to end
#
# llama.cpp takes a tokenizer.json byte-level BPE vocabulary only when it knows its pre-tokenizer (a hash of the ids
# it gives for a fixed text). The real model's route (tokenizer.json, recognised) is proven on a tiny Ministral 3 with
# Mistral's real Tekken vocabulary (mistral-common ships it: tekken_240911.json, 131072 ids) laid out as Ministral 3
# lays it out ([THINK] = 34, [/THINK] = 35 in its reserved special slots), and LoRA adapters with random (non-zero)
# weights in place of DAPT and SFT: what is tested is merge -> GGUF -> llama.cpp, not learning. The demo model's
# route (tekken.json) is proven at the end of the file.

TEKKEN_THINK = {"<SPECIAL_34>": "[THINK]", "<SPECIAL_35>": "[/THINK]"}


def tekken_tokenizer():
    from importlib.resources import files

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    converted = convert_tekken_tokenizer(str(files("mistral_common") / "data" / "tekken_240911.json"), chat_template="")
    text = converted.backend_tokenizer.to_str()
    for placeholder, name in TEKKEN_THINK.items():
        text = text.replace(f'"{placeholder}"', json.dumps(name))
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(text), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", additional_special_tokens=["[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                                                      "[THINK]", "[/THINK]"],
    )


def build_tekken_tiny_model(out: Path) -> Path:
    from transformers import Ministral3Config, Ministral3ForCausalLM

    tokenizer = tekken_tokenizer()
    assert tokenizer.convert_tokens_to_ids(["[THINK]", "[/THINK]"]) == [34, 35]
    config = Ministral3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
        rope_parameters={"rope_type": "yarn", "rope_theta": 1_000_000.0, "factor": 1.0,
                         "original_max_position_embeddings": 4096, "beta_fast": 32.0, "beta_slow": 1.0,
                         "mscale": 1.0, "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Ministral3ForCausalLM(config)
    with torch.no_grad():  # logits with a clear spread, so that F16 and Q8_0 rounding is small beside them
        model.lm_head.weight.normal_(0, 0.5)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / SYSTEM_PROMPT_FILE).write_text("Think in [THINK] ... [/THINK], then answer.\n", encoding="utf-8")
    return out


def random_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model

    from c64_pipeline.training.recipe import LORA_TARGETS

    torch.manual_seed(seed)
    peft_model = get_peft_model(load_base_model(model_dir), LoraConfig(r=4, lora_alpha=8, target_modules=list(
        LORA_TARGETS), init_lora_weights=False))
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tekken_export(tmp_path_factory, converter) -> dict:
    from c64_pipeline.training.export import GGUF_CHECK_FILE
    from c64_pipeline.training.pipes_child import run_stage
    from c64_pipeline.training.recipe import demo_profile
    from c64_pipeline.training.request import StageRequest

    root = tmp_path_factory.mktemp("tekken")
    data = write_datasets(root / "data", n_train=2, n_val=1, n_test=3)
    model_dir = build_tekken_tiny_model(root / "tiny")
    dapt, sft = random_adapter(model_dir, root / "dapt", 1), random_adapter(model_dir, root / "sft", 2)
    merged = root / "merged"
    export_merged_model(model_dir, dapt, sft, merged, max_new_tokens=24)
    # the stage the gguf_model asset runs in its Pipes process (the converter from $C64_LLAMA_CPP_DIR)
    recipe = demo_profile("sft").replace(eval_max_prompts=3, eval_max_new_tokens=24, max_length=256)
    request = StageRequest("gguf", recipe, root / "gguf", merged_dir=merged, sft_dir=data / "sft")
    metrics, metadata = run_stage(request, progress=None)
    summary = json.loads((root / "gguf" / GGUF_CHECK_FILE).read_text())
    return {"merged": merged, "gguf": root / "gguf", "summary": summary, "metrics": metrics, "metadata": metadata}


@pytest.mark.slow
def test_gguf_files_are_written_by_llama_cpp_and_llama_cpp_computes_the_merged_models_logits(tekken_export):
    import numpy as np
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tekken_export["gguf"]
    assert sorted(p.name for p in gguf.glob("*.gguf")) == ["c64-ministral3-F16.gguf", "c64-ministral3-Q8_0.gguf"]
    merged = tekken_export["merged"]
    model = AutoModelForCausalLM.from_pretrained(str(merged)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    ids = tokenizer.apply_chat_template(SAMPLE, tokenize=True, return_dict=True)["input_ids"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    for name, floor in (("c64-ministral3-F16.gguf", 0.999), ("c64-ministral3-Q8_0.gguf", 0.99)):
        llm = Llama(model_path=str(gguf / name), n_ctx=256, logits_all=True, verbose=False, n_threads=2)
        assert list(llm.tokenize(tokenizer.apply_chat_template(SAMPLE, tokenize=False).encode(), add_bos=False,
                                 special=True)) == list(ids)
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)])
        correlation = np.corrcoef(got.ravel(), expected.ravel())[0, 1]
        assert correlation > floor, f"{name}: llama.cpp logits correlate {correlation:.4f} with transformers'"
        assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.9


@pytest.mark.slow
def test_llama_cpp_check_runs_held_out_prompts_through_the_reasoning_contract(tekken_export):
    summary = tekken_export["summary"]
    check = summary["check"]
    assert summary["checked_file"] == "c64-ministral3-Q8_0.gguf" and summary["vocabulary"] == "tokenizer.json"
    assert tekken_export["metrics"]["prompts"] == 3 and "FROM ./" in tekken_export["metadata"]["modelfile"]["raw_value"]
    assert check["prompts"] == 3 and check["prompt_tokens_identical"] == 3
    assert sum(check["contract_problems"].values()) == 3
    # random adapters: the format is not expected, the verdicts are; every sample is a real llama.cpp generation
    assert all(s["generation"] for s in check["samples"])
    modelfile = (tekken_export["gguf"] / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./c64-ministral3-Q8_0.gguf\n") and "Think in [THINK]" in modelfile


@pytest.mark.slow
def test_the_real_architecture_merges_and_converts_its_language_model(converter, tmp_path):
    """Mistral3ForConditionalGeneration (what the real checkpoint is): merged whole, converted by llama.cpp to its
    mistral3 language model (the vision encoder would be a separate --mmproj file), loadable by llama.cpp."""
    from llama_cpp import Llama
    from transformers import Ministral3Config, Mistral3Config, Mistral3ForConditionalGeneration, PixtralVisionConfig

    tokenizer = tekken_tokenizer()
    tiny = json.loads(json.dumps(Ministral3Config().to_dict()))  # defaults, then shrunk below
    text = Ministral3Config(**{**tiny, "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                               "head_dim": 16, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 11})
    vision = PixtralVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 image_size=32, patch_size=16, head_dim=16)
    model_dir = tmp_path / "mm"
    Mistral3ForConditionalGeneration(Mistral3Config(text_config=text, vision_config=vision)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / SYSTEM_PROMPT_FILE).write_text("Think first.\n", encoding="utf-8")
    dapt, sft = random_adapter(model_dir, tmp_path / "dapt", 1), random_adapter(model_dir, tmp_path / "sft", 2)
    merged = export_merged_model(model_dir, dapt, sft, tmp_path / "merged", max_new_tokens=8)
    assert merged.architecture == "Mistral3ForConditionalGeneration"
    conversion = convert_to_gguf(tmp_path / "merged", tmp_path / "gguf", "mm", outtypes=("f16",), converter=converter)
    [gguf] = conversion.files
    assert conversion.vocabulary == "tokenizer.json"  # llama.cpp recognises Mistral's Tekken by its hash
    llm = Llama(model_path=str(gguf), n_ctx=128, verbose=False)
    try:
        assert llm.metadata["general.architecture"] == "mistral3" and llm.n_vocab() == len(tokenizer)
        assert llm.metadata["tokenizer.ggml.pre"] in ("tekken", "pixtral")
    finally:
        llm.close()


# ---------------------------------------------------------------------------------------------------- the demo model, exported


def test_tekken_layout_tokenizer_is_the_same_tokenizer_as_its_tekken_json(tmp_path):
    """mistral-common's own Tekken implementation, reading the tekken.json written for the demo tokenizer, gives the
    very ids transformers gives (text with no control tokens: mistral-common never parses those from text)."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    from c64_pipeline.base_model import TEKKEN_SPECIAL_TOKENS
    from c64_pipeline.demo.model import train_tekken_tokenizer
    from c64_pipeline.training.export import tekken_json

    texts = demo_tokenizer_texts()
    tokenizer = train_tekken_tokenizer(texts, 1024)
    assert tokenizer.convert_tokens_to_ids(["<pad>", "[SYSTEM_PROMPT]", "[THINK]", "[/THINK]"]) == [11, 17, 34, 35]
    data = tekken_json(json.loads(tokenizer.backend_tokenizer.to_str()))
    assert data["config"]["default_num_special_tokens"] == len(TEKKEN_SPECIAL_TOKENS)
    (tmp_path / "tekken.json").write_text(json.dumps(data))
    tekken = Tekkenizer.from_file(tmp_path / "tekken.json")
    lines = [line for text in texts for line in text.splitlines() if line.strip() and "[" not in line]
    assert len(lines) > 500
    assert [tekken.encode(line, bos=False, eos=False) for line in lines] == [
        tokenizer.encode(line, add_special_tokens=False) for line in lines]
    assert tekken_json(json.loads(train_tokenizer(texts[:3], 300).backend_tokenizer.to_str())) is None


@pytest.fixture(scope="module")
def demo_export(trained, converter) -> dict:
    """The demo model (its tokenizer in the Tekken layout, the default), trained a few steps, merged and exported."""
    from c64_pipeline.training.export import export_gguf

    root = trained["merged"].parent
    summary = export_gguf(trained["merged"], root / "gguf", trained["data"] / "sft" / "test.jsonl", max_prompts=4,
                          max_new_tokens=24, max_length=256, llama_cpp_dir=converter.script.parent)
    return {"root": root, "summary": summary, "texts": trained["texts"]}


@pytest.mark.slow
def test_demo_model_with_the_tekken_layout_converts_and_llama_cpp_tokenizes_as_transformers(demo_export):
    from llama_cpp import Llama

    summary = demo_export["summary"]
    assert summary["vocabulary"] == "tekken.json"  # llama.cpp's hash does not know it; its Mistral path does
    assert set(summary["files"]) == {"c64-ministral3-F16.gguf", "c64-ministral3-Q8_0.gguf"}
    check = summary["check"]
    assert check["prompts"] == 4 and check["prompt_tokens_identical"] == 4
    # each prompt judged once, the well-formed ones under "ok"
    assert sum(check["contract_problems"].values()) == 4
    assert check["contract_problems"].get("ok", 0) == check["format_ok"]
    tokenizer = load_tokenizer(demo_export["root"] / "merged")
    llm = Llama(model_path=str(demo_export["root"] / "gguf" / "c64-ministral3-F16.gguf"), vocab_only=True,
                verbose=False)
    try:
        assert llm.metadata["tokenizer.ggml.pre"] == "tekken"
        texts = demo_export["texts"] + [tokenizer.apply_chat_template(SAMPLE, tokenize=False)]
        differ = [t[:60] for t in texts
                  if list(llm.tokenize(t.encode(), add_bos=False, special=True)) != tokenizer.encode(
                      t, add_special_tokens=False)]
    finally:
        llm.close()
    assert differ == []
