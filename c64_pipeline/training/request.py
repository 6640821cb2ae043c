"""What the training process is asked to do: one typed record per run, sent to it as Dagster Pipes extras (JSON).

The Dagster assets build it with `StageRequest.planned` from the models folder's layout (`artifacts.ModelsLayout`),
so every stage's inputs and output folder are named in one place; the process (`training.pipes_child`) reads it back
with `from_extras`, which refuses a request that lacks what its stage needs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from c64_pipeline.training.artifacts import ModelsLayout
from c64_pipeline.training.recipe import TrainingRecipe

# What each stage reads (besides the recipe); its output folder is `out_dir`.
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "dapt": ("model_dir", "dapt_dir"),
    "sft": ("model_dir", "dapt_adapter_dir", "sft_dir"),
    "evaluation": ("model_dir", "dapt_adapter_dir", "sft_adapter_dir", "dapt_dir", "sft_dir"),
    "merge": ("model_dir", "dapt_adapter_dir", "sft_adapter_dir"),
    "gguf": ("merged_dir", "sft_dir"),
}
OPTIONAL_INPUTS: dict[str, tuple[str, ...]] = {"evaluation": ("exam_dir",)}
STAGES = tuple(STAGE_INPUTS)
PATH_FIELDS = ("out_dir", "model_dir", "dapt_dir", "sft_dir", "dapt_adapter_dir", "sft_adapter_dir", "merged_dir",
               "exam_dir")


@dataclass(frozen=True)
class StageRequest:
    """One run of the training process: the stage, its recipe, its input folders and its output folder."""

    stage: str
    recipe: TrainingRecipe
    out_dir: Path
    model_dir: Path | None = None  # the base model
    dapt_dir: Path | None = None  # the DAPT dataset (parquet splits)
    sft_dir: Path | None = None  # the SFT dataset (jsonl splits)
    dapt_adapter_dir: Path | None = None
    sft_adapter_dir: Path | None = None
    merged_dir: Path | None = None
    exam_dir: Path | None = None  # the user's exam (evaluation only; optional)
    resume: bool = True  # resume from a matching checkpoint (training stages)

    def __post_init__(self) -> None:
        if self.stage not in STAGE_INPUTS:
            raise ValueError(f"unknown training stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        missing = [name for name in STAGE_INPUTS[self.stage] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.stage} request needs {', '.join(missing)}")

    @classmethod
    def planned(cls, stage: str, recipe: TrainingRecipe, models: ModelsLayout, resume: bool = True,
                **available: Any) -> StageRequest:
        """The request for `stage`: its output folder, adapters and merged model from the models folder's layout,
        and from `available` (model_dir, dapt_dir, sft_dir, exam_dir) the inputs this stage reads."""
        if stage not in STAGE_INPUTS:
            raise ValueError(f"unknown training stage {stage!r}: expected one of {', '.join(STAGES)}")
        outputs = {"dapt": models.dapt.path, "sft": models.sft.path, "evaluation": models.evaluation.path,
                   "merge": models.merged, "gguf": models.gguf}
        available = {**available, "dapt_adapter_dir": models.dapt.path, "sft_adapter_dir": models.sft.path,
                     "merged_dir": models.merged}
        reads = STAGE_INPUTS[stage] + OPTIONAL_INPUTS.get(stage, ())
        return cls(stage=stage, recipe=recipe, out_dir=outputs[stage], resume=resume,
                   **{name: available.get(name) for name in reads})

    def to_extras(self) -> dict[str, Any]:
        """JSON-compatible Pipes extras (paths as strings, the recipe as its dict); unset inputs are left out."""
        extras: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            extras[f.name] = value.as_dict() if f.name == "recipe" else str(value) if f.name in PATH_FIELDS else value
        return extras

    @classmethod
    def from_extras(cls, extras: dict[str, Any]) -> StageRequest:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(extras) - known)
        if unknown:
            raise ValueError(f"unknown fields in the stage request: {', '.join(unknown)}")
        missing = [name for name in ("stage", "recipe", "out_dir") if name not in extras]
        if missing:
            raise ValueError(f"the stage request lacks {', '.join(missing)}")
        return cls(**{**extras, "recipe": TrainingRecipe.from_dict(extras["recipe"])})
