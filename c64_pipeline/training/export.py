"""A model people can run: base + DAPT + SFT merged into plain safetensors, converted to GGUF with llama.cpp's own
converter, an Ollama Modelfile beside it, and a check that llama.cpp runs the GGUF and keeps the reasoning format.

Nothing here downloads anything: the converter is the `convert_hf_to_gguf.py` script and the `gguf-py` package of a
llama.cpp source tree already on disk (the llama-cpp-python sdist vendors one; see `find_converter`), run in a
subprocess with this Python; the check loads the GGUF with llama-cpp-python (`llama_cpp.Llama`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from c64_pipeline.atomic import write_json, write_text
from c64_pipeline.base_model import SYSTEM_PROMPT_FILE, chat_template, compose_system_prompt
from c64_pipeline.settings import LLAMA_CPP_DIR_ENV, PROJECT_ROOT
from c64_pipeline.settings import llama_cpp_dir as settings_llama_cpp_dir
from c64_pipeline.training.artifacts import ADAPTER_WEIGHTS, EXPORT_MANIFEST, GGUF_CHECK_FILE, MODELFILE

# Where a llama.cpp source tree (convert_hf_to_gguf.py + gguf-py/) is found when none is passed explicitly.
DEFAULT_LLAMA_CPP_DIR = PROJECT_ROOT / ".llama.cpp"  # where `make setup` unpacks it
GGUF_OUTTYPES = ("f16", "q8_0")  # llama.cpp's converter writes these itself; Q4_K_M needs llama-quantize (C++)
STOP_TOKENS = ("</s>", "[INST]")  # the end of the assistant turn; a new user turn must never be generated

_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


class ExportError(RuntimeError):
    """The trained model could not be exported; the message names the input and what to do."""


def inference_chat_template() -> str:
    """The project's chat template without its `{% generation %}` markers: they only tell TRL which tokens to train
    on, and they are a transformers extension other engines (llama.cpp's Jinja, Ollama) do not parse."""
    return _GENERATION_TAG.sub("", chat_template())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _replace_dir(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


def _staging_dir(out_dir: Path) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


# ---------------------------------------------------------------------------------------------------- merged model


@dataclass(frozen=True)
class MergedModel:
    out_dir: str
    architecture: str
    dtype: str
    weight_files: list[str]
    parameters: int
    system_prompt_sha256: str
    adapters: dict[str, str]
    runtime_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def _checkpoint_dtype(model_dir: Path):
    """The dtype the base checkpoint is stored in (bf16 for the real model, fp32 for the demo model)."""
    import torch

    config = json.loads((Path(model_dir) / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
    return getattr(torch, str(name), torch.float32) if name else torch.float32


def merge_stages(model_dir: Path, dapt_adapter_dir: Path, sft_adapter_dir: Path, dtype=None):
    """Base model with the DAPT adapter merged, then the SFT adapter merged on top (the order they were trained in)."""
    from c64_pipeline.training.model_loading import load_base_model, merge_adapter

    model = load_base_model(model_dir, dtype or _checkpoint_dtype(model_dir))
    model = merge_adapter(model, dapt_adapter_dir)
    return merge_adapter(model, sft_adapter_dir).eval()


def export_merged_model(model_dir: Path, dapt_adapter_dir: Path, sft_adapter_dir: Path, out_dir: Path,
                        max_new_tokens: int = 1024) -> MergedModel:
    """Write base + DAPT + SFT merged into `out_dir` (replaced whole): safetensors weights, config, tokenizer with the
    inference chat template, SYSTEM_PROMPT.txt (the base prompt with the C64 specialization), a greedy generation
    config and export_manifest.json. `from_pretrained` on `out_dir` alone loads it."""
    from transformers import GenerationConfig

    from c64_pipeline.training.model_loading import load_model_tokenizer, model_architecture

    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    architecture = model_architecture(model_dir)
    tokenizer = load_model_tokenizer(model_dir)
    system_prompt = compose_system_prompt(model_dir)
    dtype = _checkpoint_dtype(model_dir)
    model = merge_stages(model_dir, dapt_adapter_dir, sft_adapter_dir, dtype)
    staging = _staging_dir(out_dir)
    try:
        model.save_pretrained(staging)  # safetensors (transformers 5 writes nothing else)
        tokenizer.chat_template = inference_chat_template()
        tokenizer.save_pretrained(staging)
        GenerationConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=max_new_tokens,
        ).save_pretrained(staging)
        write_text(staging / SYSTEM_PROMPT_FILE, system_prompt + "\n")
        weights = sorted(p.name for p in staging.glob("*.safetensors"))
        if not weights:
            raise ExportError(f"saving the merged model of {model_dir} wrote no safetensors files into {staging}")
        record = MergedModel(
            out_dir=str(out_dir), architecture=architecture, dtype=str(dtype).replace("torch.", ""),
            weight_files=weights, parameters=sum(p.numel() for p in model.parameters()),
            system_prompt_sha256=hashlib.sha256(system_prompt.encode()).hexdigest(),
            adapters={"dapt": str(dapt_adapter_dir), "sft": str(sft_adapter_dir)},
            runtime_s=time.perf_counter() - started,
        )
        write_json(staging / EXPORT_MANIFEST, {
            **record.as_dict(), "base_model_dir": str(model_dir),
            "adapter_sha256": {stage: _sha256(Path(d) / ADAPTER_WEIGHTS)
                               for stage, d in record.adapters.items()},
        })
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record


# ---------------------------------------------------------------------------------------------------- GGUF


@dataclass(frozen=True)
class Converter:
    """llama.cpp's converter: the script and the gguf-py package it imports (same llama.cpp tree)."""

    script: Path
    gguf_py: Path

    @classmethod
    def in_tree(cls, llama_cpp_dir: Path) -> Converter:
        root = Path(llama_cpp_dir)
        script, gguf_py = root / "convert_hf_to_gguf.py", root / "gguf-py"
        missing = [str(p) for p in (script, gguf_py / "gguf") if not p.exists()]
        if missing:
            raise ExportError(
                f"{root} is not a llama.cpp source tree: {', '.join(missing)} missing. Point {LLAMA_CPP_DIR_ENV} at "
                "the vendor/llama.cpp folder of the llama-cpp-python sdist (see README, 'A model people can run')"
            )
        return cls(script, gguf_py)


CONVERTER_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def extract_converter(sdist: Path, dest: Path) -> Converter:
    """Unpack llama.cpp's converter (convert_hf_to_gguf.py, conversion/, gguf-py/) from the llama-cpp-python sdist
    (`pip download --no-deps --no-binary :all: llama-cpp-python==<pinned>`) into `dest`; nothing is downloaded."""
    import tarfile

    dest = Path(dest)
    with tarfile.open(sdist) as tar:
        chosen = []
        for member in tar.getmembers():
            parts = member.name.split("/vendor/llama.cpp/", 1)
            if len(parts) == 2 and parts[1].startswith(CONVERTER_MEMBERS) and (member.isfile() or member.isdir()):
                member.name = parts[1]
                chosen.append(member)
        if not any(m.name == "convert_hf_to_gguf.py" for m in chosen):
            raise ExportError(f"{sdist} holds no vendor/llama.cpp/convert_hf_to_gguf.py: not a llama-cpp-python sdist")
        dest.mkdir(parents=True, exist_ok=True)
        tar.extractall(dest, members=chosen, filter="data")
    return Converter.in_tree(dest)


def find_converter(llama_cpp_dir: Path | None = None) -> Converter:
    """The converter in `llama_cpp_dir`, else in $C64_LLAMA_CPP_DIR, else in .llama.cpp/ of the project (where
    `make setup` unpacks it); an ExportError says how to get it if there is none."""
    chosen = llama_cpp_dir or settings_llama_cpp_dir()
    if not chosen and (DEFAULT_LLAMA_CPP_DIR / "convert_hf_to_gguf.py").is_file():
        chosen = DEFAULT_LLAMA_CPP_DIR
    if not chosen:
        raise ExportError(
            f"no llama.cpp converter: run `make setup` (it unpacks one into {DEFAULT_LLAMA_CPP_DIR}) or set "
            f"{LLAMA_CPP_DIR_ENV} to a llama.cpp source tree (the vendor/llama.cpp folder of the pinned "
            "llama-cpp-python sdist holds convert_hf_to_gguf.py and gguf-py)"
        )
    return Converter.in_tree(Path(chosen))


# Known converter failures, explained: (text in the converter's output, what it means for this pipeline).
KNOWN_CONVERTER_FAILURES = (
    ("BPE pre-tokenizer was not recognized",
     "llama.cpp identifies a byte-level BPE tokenizer's pre-tokenizer by the sha256 of the token ids it gives for a "
     "fixed text (get_vocab_base_pre in conversion/base.py) and refuses any vocabulary it has no hash for. A "
     "vocabulary trained for this model (the demo tokenizer) can never match a published model's hash; the real "
     "Ministral 3 tokenizer (Tekken) is known to it"),
    ("No module named 'sentencepiece'",
     "the converter imports sentencepiece before it looks for a tokenizer.model (conversion/base.py "
     "_create_vocab_sentencepiece); install the pinned sentencepiece package"),
    ("Mistral format requires `mistral-common`",
     "converting a tekken.json tokenizer needs the pinned mistral-common package"),
)


class GGUFConversionError(ExportError):
    def __init__(self, message: str, reason: str | None):
        super().__init__(message)
        self.reason = reason


def diagnose(output: str) -> str | None:
    return next((why for marker, why in KNOWN_CONVERTER_FAILURES if marker in output), None)


def tekken_json(tokenizer_json: dict) -> dict | None:
    """The tokenizer as Mistral's tekken.json, when it is in the Tekken layout (Tekken's split regex then byte-level
    BPE; special tokens at ids 0..n-1, the 256 bytes next in byte order, merged tokens after: token id = n + rank);
    None for any other tokenizer. The ids do not move, so the GGUF's rows stay those of the model's embeddings."""
    import base64

    from c64_pipeline.base_model import TEKKEN_PATTERN, byte_level_char

    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2 or steps[0].get("type") != "Split" or steps[1].get("type") != "ByteLevel":
        return None
    if (steps[0].get("pattern") or {}).get("Regex") != TEKKEN_PATTERN or steps[1].get("use_regex", True):
        return None
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE":
        return None
    specials = sorted((a["id"], a["content"]) for a in tokenizer_json.get("added_tokens", []) if a.get("special"))
    count = len(specials)
    by_id = {i: token for token, i in model["vocab"].items()}
    if [i for i, _ in specials] != list(range(count)) or sorted(by_id) != list(range(len(by_id))):
        return None
    if any(by_id.get(count + b) != byte_level_char(b) for b in range(256)):
        return None
    to_byte = {byte_level_char(b): b for b in range(256)}
    try:
        ranks = [{"rank": i - count, "token_bytes": base64.b64encode(bytes(to_byte[c] for c in by_id[i])).decode(),
                  "token_str": None} for i in range(count, len(by_id))]
    except KeyError:  # a character that is not a byte-level byte
        return None
    return {
        "config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": len(ranks), "default_vocab_size": len(by_id),
                   "default_num_special_tokens": count, "version": "v7"},
        "vocab": ranks,
        "special_tokens": [{"rank": i, "token_str": token, "is_control": True} for i, token in specials],
    }


@dataclass(frozen=True)
class GGUFConversion:
    files: list[Path]
    vocabulary: str  # "tokenizer.json" (recognised by llama.cpp's hash) or "tekken.json" (its Mistral path)


def _tekken_input(merged_dir: Path, work: Path) -> Path | None:
    """A conversion input beside the merged model that holds tekken.json instead of tokenizer.json, or None."""
    tekken = tekken_json(json.loads((merged_dir / "tokenizer.json").read_text(encoding="utf-8")))
    if tekken is None:
        return None
    work.mkdir(parents=True, exist_ok=True)
    for item in merged_dir.iterdir():
        if item.name not in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            (work / item.name).symlink_to(item.resolve())
    write_json(work / "tekken.json", tekken)
    return work


def _convert_one(converter: Converter, source: Path, target: Path, outtype: str, timeout_s: float) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(converter.gguf_py), *filter(None, [os.environ.get("PYTHONPATH")])])}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    command = [sys.executable, str(converter.script), str(source), "--outfile", tmp, "--outtype", outtype]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            reason = diagnose(output)
            tail = " | ".join(line for line in output.strip().splitlines()[-3:])
            raise GGUFConversionError(
                f"llama.cpp's converter ({converter.script}) could not convert {source} to {outtype}"
                f"{': ' + reason if reason else ''} (exit {done.returncode}; last lines: {tail})", reason)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def convert_to_gguf(merged_dir: Path, out_dir: Path, name: str, outtypes: tuple[str, ...] = GGUF_OUTTYPES,
                    converter: Converter | None = None, timeout_s: float = 3600) -> GGUFConversion:
    """One GGUF file per outtype, written by llama.cpp's convert_hf_to_gguf.py in a subprocess (offline).

    The vocabulary goes in as tokenizer.json, which llama.cpp accepts when it recognises the tokenizer (the real
    Ministral 3's Tekken). When it refuses it as unknown and the tokenizer is in the Tekken layout (the demo model's
    "tekken" tokenizer), the same tokenizer goes in as Mistral's own tekken.json, which llama.cpp reads with
    mistral-common and the Tekken pre-tokenizer, without a hash; any other refusal is raised with its reason."""
    converter = converter or find_converter()
    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source, vocabulary = merged_dir, "tokenizer.json"
    work = Path(tempfile.mkdtemp(prefix=".tekken-input.", dir=out_dir))
    written = []
    try:
        for outtype in outtypes:
            target = out_dir / f"{name}-{outtype.upper()}.gguf"
            try:
                _convert_one(converter, source, target, outtype, timeout_s)
            except GGUFConversionError as exc:
                if source != merged_dir or "pre-tokenizer" not in (exc.reason or ""):
                    raise
                tekken_input = _tekken_input(merged_dir, work / "model")
                if tekken_input is None:
                    raise
                source, vocabulary = tekken_input, "tekken.json"
                _convert_one(converter, source, target, outtype, timeout_s)
            written.append(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return GGUFConversion(written, vocabulary)


# ---------------------------------------------------------------------------------------------------- Ollama


def _ollama_block(text: str, what: str) -> str:
    if '"""' in text:
        raise ExportError(f'the {what} contains """, which ends a Modelfile block early; remove it')
    return f'"""{text}"""'


# Go template rendering the same text as the inference chat template (Ollama adds <s> itself: add_bos_token).
OLLAMA_TEMPLATE = (
    '{{- range .Messages }}'
    '{{- if eq .Role "system" }}[SYSTEM_PROMPT]{{ .Content }}[/SYSTEM_PROMPT]'
    '{{- else if eq .Role "user" }}[INST]{{ .Content }}[/INST]'
    '{{- else if eq .Role "assistant" }}{{ .Content }}</s>'
    '{{- end }}'
    '{{- end }}'
)


def modelfile_text(gguf_file: str, system_prompt: str, max_new_tokens: int, num_ctx: int) -> str:
    """An Ollama Modelfile: the GGUF beside it, the chat format, the system prompt, greedy decoding, stop tokens."""
    lines = [
        f"FROM ./{gguf_file}",
        f"TEMPLATE {_ollama_block(OLLAMA_TEMPLATE, 'template')}",
        f"SYSTEM {_ollama_block(system_prompt.strip(), 'system prompt')}",
        *[f'PARAMETER stop "{token}"' for token in STOP_TOKENS],
        "PARAMETER temperature 0",
        f"PARAMETER num_predict {max_new_tokens}",
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"


def write_modelfile(out_dir: Path, gguf_file: Path, merged_dir: Path, num_ctx: int) -> Path:
    merged_dir = Path(merged_dir)
    generation = json.loads((merged_dir / "generation_config.json").read_text())
    system_prompt = (merged_dir / SYSTEM_PROMPT_FILE).read_text(encoding="utf-8")
    target = Path(out_dir) / MODELFILE
    write_text(target, modelfile_text(Path(gguf_file).name, system_prompt, generation["max_new_tokens"], num_ctx))
    return target


# ---------------------------------------------------------------------------------------------------- GGUF check


@dataclass
class GGUFCheck:
    gguf_file: str
    prompts: int = 0
    format_ok: int = 0
    prompt_tokens_identical: int = 0  # prompts llama.cpp tokenized to the very ids transformers gives
    contract_problems: dict[str, int] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)
    runtime_s: float = 0.0

    @property
    def format_rate(self) -> float | None:
        return self.format_ok / self.prompts if self.prompts else None

    def as_dict(self) -> dict:
        return {**asdict(self), "format_rate": self.format_rate}


def check_gguf(gguf_file: Path, merged_dir: Path, conversations: list[list[dict]], max_new_tokens: int,
               n_ctx: int = 2048, threads: int = 2) -> GGUFCheck:
    """Load the GGUF with llama.cpp (llama-cpp-python), generate greedily for each conversation's prompt (its turns
    before the first assistant turn) and check the continuation's token ids against the reasoning contract of
    model_evaluation. The prompt is the merged model's chat template rendered as text and tokenized by llama.cpp
    itself (special tokens parsed), so a GGUF whose vocabulary drifted from the model's shows up here."""
    from llama_cpp import Llama

    from c64_pipeline.training.evaluation import ReasoningContract
    from c64_pipeline.training.model_loading import load_model_tokenizer

    started = time.perf_counter()
    tokenizer = load_model_tokenizer(merged_dir)
    contract = ReasoningContract.from_tokenizer(tokenizer)
    llm = Llama(model_path=str(gguf_file), n_ctx=n_ctx, n_threads=threads, n_batch=256, seed=0, verbose=False)
    if llm.token_eos() != tokenizer.eos_token_id:
        raise ExportError(f"{gguf_file} has end-of-sequence id {llm.token_eos()}, the model {tokenizer.eos_token_id}")
    try:
        check = _run_check(llm, tokenizer, contract, gguf_file, conversations, max_new_tokens)
    finally:
        llm.close()  # free llama.cpp's model now, not in a finalizer at interpreter exit
    check.runtime_s = time.perf_counter() - started
    return check


def _run_check(llm, tokenizer, contract, gguf_file: Path, conversations: list[list[dict]],
               max_new_tokens: int) -> GGUFCheck:
    from c64_pipeline.training.evaluation import prompt_messages

    check = GGUFCheck(gguf_file=str(gguf_file))
    problems: dict[str, int] = {}
    for conversation in conversations:
        messages = prompt_messages(conversation)
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        hf_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        prompt = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        check.prompt_tokens_identical += list(prompt) == list(hf_ids)
        ids: list[int] = []
        llm.reset()
        for token in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            ids.append(int(token))
            if token == contract.eos_id or len(ids) >= max_new_tokens:
                break
        result = contract.check(ids)
        problems[result.problem or "ok"] = problems.get(result.problem or "ok", 0) + 1
        check.prompts += 1
        check.format_ok += result.ok
        if len(check.samples) < 3:
            check.samples.append({"prompt": messages[-1]["content"], "contract_ok": result.ok,
                                  "problem": result.problem,
                                  "generation": tokenizer.decode(ids, skip_special_tokens=False)})
    check.contract_problems = problems
    return check


# ---------------------------------------------------------------------------------------------------- stages


def export_gguf(merged_dir: Path, out_dir: Path, sft_test: Path, max_prompts: int, max_new_tokens: int,
                max_length: int, name: str = "c64-ministral3", llama_cpp_dir: Path | None = None) -> dict:
    """Convert the merged model to GGUF (F16 and Q8_0), write the Ollama Modelfile for the Q8_0 file, and run the
    llama.cpp check on held-out prompts of the SFT test split; returns (and writes to gguf_check.json) the summary."""
    from c64_pipeline.training.data import read_conversations
    from c64_pipeline.training.generation import spread

    merged_dir, out_dir = Path(merged_dir), Path(out_dir)
    conversion = convert_to_gguf(merged_dir, out_dir, name, converter=find_converter(llama_cpp_dir))
    files = conversion.files
    chosen = next(f for f in files if f.name.endswith("-Q8_0.gguf")) if any(
        f.name.endswith("-Q8_0.gguf") for f in files) else files[0]
    n_ctx = max_length + max_new_tokens
    modelfile = write_modelfile(out_dir, chosen, merged_dir, n_ctx)
    prompts = spread(read_conversations(Path(sft_test)), max_prompts)
    check = check_gguf(chosen, merged_dir, prompts, max_new_tokens, n_ctx=n_ctx)
    summary = {
        "files": {f.name: {"bytes": f.stat().st_size} for f in files}, "vocabulary": conversion.vocabulary,
        "modelfile": str(modelfile), "checked_file": chosen.name, "check": check.as_dict(),
    }
    write_json(out_dir / GGUF_CHECK_FILE, summary)
    return summary


if __name__ == "__main__":  # python -m c64_pipeline.training.export extract-converter SDIST DEST
    if len(sys.argv) != 4 or sys.argv[1] != "extract-converter":
        sys.exit("usage: python -m c64_pipeline.training.export extract-converter LLAMA_CPP_PYTHON_SDIST DEST")
    print(extract_converter(Path(sys.argv[2]), Path(sys.argv[3])).script)
