"""Training benchmark: the project's DAPT and SFT runs against plain TRL `SFTTrainer` baselines, measured in the same
run on the same demo model, data and settings (the demo profile recipe cut to --steps optimizer steps).

    python -m bench.training [--steps 40] [--repeats 2] [--data-dir DIR --model-dir DIR]

- DAPT: `train_dapt` vs `SFTTrainer` on the same train texts (dataset_text_field="text", truncated to max_length)
- SFT: `train_sft` vs `SFTTrainer` on the same conversations (assistant_only_loss, the project's chat template),
  both on the base model with the same DAPT adapter merged in
- SFT sampling: the plain `SFTTrainer` with the default random sampler vs train_sampling_strategy="group_by_length"

Figures: training tokens/s (real, non-pad tokens fed / train runtime) and padding share (pad tokens / all tokens in
the batches fed). The project reports both in its run metrics; for the baselines a data-collator wrapper counts the
batches. Each variant runs --repeats times, the order reversed every round; tokens/s is the best run. Without
--data-dir/--model-dir the data half (`python -m c64_pipeline.demo --data-only`) is produced in a temporary folder.
Results are printed and written to bench/results/training.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from c64_pipeline.atomic import write_json  # noqa: E402
from c64_pipeline.settings import DEMO_MODEL_NAME, PROJECT_ROOT  # noqa: E402


def produce_data_half(tmp: Path) -> tuple[Path, Path]:
    """The demo data half and tiny model in `tmp`: (processed data dir, model dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("C64_")}
    env |= {"C64_DATA_DIR": str(tmp / "data"), "C64_MODELS_DIR": str(tmp / "models"),
            "C64_DOCS_DIR": str(tmp / "docs"), "DAGSTER_HOME": str(tmp / "dagster")}
    done = subprocess.run([sys.executable, "-m", "c64_pipeline.demo", "--data-only"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the data half failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return tmp / "data" / "processed", tmp / "models" / DEMO_MODEL_NAME


class CountingCollator:
    """Wraps a collator and records (real, all) tokens of every batch it builds."""

    def __init__(self, collate):
        self.collate, self.batches = collate, []

    def __call__(self, features):
        batch = self.collate(features)
        ids, mask = batch["input_ids"], batch.get("attention_mask")
        self.batches.append((int(mask.sum()) if mask is not None else ids.numel(), ids.numel()))
        return batch


def plain_trl(recipe, model, tokenizer, dataset, out: Path, **config) -> dict:
    """Train a plain TRL SFTTrainer with the recipe's settings; figures from the batches actually fed."""
    from transformers import PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    from c64_pipeline.training.common import training_arguments
    from c64_pipeline.training.model_loading import lora_config

    args = SFTConfig(**training_arguments(recipe, out, "fp32", False, SFTConfig), packing=False, **config)
    set_seed(recipe.seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(recipe, model.config.architectures[0]))
    trainer.remove_callback(PrinterCallback)
    trainer.data_collator = counter = CountingCollator(trainer.data_collator)
    output = trainer.train()
    # the dataloader builds one batch ahead: the first step * accumulation batches are the ones fed
    fed = counter.batches[: trainer.state.global_step * args.gradient_accumulation_steps]
    real, total = sum(r for r, _ in fed), sum(t for _, t in fed)
    assert real == trainer.state.num_input_tokens_seen, (real, trainer.state.num_input_tokens_seen)
    runtime = output.metrics["train_runtime"]
    return {"tokens_per_s": real / runtime, "padding_share": (total - real) / total, "tokens": real,
            "runtime_s": runtime, "steps": trainer.state.global_step, "sequences": len(trainer.train_dataset)}


def project_figures(metrics: dict, sequences: int) -> dict:
    return {"tokens_per_s": metrics["tokens_per_second"], "padding_share": metrics["padding_share"],
            "tokens": metrics["tokens_seen_this_session"], "runtime_s": metrics["train_runtime_s"],
            "steps": metrics["global_step"], "sequences": sequences}


def variants(recipe, data: Path, model_dir: Path, tmp: Path) -> dict:
    """name -> function(run_dir) returning figures. The SFT runs merge the first project DAPT run's adapter."""
    from datasets import Dataset

    from c64_pipeline.training.dapt import train_dapt
    from c64_pipeline.training.data import read_conversations, read_texts
    from c64_pipeline.training.model_loading import load_base_model, load_model_tokenizer, merge_adapter
    from c64_pipeline.training.sft import train_sft

    adapters: list[Path] = []  # the project DAPT runs' outputs; SFT merges the first one
    texts = Dataset.from_dict({"text": read_texts(data / "dapt" / "train.parquet")[0]})
    chats = Dataset.from_list([{"messages": c} for c in read_conversations(data / "sft" / "train.jsonl")])

    def dapt_project(out):
        metrics = train_dapt(model_dir, data / "dapt", out, recipe, resume=False)
        adapters.append(out)
        return project_figures(metrics, metrics["train_sequences"])

    def sft_project(out):
        metrics = train_sft(model_dir, adapters[0], data / "sft", out, recipe, resume=False)
        return project_figures(metrics, metrics["train_conversations"])

    def dapt_plain(out):
        return plain_trl(recipe, load_base_model(model_dir), load_model_tokenizer(model_dir), texts, out,
                         dataset_text_field="text")

    def sft_plain(strategy):
        def run(out):
            model = merge_adapter(load_base_model(model_dir), adapters[0])
            return plain_trl(recipe, model, load_model_tokenizer(model_dir), chats, out,
                             assistant_only_loss=True, train_sampling_strategy=strategy)
        return run

    return {"dapt/plain_trl": dapt_plain, "dapt/project": dapt_project, "sft/plain_trl": sft_plain("random"),
            "sft/project": sft_project, "sft/plain_trl_group_by_length": sft_plain("group_by_length")}


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Best tokens/s per variant (padding is the same every round: batches are seeded), ratios project/plain."""
    best = {name: max(rs, key=lambda r: r["tokens_per_s"]) | {"tokens_per_s_runs": [r["tokens_per_s"] for r in rs]}
            for name, rs in runs.items()}
    out: dict = {"dapt": {}, "sft": {}}
    for name, figures in best.items():
        stage, variant = name.split("/")
        out[stage][variant] = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    for stage in ("dapt", "sft"):
        out[stage]["ratio_tokens_per_s_project_to_plain"] = round(
            best[f"{stage}/project"]["tokens_per_s"] / best[f"{stage}/plain_trl"]["tokens_per_s"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per training run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant (order reversed every round)")
    parser.add_argument("--data-dir", type=Path, help="folder with dapt/*.parquet and sft/*.jsonl (data/processed)")
    parser.add_argument("--model-dir", type=Path, help="the tiny demo model those datasets were tokenized for")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results" / "training.json")
    args = parser.parse_args(argv)
    if (args.data_dir is None) != (args.model_dir is None):
        parser.error("give both --data-dir and --model-dir, or neither")

    import datasets
    import peft
    import torch
    import transformers
    import trl

    from c64_pipeline.training.recipe import demo_profile

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers 5 renames (gradient_checkpointing)
    started = time.perf_counter()
    # no evaluation or checkpoint inside the timed loop (the project evaluates after training, outside the runtime)
    recipe = demo_profile().replace(max_steps=args.steps, eval_strategy="no", save_strategy="no")
    with tempfile.TemporaryDirectory(prefix="c64-bench-training-") as tmp_name:
        tmp = Path(tmp_name)
        if args.data_dir:
            data, model_dir = args.data_dir, args.model_dir
        else:
            print("producing the data half in a temporary folder ...", flush=True)
            data, model_dir = produce_data_half(tmp)
        data_s = time.perf_counter() - started
        todo = variants(recipe, data, model_dir, tmp)
        runs: dict[str, list[dict]] = {name: [] for name in todo}
        for round_ in range(args.repeats):
            for name in (list(todo) if round_ % 2 == 0 else list(todo)[::-1]):
                figures = todo[name](tmp / f"{name.replace('/', '-')}-{round_}")
                runs[name].append(figures)
                print(f"  {name:32} round {round_}: {figures['tokens_per_s']:8.0f} tokens/s, "
                      f"padding {figures['padding_share']:.1%}", flush=True)

    results = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                    "peft": peft.__version__},
        "settings": {"steps": args.steps, "repeats": args.repeats, "profile": recipe.profile,
                     "max_length": recipe.max_length, "batch_size": recipe.per_device_train_batch_size,
                     "gradient_accumulation_steps": recipe.gradient_accumulation_steps,
                     "learning_rate": recipe.learning_rate, "lora_r": recipe.lora_r, "precision": "fp32",
                     "gradient_checkpointing": False, "packing": False},
        **summarize(runs),
        "data_half_s": round(data_s, 1) if not args.data_dir else None,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(f"\n{'variant':34}{'tokens/s':>10}{'padding':>9}{'tokens':>8}{'seqs':>6}  vs plain")
    for stage in ("dapt", "sft"):
        for variant, f in results[stage].items():
            if isinstance(f, dict):
                ratio = results[stage]["ratio_tokens_per_s_project_to_plain"] if variant == "project" else ""
                print(f"{stage + '/' + variant:34}{f['tokens_per_s']:10.0f}{f['padding_share']:9.1%}"
                      f"{f['tokens']:8d}{f['sequences']:6d}  {ratio}")
    print(f"total {results['total_s']:.0f} s (data half {data_s:.0f} s)")
    write_json(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
