"""Where training reads and writes, named once: the dataset split files a stage reads, the files of a training run's
folder, and the layout of the models folder (fine-tuned-dapt/, fine-tuned-sft/, evaluation/, merged/, gguf/).

The training process writes through these names; the Dagster assets and checks, the demo and the console read
through them, so a path is never rebuilt by hand. Plain paths only: nothing here imports torch or Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------------------- datasets

DAPT_SUFFIX, SFT_SUFFIX = ".parquet", ".jsonl"


def dapt_split(dapt_dir: Path, split: str) -> Path:
    """A DAPT split file (`train`, `validation`, `test`) in the DAPT dataset folder."""
    return Path(dapt_dir) / f"{split}{DAPT_SUFFIX}"


def sft_split(sft_dir: Path, split: str) -> Path:
    """An SFT split file (`train`, `validation`, `test`) in the SFT dataset folder."""
    return Path(sft_dir) / f"{split}{SFT_SUFFIX}"


# ---------------------------------------------------------------------------------------------------- a training run

CHECKPOINTS = "checkpoints"
RUN_KEY = "run_key.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "run_manifest.json"
LOG_HISTORY_FILE = "log_history.json"
LOSS_CURVE_FILE = "loss_curve.png"
SAMPLE_GENERATIONS = "sample_generations.jsonl"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")
# What a finished run leaves beside its checkpoints (cleared before a new run, so no stale adapter survives a failure)
FINAL_FILES = (
    *ADAPTER_FILES, METRICS_FILE, MANIFEST_FILE, LOG_HISTORY_FILE, LOSS_CURVE_FILE, "README.md", *TOKENIZER_FILES,
)


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _file(*names: str) -> property:
    """A path below the folder (`self.path`), as a read-only attribute."""
    return property(lambda self: self.path.joinpath(*names), doc=f"{'/'.join(names)} in the folder")


@dataclass(frozen=True)
class _Folder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))


class RunDir(_Folder):
    """The folder of one LoRA training run (DAPT or SFT): adapter, tokenizer, checkpoints and the run's records."""

    checkpoints = _file(CHECKPOINTS)
    run_key = _file(CHECKPOINTS, RUN_KEY)
    metrics = _file(METRICS_FILE)
    manifest = _file(MANIFEST_FILE)
    log_history = _file(LOG_HISTORY_FILE)
    loss_curve = _file(LOSS_CURVE_FILE)
    sample_generations = _file(SAMPLE_GENERATIONS)
    adapter_weights = _file(ADAPTER_WEIGHTS)

    def final_files(self) -> list[Path]:
        return [self.path / name for name in FINAL_FILES]

    def checkpoint_states(self) -> list[Path]:
        """The Trainer's `trainer_state.json` of every checkpoint (step and loss so far)."""
        return sorted(self.checkpoints.glob("checkpoint-*/trainer_state.json"))

    def read_metrics(self) -> dict | None:
        return _read_json(self.metrics)

    def read_manifest(self) -> dict | None:
        return _read_json(self.manifest)

    def read_log_history(self) -> list[dict] | None:
        return _read_json(self.log_history)


# ---------------------------------------------------------------------------------------------------- evaluation

REPORT_JSON, REPORT_MD = "report.json", "report.md"


class EvaluationDir(_Folder):
    """The folder of the three-way evaluation: report.json (figures and samples) and report.md."""

    report = _file(REPORT_JSON)
    report_markdown = _file(REPORT_MD)

    def read_report(self) -> dict | None:
        return _read_json(self.report)


# ---------------------------------------------------------------------------------------------------- export

EXPORT_MANIFEST = "export_manifest.json"
MODELFILE = "Modelfile"
GGUF_CHECK_FILE = "gguf_check.json"


# ---------------------------------------------------------------------------------------------------- models folder

TRAINING_STAGES = ("dapt", "sft")
RUN_FOLDER_PREFIX = "fine-tuned-"


class ModelsLayout(_Folder):
    """The models folder (`C64_MODELS_DIR`): one folder per training stage, the evaluation and the exports."""

    merged = _file("merged")
    gguf = _file("gguf")
    gguf_check = _file("gguf", GGUF_CHECK_FILE)

    def run(self, stage: str) -> RunDir:
        if stage not in TRAINING_STAGES:
            raise ValueError(f"training stage must be one of {', '.join(TRAINING_STAGES)}, not {stage!r}")
        return RunDir(self.path / f"{RUN_FOLDER_PREFIX}{stage}")

    @property
    def dapt(self) -> RunDir:
        return self.run("dapt")

    @property
    def sft(self) -> RunDir:
        return self.run("sft")

    def runs(self) -> dict[str, RunDir]:
        return {stage: self.run(stage) for stage in TRAINING_STAGES}

    @property
    def evaluation(self) -> EvaluationDir:
        return EvaluationDir(self.path / "evaluation")
