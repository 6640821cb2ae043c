"""Write files so that a reader never sees a half-written one: temporary name in the same folder, then rename.

Temporary names are short and bounded (`.<first 32 characters of the name>.<8 random>.tmp`), so a target whose
own name is near the 255-byte limit still gets a valid temporary. Debris of a killed writer (kill -9 between
create and rename) is removed the first time this process writes into that folder: only hidden `*.tmp` files of
this pattern, last modified before this process began (imported this module).

A *file set* (the train/validation/test files of a dataset) is published all or nothing: every file is written
to a temporary first, the old completion manifest (`_SUCCESS.json`) is removed, the files are renamed into place,
and a new manifest with the size and SHA-256 of every file is written last. A folder whose manifest is missing or
does not match its files is an unfinished set; `read_file_set` refuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_NAME_CHARS = 32  # how much of the target's name a temporary keeps (for people looking at the folder)
TEMP_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # also matches the unbounded names of earlier versions
SET_MANIFEST = "_SUCCESS.json"


# When this process started writing (this module's import, read from the same clock as file times; the kernel's
# process start time is computed from boot time and can be off by a second in containers).
PROCESS_STARTED = time.time()
_cleaned: set[Path] = set()
_cleaned_lock = threading.Lock()


class IncompleteFileSet(ValueError):
    """A file set (dataset folder) that was not completely written: its manifest is missing or does not match."""


def is_temporary(path: Path) -> bool:
    return bool(TEMP_PATTERN.match(Path(path).name))


def clean_stale_temporaries(folder: Path, older_than: float | None = None) -> list[Path]:
    """Delete the temporaries a killed writer left in `folder` (not its subfolders): files matching this module's
    temporary-name pattern whose last change is before `older_than` (default: when this process started), so a
    writer that is still running in another process is never touched. Returns what was removed."""
    cutoff = PROCESS_STARTED if older_than is None else older_than
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not TEMP_PATTERN.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed


def _prepare_folder(folder: Path) -> None:
    """Create `folder` and, once per process, clear the stale temporaries in it."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    clean_stale_temporaries(folder)


def _temporary_beside(target: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:TEMP_NAME_CHARS]}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be read by others
    return Path(tmp)


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    _prepare_folder(target.parent)
    tmp_path = _temporary_beside(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _write_jsonl_rows(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_jsonl(target: Path, rows: Iterable[dict]) -> None:
    with atomic_path(target) as tmp:
        _write_jsonl_rows(tmp, rows)


def jsonl_writer(rows: Iterable[dict]) -> Callable[[Path], None]:
    """A writer for `write_file_set` that writes `rows` as JSON lines."""
    return lambda path: _write_jsonl_rows(path, rows)


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    """Let `writer` produce the file at a temporary path (e.g. pyarrow.parquet.write_table)."""
    with atomic_path(target) as tmp:
        writer(tmp)


def _file_entry(path: Path) -> dict:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def write_file_set(folder: Path, writers: Mapping[str, Callable[[Path], None]], details: Mapping[str, dict] | None = None) -> dict:
    """Publish the files `writers` produce (file name -> writer of a path) in `folder`, all or none.

    Every file is written to a temporary; only when all succeeded is the old manifest removed, the files renamed
    into place and the new manifest (sizes, SHA-256 and the optional per-file `details`, e.g. row counts) written
    last. A failure before the renames leaves the previous set untouched; a kill during the renames leaves a
    folder without manifest, which `read_file_set` refuses. Returns the manifest."""
    folder = Path(folder)
    _prepare_folder(folder)
    temporaries: dict[str, Path] = {}
    try:
        for name, writer in writers.items():
            temporaries[name] = _temporary_beside(folder / name)
            writer(temporaries[name])
        files = {name: {**_file_entry(tmp), **dict((details or {}).get(name, {}))} for name, tmp in temporaries.items()}
        (folder / SET_MANIFEST).unlink(missing_ok=True)  # from here until the new manifest lands: unfinished
        for name, tmp in temporaries.items():
            os.replace(tmp, folder / name)
        manifest = {"files": files}
        write_json(folder / SET_MANIFEST, manifest)
    except BaseException:
        for tmp in temporaries.values():
            tmp.unlink(missing_ok=True)
        raise
    return manifest


def read_file_set(folder: Path, names: Iterable[str] | None = None) -> dict:
    """The manifest of a completely written file set, after checking that each file (all of them, or `names`) is
    present with the size and SHA-256 the manifest records. Raises IncompleteFileSet naming what is wrong."""
    folder = Path(folder)
    manifest_path = folder / SET_MANIFEST
    if not manifest_path.is_file():
        raise IncompleteFileSet(
            f"{folder} is not a finished dataset: {SET_MANIFEST} is missing (the write was interrupted or never ran)"
        )
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IncompleteFileSet(f"{manifest_path} is not a readable manifest ({exc})") from exc
    wanted = list(files) if names is None else list(names)
    problems = []
    for name in wanted:
        path = folder / name
        if name not in files:
            problems.append(f"{name} is not listed in {SET_MANIFEST}")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != files[name]["bytes"] or _file_entry(path)["sha256"] != files[name]["sha256"]:
            problems.append(f"{name} differs from the file the manifest records (written by another build)")
    if problems:
        raise IncompleteFileSet(f"{folder} is not a finished dataset: " + "; ".join(problems))
    return {"files": files}
