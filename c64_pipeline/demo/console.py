"""What a person sees while headless runs go: one line per step with its time and figures, the gate results, a
heartbeat with the training step and loss; the full event log goes to a file (and stays in Dagster's storage)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult

from c64_pipeline.training.artifacts import ModelsLayout

# Dagster's console logger at this level prints nothing but errors; the events are kept in storage all the same.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}

# Figures worth a glance, per asset (from each materialization's metadata).
FIGURES = {
    "raw_pdfs": ("documents", "rejected", "pages"),
    "page_text": ("pages", "pages_ocr", "pages_without_text", "coverage"),
    "token_chunks": ("chunks", "tokens"),
    "document_splits": ("train_documents", "validation_documents", "test_documents"),
    "dapt_dataset": ("train_rows", "validation_rows", "test_rows"),
    "sft_dataset": ("train_conversations", "validation_conversations", "test_conversations"),
    "validation_report": ("coverage_ratio", "think_coverage", "top_skeleton_share"),
    "dapt_adapter": ("global_step", "base_eval_loss", "final_eval_loss"),
    "sft_adapter": ("global_step", "final_eval_loss"),
    "gguf_model": ("prompts", "format_rate", "prompt_tokens_identical"),
}


def _figure(value) -> str | None:
    raw = getattr(value, "value", value)
    if isinstance(raw, float):
        return f"{raw:.4g}"
    if isinstance(raw, (int, str)) and len(str(raw)) <= 24:
        return str(raw)
    return None


def step_lines(instance: DagsterInstance, result: ExecuteInProcessResult) -> list[str]:
    """One line per step of a finished run: status, seconds, and the figures its materializations carry."""
    started: dict[str, float] = {}
    lines = []
    figures: dict[str, list[str]] = {}
    check_steps = {f"{e.asset_key.to_python_identifier()}_{e.check_name}" for e in result.get_asset_check_evaluations()}
    for record in instance.all_logs(result.run_id):
        event, step = record.dagster_event, record.step_key
        if event is None or step in check_steps:  # checks get their own lines, with their verdicts
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[step] = record.timestamp
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            name = materialization.asset_key.to_user_string()
            shown = [
                f"{key} {text}" for key in FIGURES.get(name, ())
                if key in materialization.metadata and (text := _figure(materialization.metadata[key])) is not None
            ]
            if shown and not figures.get(step):
                figures[step] = shown
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            seconds = record.timestamp - started.get(step, record.timestamp)
            status = "ok" if event.event_type == DagsterEventType.STEP_SUCCESS else "FAILED"
            detail = ", ".join(figures.get(step, []))
            if status == "FAILED" and event.event_specific_data is not None:
                message = str(getattr(event.event_specific_data.error, "message", "")).strip()
                detail = (message.splitlines() or [""])[0][:200]
            lines.append(f"  {step:<18} {status:<6} {seconds:6.1f} s  {detail}".rstrip())
    return lines


def check_lines(result: ExecuteInProcessResult) -> list[str]:
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        verdict = "passed" if evaluation.passed else ("FAILED" if evaluation.blocking else "failed (non-blocking)")
        lines.append(f"  {evaluation.asset_key.to_user_string()} {evaluation.check_name}: {verdict} - "
                     f"{evaluation.description or ''}".rstrip(" -"))
    return lines


def write_event_log(instance: DagsterInstance, result: ExecuteInProcessResult, log: TextIO) -> None:
    """Every event of the run, one line each, as the UI's run page lists them."""
    for record in instance.all_logs(result.run_id):
        when = datetime.fromtimestamp(record.timestamp, timezone.utc).strftime("%H:%M:%S")
        kind = record.dagster_event.event_type_value if record.dagster_event else record.level
        log.write(f"{when} {result.run_id[:8]} {record.step_key or '-':<20} {kind:<28} {record.user_message}\n")
    log.flush()


class TrainingHeartbeat:
    """While a training run goes, print the newest checkpoint's step and loss (Trainer's trainer_state.json) every
    `every` seconds when it changed, so a person sees the run advance."""

    def __init__(self, models_dir: Path, every: float = 20.0, out=print):
        self.models_dir, self.every, self.out = Path(models_dir), every, out
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.time()
        self.last: tuple | None = None

    def __enter__(self) -> TrainingHeartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _latest(self) -> tuple | None:
        states = [(stage, p) for stage, run in ModelsLayout(self.models_dir).runs().items()
                  for p in run.checkpoint_states() if p.stat().st_mtime >= self.started]
        if not states:
            return None
        stage, newest = max(states, key=lambda item: item[1].stat().st_mtime)
        try:
            state = json.loads(newest.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        losses = [e for e in state.get("log_history", []) if "loss" in e]
        evals = [e for e in state.get("log_history", []) if "eval_loss" in e]
        return (stage, state.get("global_step"), state.get("max_steps"),
                losses[-1]["loss"] if losses else None, evals[-1]["eval_loss"] if evals else None)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            latest = self._latest()
            if latest and latest != self.last:
                self.last = latest
                stage, step, total, loss, eval_loss = latest
                parts = [f"{stage}: step {step}/{total}"]
                if loss is not None:
                    parts.append(f"loss {loss:.3f}")
                if eval_loss is not None:
                    parts.append(f"eval loss {eval_loss:.3f}")
                self.out(f"  ... {time.time() - self.started:5.0f} s  " + ", ".join(parts))
