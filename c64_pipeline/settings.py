"""Every setting that comes from the environment, read here and nowhere else (see the README's table).

`paths_from_env()` gives the folders, `deployment_from_env()` the rest (alerts, schedules, training launcher). Other
modules take these records (or the Dagster resources built from them), never `os.environ`.
"""

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
    data_dir: Path
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
        return self.data_dir / "interim"

    @property
    def alerts_file(self) -> Path:
        return self.data_dir / "alerts" / "alerts.jsonl"

    @property
    def logs_dir(self) -> Path:
        """Log files of headless runs (the demo's full event log)."""
        return self.data_dir / "logs"


def paths_from_env() -> Paths:
    data_dir = _path("C64_DATA_DIR", PROJECT_ROOT / "data")
    models_dir = _path("C64_MODELS_DIR", PROJECT_ROOT / "models")
    mode = os.environ.get("C64_MODEL_MODE", "demo").strip().lower()
    if mode not in ("demo", "real"):
        raise ValueError(f"C64_MODEL_MODE must be 'demo' or 'real', not {mode!r}")
    default_model = models_dir / (DEMO_MODEL_NAME if mode == "demo" else REAL_MODEL_NAME)
    return Paths(
        data_dir=data_dir,
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


LLAMA_CPP_DIR_ENV = "C64_LLAMA_CPP_DIR"


def llama_cpp_dir() -> Path | None:
    """The llama.cpp source tree whose GGUF converter the export runs (`C64_LLAMA_CPP_DIR`), or None when unset (the
    export then looks in `.llama.cpp/`, where `make setup` unpacks it)."""
    value = os.environ.get(LLAMA_CPP_DIR_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


ALERT_WEBHOOK_ENV = "C64_ALERT_WEBHOOK_URL"  # read by Dagster's EnvVar at run time, so the UI never shows the URL


@dataclass(frozen=True)
class Deployment:
    alert_webhook_configured: bool
    ui_base_url: str
    rescan_cron: str
    training_launcher: str
    training_processes: int


def deployment_from_env() -> Deployment:
    processes = os.environ.get("C64_TRAINING_PROCESSES", "1").strip() or "1"
    if not processes.isdigit():
        raise ValueError(f"C64_TRAINING_PROCESSES must be a whole number, not {processes!r}")
    return Deployment(
        alert_webhook_configured=bool(os.environ.get(ALERT_WEBHOOK_ENV, "").strip()),
        ui_base_url=os.environ.get("C64_UI_BASE_URL", "http://127.0.0.1:3000"),
        rescan_cron=os.environ.get("C64_RESCAN_CRON", "0 1 * * *"),
        training_launcher=os.environ.get("C64_TRAINING_LAUNCHER", "python").strip() or "python",
        training_processes=int(processes),
    )


def tessdata_prefix() -> str | None:
    """Where Tesseract's language data is (`TESSDATA_PREFIX`, Tesseract's own variable), or None when unset (the OCR
    engine then looks in Debian's /usr/share/tesseract-ocr)."""
    return os.environ.get("TESSDATA_PREFIX") or None


def user_chose_manuals_dir() -> bool:
    """True when the user pointed the manuals folder somewhere (C64_MANUALS_DIR): the demo never adds files there."""
    return bool(os.environ.get("C64_MANUALS_DIR"))


def shared_corpus_dir() -> Path:
    """The team's shared corpus of real third-party C64 documentation (`C64_SHARED_CORPUS`, by default
    `../shared/corpus` beside the checkout), read by the benchmarks and the integration tests only; they skip
    cleanly without it."""
    return _path("C64_SHARED_CORPUS", PROJECT_ROOT.parent / "shared" / "corpus")
