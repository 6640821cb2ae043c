"""Start of an OCR pool worker: bind its life to the parent's before anything heavy is imported.

Kept free of heavy imports on purpose: a spawned worker unpickles (and so imports) its initializer before
running it, and the seconds spent importing PyMuPDF or torch would be seconds in which a kill -9 of the parent
leaves the worker behind. ``worker_init`` makes the worker die with its parent first, then imports
``c64_pipeline.ingest.ocr`` and builds the engine.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

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
