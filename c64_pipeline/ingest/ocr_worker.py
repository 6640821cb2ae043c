"""Start of an OCR pool worker: bind its life to the parent's before anything heavy is imported.

Kept free of heavy imports on purpose: a spawned worker unpickles (and so imports) its initializer before
running it, and the seconds spent importing PyMuPDF or torch would be seconds in which a kill -9 of the parent
leaves the worker behind. ``worker_init`` makes the worker die with its parent first, then imports
``c64_pipeline.ingest.ocr`` and builds the engine. ``WorkerContext`` starts workers that do not import the
caller's main module either.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing import context as mp_context
from multiprocessing import spawn as mp_spawn

WATCHDOG_S = 1.0  # how often the watchdog thread checks that the parent is still there
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """End this process when the process that started it ends, even by kill -9.

    On Linux the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG). Everywhere a daemon
    thread also polls ``os.getppid()`` (for a parent that died before prctl, or a system without prctl) and
    ends the process when it changes. Without this, spawned pool workers block forever on their call queue
    (they hold its write end themselves) and keep their engine's memory after the parent is gone.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog still works
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="ocr-parent-watchdog", daemon=True).start()


def worker_init(parent_pid: int, engine_name: str, engine_options: dict) -> None:
    die_with_parent(parent_pid)
    # PyMuPDF 2 imports its ONNX layout analyser (pymupdf.layout) on `import pymupdf` when it is installed. OCR
    # workers never use it; skipping it saves ~2 s of start-up and ~50 MB per worker (measured: 3.25 s / 161 MB
    # vs 1.28 s / 112 MB for `import c64_pipeline.ingest.ocr` on the shared 2-core machine).
    # Likewise pymupdf4llm, which `import pymupdf` also imports when it is installed (and with it onnxruntime,
    # tabulate and numpy's linear algebra): 0.2 of the 0.4 CPU-s a worker spends importing what it needs.
    if "pymupdf" not in sys.modules:
        sys.modules.setdefault("pymupdf.layout", None)  # type: ignore[arg-type]
        sys.modules.setdefault("pymupdf4llm", None)  # type: ignore[arg-type]
    from c64_pipeline.ingest.ocr import _worker_setup

    _worker_setup(engine_name, engine_options)


_SPAWN_LOCK = threading.Lock()
_spawn_preparation_data = mp_spawn.get_preparation_data


def _preparation_without_main(name: str) -> dict:
    data = _spawn_preparation_data(name)
    data.pop("init_main_from_name", None)
    data.pop("init_main_from_path", None)
    return data


class WorkerProcess(mp_context.SpawnProcess):
    """A spawned OCR worker that does not import the caller's ``__main__`` module.

    A spawned process imports its parent's main module before anything else (so that functions defined there can
    be unpickled): the calling program and all it imports, e.g. ``bench.ocr`` under ``python -m bench.ocr``, with
    PyMuPDF's layout analyser, before ``worker_init`` can leave it out (1.1 instead of 0.26 CPU-s per worker), or
    dagster's command line under the ``dagster`` script. OCR workers run only functions of this package, so the
    main module is left out of the data the worker is prepared from; sys.path, the working directory and the rest
    stay. (This class is pickled to the worker with the process: it lives here, where nothing heavy is imported.)
    """

    @staticmethod
    def _Popen(process_obj):  # noqa: N802 - multiprocessing's name
        # multiprocessing reads the preparation data through this module attribute while it starts the process, in
        # this thread; the lock keeps two pools started at once from restoring each other's swap.
        with _SPAWN_LOCK:
            mp_spawn.get_preparation_data = _preparation_without_main
            try:
                return mp_context.SpawnProcess._Popen(process_obj)
            finally:
                mp_spawn.get_preparation_data = _spawn_preparation_data


class WorkerContext(mp_context.SpawnContext):
    """The spawn context, with workers that skip the caller's main module (``WorkerProcess``)."""

    Process = WorkerProcess
