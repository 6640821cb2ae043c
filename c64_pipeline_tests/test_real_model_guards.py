"""The real model's path refuses what would silently waste a GPU day: the wrong tokenizer backend, a CPU, a
checkpoint transformers cannot load as it is (no shard index, Mistral's consolidated file, FP8 weights)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import torch

from c64_pipeline.base_model import (
    CONTROL_TOKENS,
    ModelDirError,
    SHARD_INDEX,
    load_tokenizer,
    validate_model_dir,
)
from c64_pipeline.training.model_loading import StrictLoadingError, check_loading_info
from c64_pipeline.training.recipe import HardwareError, TrainingRecipe, demo_profile, resolved_precision


def write_tekken(path: Path) -> None:
    """A small but valid `tekken.json` (byte vocabulary, every control token mistral-common knows), the file that
    makes transformers pick the mistral-common backend for a Mistral checkpoint."""
    from mistral_common.tokens.tokenizers.base import SpecialTokens

    names = [token.value for token in SpecialTokens]
    specials = [{"rank": i, "token_str": name, "is_control": True} for i, name in enumerate(names)]
    vocab = [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None} for i in range(256)]
    config = {
        "pattern": r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        "num_vocab_tokens": 256,
        "default_vocab_size": 256 + len(names),
        "default_num_special_tokens": len(names),
        "version": "v13",
    }
    path.write_text(json.dumps({"config": config, "vocab": vocab, "special_tokens": specials}))


@pytest.fixture
def checkpoint_with_tekken(tiny_model_dir, tmp_path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    write_tekken(out / "tekken.json")
    return out


def test_tokenizer_comes_from_tokenizer_json_even_with_mistral_common_installed(checkpoint_with_tekken):
    from transformers import AutoTokenizer

    # the hazard is real in this environment: AutoTokenizer hands back mistral-common's backend, which spells
    # [THINK] out as ordinary text tokens
    auto = AutoTokenizer.from_pretrained(str(checkpoint_with_tekken))
    assert type(auto).__name__ == "MistralCommonBackend"
    assert len(auto.encode("[THINK]", add_special_tokens=False)) > 1

    tokenizer = load_tokenizer(checkpoint_with_tekken)
    assert type(tokenizer).__name__ == "TokenizersBackend"
    special = set(tokenizer.all_special_ids)
    for token in CONTROL_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and ids[0] in special, token


def test_tokenizer_whose_think_marker_is_plain_text_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    # a tokenizer that knows [THINK] only as a vocabulary entry, not as a special token
    data = json.loads((out / "tokenizer.json").read_text())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != "[THINK]"]
    (out / "tokenizer.json").write_text(json.dumps(data))
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["extra_special_tokens"] = [t for t in config["extra_special_tokens"] if t != "[THINK]"]
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match=r"\[THINK\]"):
        load_tokenizer(out)


def test_founding_recipe_refuses_a_machine_without_a_bf16_gpu():
    with pytest.raises(HardwareError, match="CUDA GPU with bf16"):
        resolved_precision(TrainingRecipe(), has_bf16=False)
    assert resolved_precision(TrainingRecipe(), has_bf16=True) == "bf16"
    assert resolved_precision(TrainingRecipe(allow_cpu=True), has_bf16=False) == "fp32"
    assert resolved_precision(demo_profile(), has_bf16=False) == "fp32"  # the tiny model asks for fp32 itself
    with pytest.raises(HardwareError):
        resolved_precision(TrainingRecipe(precision="bf16"), has_bf16=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_dapt_with_the_founding_recipe_refuses_to_start_on_this_cpu(tiny_model_dir, tmp_path):
    from c64_pipeline.training.dapt import train_dapt

    # no dataset is needed: the refusal comes before the model or any data is read
    with pytest.raises(HardwareError, match="allow_cpu"):
        train_dapt(tiny_model_dir, tmp_path / "dapt", tmp_path / "out", recipe=TrainingRecipe())
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def _real_layout(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model's files laid out as a sharded Hugging Face checkpoint (two shards plus the index)."""
    from safetensors.torch import load_file, save_file

    out = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, out)
    tensors = load_file(str(out / "model.safetensors"))
    (out / "model.safetensors").unlink()
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    weight_map = {}
    for shard, keys in halves.items():
        save_file({k: tensors[k] for k in keys}, str(out / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in keys})
    (out / SHARD_INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


def test_sharded_checkpoint_with_its_index_is_accepted_and_loads(tiny_model_dir, tmp_path):
    from c64_pipeline.training.model_loading import load_base_model

    ckpt = _real_layout(tiny_model_dir, tmp_path)
    identity = validate_model_dir(ckpt)
    assert identity["weight_files"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    load_base_model(ckpt)  # strict: every weight found in the two shards


def test_sharded_checkpoint_without_its_index_is_refused(tiny_model_dir, tmp_path):
    ckpt = _real_layout(tiny_model_dir, tmp_path)
    (ckpt / SHARD_INDEX).unlink()
    with pytest.raises(ModelDirError, match="no model.safetensors.index.json"):
        validate_model_dir(ckpt)


def test_index_naming_a_missing_shard_is_refused(tiny_model_dir, tmp_path):
    ckpt = _real_layout(tiny_model_dir, tmp_path)
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelDirError, match="model-00002-of-00002"):
        validate_model_dir(ckpt)


def test_folder_with_only_mistral_consolidated_weights_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, out)
    (out / "model.safetensors").rename(out / "consolidated.safetensors")
    with pytest.raises(ModelDirError, match="only consolidated.safetensors"):
        validate_model_dir(out)


def test_consolidated_file_beside_the_hugging_face_shards_is_ignored(tiny_model_dir, tmp_path):
    ckpt = _real_layout(tiny_model_dir, tmp_path)
    (ckpt / "consolidated.safetensors").write_bytes(b"not read")
    assert "consolidated.safetensors" not in validate_model_dir(ckpt)["weight_files"]


def test_fp8_checkpoint_is_refused_with_what_to_do(tiny_model_dir, tmp_path):
    out = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, out)
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "static"}
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="fp8 quantization_config.*BF16"):
        validate_model_dir(out)


def test_strict_loading_ignores_allow_listed_buffers_but_not_other_extra_weights(tmp_path):
    check_loading_info(tmp_path, {"unexpected_keys": ["model.layers.0.self_attn.rotary_emb.inv_freq"]})
    with pytest.raises(StrictLoadingError, match="unexpected keys: model.layers.0.mlp.extra.weight"):
        check_loading_info(tmp_path, {"unexpected_keys": ["model.layers.0.mlp.extra.weight",
                                                          "model.layers.1.self_attn.rotary_emb.inv_freq"]})
