"""Where things live. Every path can be moved with an environment variable (see the README)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DEMO_MODEL_NAME = "c64-tiny-ministral3"
REAL_MODEL_NAME = "Ministral-3-8B-Thinking"


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Paths:
    manuals_dir: Path
    curated_sft_dir: Path
    eval_dir: Path  # the user's exam: question/answer pairs in *.jsonl, asked of every stage by the evaluation
    processed_dir: Path
    models_dir: Path
    docs_dir: Path
    dagster_home: Path
    model_mode: str  # "demo" (tiny model built locally) or "real" (models/Ministral-3-8B-Thinking)
    base_model_dir: Path

    @property
    def storage_dir(self) -> Path:
        """Where Dagster's IO manager keeps the in-between asset values."""
        return self.processed_dir.parent / "interim"


def paths_from_env() -> Paths:
    data_dir = _path("C64_DATA_DIR", PROJECT_ROOT / "data")
    models_dir = _path("C64_MODELS_DIR", PROJECT_ROOT / "models")
    mode = os.environ.get("C64_MODEL_MODE", "demo").strip().lower()
    if mode not in ("demo", "real"):
        raise ValueError(f"C64_MODEL_MODE must be 'demo' or 'real', not {mode!r}")
    default_model = models_dir / (DEMO_MODEL_NAME if mode == "demo" else REAL_MODEL_NAME)
    return Paths(
        manuals_dir=_path("C64_MANUALS_DIR", data_dir / "raw" / "manuals"),
        curated_sft_dir=_path("C64_CURATED_SFT_DIR", data_dir / "raw" / "sft"),
        eval_dir=_path("C64_EVAL_DIR", data_dir / "raw" / "eval"),
        processed_dir=_path("C64_PROCESSED_DIR", data_dir / "processed"),
        models_dir=models_dir,
        docs_dir=_path("C64_DOCS_DIR", PROJECT_ROOT / "docs"),
        dagster_home=_path("DAGSTER_HOME", PROJECT_ROOT / ".dagster_home"),
        model_mode=mode,
        base_model_dir=_path("C64_BASE_MODEL_DIR", default_model),
    )
