"""Rank awareness for training under `accelerate launch` / `torchrun` (one process per GPU, or gloo on CPU).

Every rank loads the model on its own device (the Trainer places it once the process group exists) and takes part in
training and evaluation; only the main process clears or prunes output folders, writes adapters, metrics and
manifests, and reports to Dagster. The others wait at a barrier, so nobody reads a folder that is being written.
A plain single-process run is the same code with a world of one.
"""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def state():
    """accelerate's process state: initialises the process group from the launcher's environment (RANK,
    WORLD_SIZE, MASTER_ADDR...) with NCCL on GPUs and gloo on CPU; a world of one without a launcher."""
    import torch
    from accelerate import PartialState

    # on a machine without CUDA, accelerate forms the gloo process group only when told it runs on the CPU
    # (otherwise every rank believes it is alone and the main process)
    return PartialState(cpu=not torch.cuda.is_available())


def launched_distributed() -> bool:
    """True in a process started by a distributed launcher (before any process group exists)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launcher_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return state().is_main_process if launched_distributed() else True


def world_size() -> int:
    return state().num_processes if launched_distributed() else 1


def wait_for_everyone() -> None:
    if launched_distributed():
        state().wait_for_everyone()
