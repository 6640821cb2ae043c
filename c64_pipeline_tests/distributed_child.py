"""One rank of a two-process DAPT run (started by torch.distributed.run in test_distributed_training.py).

argv: model_dir dapt_dir out_dir events_dir max_steps [kill_at_step]. Each rank appends what it reports to
events_dir/rank-N.jsonl; with kill_at_step, rank 0 SIGKILLs its own process group at that step (a crash, no cleanup).
"""

import json
import os
import signal
import sys
from pathlib import Path

from c64_pipeline.training.dapt import train_dapt
from c64_pipeline.training.recipe import demo_profile


def main() -> None:
    model_dir, dapt_dir, out_dir, events_dir = map(Path, sys.argv[1:5])
    max_steps = int(sys.argv[5])
    kill_at = int(sys.argv[6]) if len(sys.argv) > 6 else None
    rank = int(os.environ["RANK"])
    events = events_dir / f"rank-{rank}.jsonl"
    events.parent.mkdir(parents=True, exist_ok=True)

    def progress(event: dict) -> None:
        with events.open("a") as fh:
            fh.write(json.dumps(event, default=str) + "\n")
        if kill_at is not None and event.get("step", 0) >= kill_at:
            os.killpg(os.getpgid(0), signal.SIGKILL)

    recipe = demo_profile("dapt").replace(max_steps=max_steps, eval_steps=2, save_steps=2, logging_steps=1,
                                          per_device_train_batch_size=2)
    metrics = train_dapt(model_dir, dapt_dir, out_dir, recipe, progress=progress)
    with (events_dir / f"metrics-{rank}.json").open("w") as fh:
        json.dump(metrics, fh, default=str)


if __name__ == "__main__":
    main()
