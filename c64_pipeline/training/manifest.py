"""The run manifest: a plain JSON record of what a training run was made of and what it measured.

Readable without unpickling anything (the Trainer's own `training_args.bin` is a pickle): every hyperparameter, the
chat template's hash, the datasets' hashes, the base model's identity, seeds, library versions and the figures.
"""

from __future__ import annotations

import hashlib
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from c64_pipeline.atomic import write_json
from c64_pipeline.base_model import validate_model_dir
from c64_pipeline.training.artifacts import MANIFEST_FILE
from c64_pipeline.training.recipe import TrainingRecipe

MANIFEST_VERSION = 1
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dataset_versions(files: list[Path]) -> dict[str, dict]:
    """{file name: {path, sha256, bytes}} for each dataset file a run read."""
    return {
        Path(f).name: {"path": str(f), "sha256": sha256_file(f), "bytes": Path(f).stat().st_size} for f in files
    }


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def base_model_identity(model_dir: Path) -> dict:
    identity = validate_model_dir(model_dir)
    return {k: identity[k] for k in ("model_dir", "architectures", "model_type", "weight_files", "tokenizer_sha256")}


def build_manifest(
    *,
    stage: str,
    recipe: TrainingRecipe,
    training_arguments: dict[str, Any],
    assistant_only_loss: bool,
    chat_template: str | None,
    model_dir: Path,
    dataset_files: list[Path],
    metrics: dict[str, Any],
    adapters_merged_in: list[dict] | None = None,
    lora_target_modules: list[str] | str | None = None,
) -> dict:
    return {
        "manifest_version": MANIFEST_VERSION,
        "stage": stage,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hyperparameters": recipe.as_dict(),
        "training_arguments": training_arguments,
        "lora_target_modules": lora_target_modules,
        "assistant_only_loss": assistant_only_loss,
        "chat_template_sha256": sha256_text(chat_template) if chat_template else None,
        "datasets": dataset_versions(dataset_files),
        "base_model": base_model_identity(model_dir),
        "adapters_merged_in": adapters_merged_in or [],
        "seeds": {"seed": recipe.seed, "data_seed": recipe.seed},
        "libraries": library_versions(),
        "metrics": metrics,
    }


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    """Write `run_manifest.json` atomically (temporary file in the same folder, then os.replace)."""
    target = Path(out_dir) / MANIFEST_FILE
    write_json(target, manifest)
    return target
