"""Which entries of the manuals folder become partitions, under which key, and which are refused unread."""

from __future__ import annotations

import json
import random
import zlib
import os
import re
import threading

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from c64_pipeline.ingest.documents import discover_documents, entry_fingerprint, inspect_document, partition_key
from c64_pipeline.datasets.splits import SPLITS
from c64_pipeline_tests.graph_helpers import Workspace

ALIKE = ["A b.txt", "a-b.txt", "a..b.txt"]


_WORDS = ("sprite colour border raster timer latch voice filter pulse gate sync ring attack decay sustain release "
          "joystick paddle keyboard serial cassette printer modem cartridge bank charset bitmap screen cursor scroll "
          "interrupt enable mask flag counter alarm clock port direction input output carry zero overflow stack "
          "vector pointer buffer length offset").split()


def _register_text(title: str, lines: int) -> str:
    """A register table of its own: addresses, names and wording differ from file to file, so that the manuals are
    distinct documents (not near-duplicates the splitter would keep together)."""
    rng = random.Random(title)
    base = 0xC000 + 0x100 * (zlib.crc32(title.encode()) % 32)
    rows = [f"${base + i:04X}  {base + i}  {''.join(rng.choice('BCDFGHKLMNPRSTVZ') for _ in range(4))}  "
            f"{' '.join(rng.sample(_WORDS, 3))} of {title}" for i in range(lines)]
    return f"{title}\n\nNotes on the {title} chip of the Commodore 64.\n\n" + "\n".join(rows) + "\n"


def test_a_key_is_a_function_of_the_file_name_alone(tmp_path):
    for name in ALIKE:
        (tmp_path / name).write_text(name)
    keys = {path.name: key for key, path in discover_documents(tmp_path).items()}
    assert len(set(keys.values())) == len(ALIKE)
    for name in ALIKE:  # whichever sibling goes, the others keep their keys
        (tmp_path / name).unlink()
        after = {path.name: key for key, path in discover_documents(tmp_path).items()}
        assert after == {n: k for n, k in keys.items() if n != name}
        (tmp_path / name).write_text(name)
    assert keys == {name: partition_key(name) for name in ALIKE}


def test_canonical_names_keep_their_plain_slug():
    # the sample manuals' keys, and the keys tests and ledgers already name, are unchanged
    assert partition_key("c64_memory_and_video_reference.pdf") == "c64_memory_and_video_reference-pdf"
    assert partition_key("basic_v2_quick_reference.md") == "basic_v2_quick_reference-md"
    assert partition_key("kernal_routines.md") == "kernal_routines-md"
    assert partition_key("sound-io.html") == "sound-io-html"


def test_names_that_slug_alike_never_share_a_key():
    names = ALIKE + [
        "a-b.TXT", "a b.txt", "a_b.txt", "a--b.txt", "-a-b.txt", "a-b-.txt", "a.b.txt", "a-b-txt.md", "a-b.txt.txt",
        "A-B.txt", "a-b-txt.txt", "ä-b.txt", "a\u200bb.txt",
        "x" * 240 + ".pdf", "x" * 240 + "y.pdf", "x" * 80 + ".pdf",
    ]
    keys = [partition_key(name) for name in names]
    assert len(set(keys)) == len(names), sorted(zip(keys, names))
    for key in keys:
        assert re.fullmatch(r"[a-z0-9_]+(-[a-z0-9_]+)*", key) and len(key) <= 96, key


def _inspect_within(doc_id, path, seconds=20):
    """inspect_document in a thread, so a reader blocked on a FIFO fails the test instead of hanging it."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("record", inspect_document(doc_id, path)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "record" in out, f"inspect_document({path.name}) did not return: it opened something it must not"
    return out["record"]


def test_links_pipes_and_directories_are_rejected_unread(tmp_path):
    manuals, outside = tmp_path / "manuals", tmp_path / "outside"
    manuals.mkdir()
    outside.mkdir()
    (outside / "secrets.txt").write_text("api_key=not-for-the-datasets\n")
    (manuals / "real.txt").write_text("$D020 53280 EXTCOL border colour\n")
    (manuals / "leak.txt").symlink_to(outside / "secrets.txt")
    (manuals / "alias.txt").symlink_to(manuals / "real.txt")
    (manuals / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    os.mkfifo(manuals / "pipe.txt")
    (manuals / "notes.md").mkdir()
    expected = {"leak.txt": "symbolic link", "alias.txt": "symbolic link", "dangling.md": "symbolic link",
                "pipe.txt": "named pipe (FIFO)", "notes.md": "a directory"}
    found = {path.name: (key, path) for key, path in discover_documents(manuals).items()}
    assert set(found) == set(expected) | {"real.txt"}
    for name, words in expected.items():
        key, path = found[name]
        record = _inspect_within(key, path)
        assert record.status == "rejected" and record.error.startswith(name) and words in record.error, record
        assert "regular file" in record.error and record.sha256 == "" and entry_fingerprint(path) == ""
    assert _inspect_within(*found["real.txt"]).status == "ok"
    assert len(entry_fingerprint(manuals / "real.txt")) == 64


def test_a_link_out_of_the_folder_is_in_the_report_not_in_the_datasets(tmp_path, tiny_model_dir):
    ws = Workspace.create(tmp_path / "ws", tiny_model_dir)
    for name in ("vic.txt", "sid.txt", "cia.txt"):
        (ws.manuals / name).write_text(_register_text(name[:3].upper(), 6))
    (tmp_path / "secrets.txt").write_text(_register_text("SECRET api_key=do-not-train-on-this", 6))
    (ws.manuals / "leak.txt").symlink_to(tmp_path / "secrets.txt")
    os.mkfifo(ws.manuals / "pipe.md")
    with DagsterInstance.ephemeral() as instance:
        run = ws.run(instance)
    assert all(result.success for result in run.ingest.values())
    report = ws.report()
    rejected = {r["file_name"]: r["reason"] for r in report["rejected_documents"]}
    assert set(rejected) == {"leak.txt", "pipe.md"}
    assert "symbolic link" in rejected["leak.txt"] and "named pipe" in rejected["pipe.md"]
    assert report["totals"]["documents_accepted"] == 3
    tables = [pq.read_table(ws.processed / "dapt" / f"{s}.parquet") for s in SPLITS]
    texts = [t for table in tables for t in table.column("text").to_pylist()]
    assert texts and not any("api_key" in t for t in texts)


@pytest.mark.slow
def test_names_alike_keep_their_keys_and_splits_when_a_sibling_goes(tmp_path, tiny_model_dir):
    ws = Workspace.create(tmp_path, tiny_model_dir)
    # four distinct manuals over three splits: one of the names alike shares its split with another manual, so
    # removing it empties no split and the ledger has no reason to move anything (a split emptied by a removal is
    # refilled, with a note: test_splits covers that)
    sizes = {"big.txt": 40, "a-b.txt": 30, "a..b.txt": 20, "A b.txt": 6}
    for name, lines in sizes.items():
        (ws.manuals / name).write_text(_register_text(name, lines))

    def by_file() -> dict[str, tuple[str, str]]:
        return {d["file_name"]: (d["doc_id"], d["split"]) for d in ws.report()["documents"]}

    with DagsterInstance.ephemeral() as instance:
        ws.run(instance)
        before = by_file()
        assert len({doc_id for doc_id, _ in before.values()}) == len(sizes)
        assert {split for _, split in before.values()} == set(SPLITS)
        splits = [split for _, split in before.values()]
        gone = next(name for name in ("A b.txt", "a..b.txt", "a-b.txt") if splits.count(before[name][1]) > 1)
        (ws.manuals / gone).unlink()
        ws.run(instance)
        after = by_file()
    assert after == {name: value for name, value in before.items() if name != gone}
    ledger = json.loads((ws.processed / "splits.json").read_text())["assignment"]
    assert ledger == {doc_id: split for doc_id, split in after.values()}


def test_sft_titles_leave_out_the_hash_of_the_name():
    from c64_pipeline.datasets.sft.common import doc_title

    assert doc_title(partition_key("u1541_1541U2Doc.pdf")) == "u1541 1541u2doc"
    assert doc_title(partition_key("A b.txt")) == "a b"
    assert doc_title(partition_key("c64_memory_map.pdf")) == "c64 memory map"
