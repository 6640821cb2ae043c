"""One file never sinks the batch, the report never lies, and a dataset is all splits or none (issue 9).

Every trigger is generated in the test: a PDF over the page limit, file names at the 255-byte limit, a file that
vanishes mid-run, an error inside one document's extraction, an oversized single-line text file, a build with no
document read, a kill -9 in the middle of a write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pymupdf
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance

from c64_pipeline import atomic
from c64_pipeline.ingest.documents import MAX_PDF_PAGES, MAX_TEXT_BYTES, DocumentRejected, inspect_document, open_pdf
from c64_pipeline.ingest.documents import discover_documents
from c64_pipeline.defs.partitions import manual_partitions, range_tags
from c64_pipeline.defs.resources import PageReader
from c64_pipeline.datasets.records import SftDataset
from c64_pipeline.datasets.report import build_report
from c64_pipeline.datasets.splits import DocumentSplits
from c64_pipeline.ingest.documents import SourceDocument
from c64_pipeline.ingest.extraction import DocumentText, PageText
from c64_pipeline_tests.graph_helpers import SMALL_CORPUS, Workspace, write_small_corpus

ROOT = Path(__file__).resolve().parents[1]


def add_partitions(instance, folder: Path) -> list[str]:
    """The partitions the sensor would add for the folder, added; their keys in order."""
    keys = sorted(discover_documents(folder))
    instance.add_dynamic_partitions(manual_partitions.name, keys)
    return keys
SPLIT_FILES = {"dapt": ["train.parquet", "validation.parquet", "test.parquet"],
               "sft": ["train.jsonl", "validation.jsonl", "test.jsonl"]}


@pytest.fixture
def workspace(tmp_path, tiny_model_dir) -> Workspace:
    return Workspace.create(tmp_path, tiny_model_dir)


def pdf_with_pages(path: Path, count: int) -> Path:
    """A PDF of `count` empty pages, made in well under a second (pages added through the page tree directly)."""
    doc = pymupdf.open()
    doc.new_page(width=100, height=100)
    first = doc.page_xref(0)
    parent = int(doc.xref_get_key(first, "Parent")[1].split()[0])
    kids = [first]
    for _ in range(count - 1):
        xref = doc.get_new_xref()
        doc.update_object(xref, f"<< /Type /Page /Parent {parent} 0 R /MediaBox [0 0 100 100] >>")
        kids.append(xref)
    doc.xref_set_key(parent, "Kids", "[" + " ".join(f"{k} 0 R" for k in kids) + "]")
    doc.xref_set_key(parent, "Count", str(count))
    doc.save(path)
    doc.close()
    return path


def scanned_pdf(path: Path) -> Path:
    """One image-only page: its text can only come from OCR."""
    source = pymupdf.open()
    source.new_page(width=504, height=684).insert_textbox(
        pymupdf.Rect(50, 60, 454, 620), "$D020 | 53280 | EXTCOL | Border colour", fontsize=14)
    scan = pymupdf.open()
    scan.new_page(width=504, height=684).insert_image(
        pymupdf.Rect(0, 0, 504, 684), pixmap=source[0].get_pixmap(dpi=100, colorspace=pymupdf.csGRAY))
    scan.save(path)
    return path


def _debris(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def _report_rows(ws: Workspace) -> dict[str, dict]:
    return {d["file_name"]: d for d in ws.report()["documents"]}


def _dataset_bytes(ws: Workspace) -> dict[str, bytes]:
    files = [ws.processed / "splits.json"] + [ws.processed / d / n for d, names in SPLIT_FILES.items() for n in names]
    return {p.relative_to(ws.processed).as_posix(): p.read_bytes() for p in files}


# ---- one document's failure is its rejection ---------------------------------------------------------------------

def test_pdf_over_the_page_limit_is_rejected_naming_its_page_count(tmp_path):
    path = pdf_with_pages(tmp_path / "phone_book.pdf", MAX_PDF_PAGES + 1)
    with pytest.raises(DocumentRejected, match=rf"phone_book\.pdf: PDF claims {MAX_PDF_PAGES + 1} pages, over the limit"):
        open_pdf(path)
    record = inspect_document("phone_book-pdf", path)
    assert record.status == "rejected" and f"{MAX_PDF_PAGES + 1} pages" in record.error


def test_oversized_single_line_text_file_is_rejected_before_it_is_read(tmp_path):
    path = tmp_path / "one_line.txt"
    path.write_bytes(b"A" * (MAX_TEXT_BYTES + 1))  # one line, no whitespace: the worst case for memory
    record = inspect_document("one_line-txt", path)
    assert record.status == "rejected" and record.pages == 0
    assert record.error.startswith("one_line.txt: text file of 10.0 MB is over the size limit of 10 MB")
    assert inspect_document("fits-txt", _write(tmp_path / "fits.txt", "POKE 53280,0\n" * 10)).status == "ok"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_file_removed_after_discovery_is_rejected_not_raised(tmp_path):
    gone = tmp_path / "gone.md"
    record = inspect_document("gone-md", gone)
    assert record.status == "rejected" and "gone.md: the file vanished" in record.error


def test_trigger_files_in_a_batch_are_rejected_and_every_other_document_is_read(workspace):
    """The 5,001-page PDF, file names of 236 and 255 bytes and an oversized text file, in one batched run."""
    write_small_corpus(workspace.manuals)
    pdf_with_pages(workspace.manuals / "phone_book.pdf", MAX_PDF_PAGES + 1)
    long_236 = ("datasette tape notes " * 12)[: 236 - 3] + ".md"
    long_255 = ("disk drive commands " * 13)[: 255 - 3] + ".md"
    _write(workspace.manuals / long_236, "# Datasette\n\nThe datasette stores programs on audio tape; LOAD reads "
           "the next program and SAVE writes one. The cassette buffer starts at 828 ($033C).\n")
    _write(workspace.manuals / long_255, "# Disk drive\n\nThe 1541 disk drive answers on device 8. OPEN 15,8,15 "
           "opens its command channel; the drive reports errors on that channel.\n")
    assert len(long_236.encode()) == 236 and len(long_255.encode()) == 255
    (workspace.manuals / "huge.txt").write_bytes(b"x" * (MAX_TEXT_BYTES + 1))
    with DagsterInstance.ephemeral() as instance:
        run = workspace.run(instance)
    assert [r.success for r in run.ingest.values()] == [True], "the batch of new manuals is one run, and it succeeds"
    assert run.datasets.success
    rows = _report_rows(workspace)
    assert rows["phone_book.pdf"]["status"] == "rejected" and f"{MAX_PDF_PAGES + 1} pages" in rows["phone_book.pdf"]["error"]
    assert rows["huge.txt"]["status"] == "rejected" and "over the size limit" in rows["huge.txt"]["error"]
    for name in (*SMALL_CORPUS, long_236, long_255):
        assert rows[name]["status"] == "ok" and rows[name]["pages_with_text"] > 0, name
    assert _debris(workspace.processed) == [] and _debris(workspace.root / "interim") == []


def test_file_that_vanishes_before_its_run_reads_it_is_rejected_and_the_batch_goes_on(workspace):
    write_small_corpus(workspace.manuals)
    (workspace.manuals / "extra_notes.md").write_text("# Extra\n\nThe SID chip at $D400 has three voices.\n")
    from c64_pipeline.definitions import build_definitions

    with DagsterInstance.ephemeral() as instance:
        keys = add_partitions(instance, workspace.manuals)  # the run is planned ...
        (workspace.manuals / "extra_notes.md").unlink()  # ... and the file is gone before it reads the folder
        ingest = build_definitions(workspace.resources()).resolve_job_def("ingest_documents")
        result = ingest.execute_in_process(instance=instance, raise_on_error=False,
                                           tags=range_tags(keys[0], keys[-1]))
        assert result.success
        raw = json.loads((workspace.root / "interim" / "raw_pdfs" / "extra_notes-md.json").read_text())
        assert raw["status"] == "rejected" and "no file" in raw["error"] and "removed or renamed" in raw["error"]
        pages = {k: json.loads((workspace.root / "interim" / "page_text" / f"{k}.json").read_text()) for k in keys}
        assert all(pages[k]["pages"] and not pages[k]["error"] for k in keys if k != "extra_notes-md")


def test_file_that_vanishes_between_inspection_and_reading_is_rejected_and_the_batch_goes_on(workspace):
    write_small_corpus(workspace.manuals)
    from c64_pipeline.definitions import build_definitions

    with DagsterInstance.ephemeral() as instance:
        keys = add_partitions(instance, workspace.manuals)
        ingest = build_definitions(workspace.resources()).resolve_job_def("ingest_documents")
        tags = range_tags(keys[0], keys[-1])
        assert ingest.execute_in_process(instance=instance, tags=tags, asset_selection=[AssetKey("raw_pdfs")]).success
        (workspace.manuals / "cia_registers.md").unlink()
        result = ingest.execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                           asset_selection=[AssetKey("page_text")])
    assert result.success, "one vanished file must not fail the reading of the others"
    stored = {k: json.loads((workspace.root / "interim" / "page_text" / f"{k}.json").read_text()) for k in keys}
    assert stored["cia_registers-md"]["pages"] == []
    assert stored["cia_registers-md"]["error"].startswith("cia_registers.md: the file vanished")
    assert all(stored[k]["pages"] and stored[k]["error"] is None for k in keys if k != "cia_registers-md")


def test_unexpected_error_in_one_documents_extraction_rejects_only_that_document(workspace):
    """A misconfigured OCR engine raises ValueError inside the extraction of the one document that needs OCR."""
    write_small_corpus(workspace.manuals)
    scanned_pdf(workspace.manuals / "scanned_vic.pdf")
    with DagsterInstance.ephemeral() as instance:
        run = workspace.run(instance, page_reader=PageReader(ocr_engine="no-such-engine", ocr_workers=1))
    assert all(r.success for r in run.ingest.values())
    rows = _report_rows(workspace)
    assert rows["scanned_vic.pdf"]["status"] == "rejected"
    assert rows["scanned_vic.pdf"]["error"].startswith("scanned_vic.pdf: unexpected error while reading it (ValueError")
    assert all(rows[name]["status"] == "ok" for name in SMALL_CORPUS)


# ---- the report's status comes from what was read ----------------------------------------------------------------

def _doc(doc_id: str, error: str | None = None) -> SourceDocument:
    return SourceDocument(doc_id, f"{doc_id}.pdf", f"/shelf/{doc_id}.pdf", "pdf", "0" * 64, 100, 3,
                          "rejected" if error else "ok", error)


def _page(doc_id: str, method: str) -> PageText:
    return PageText(doc_id, 1, "x" if method != "none" else "", method, 1.0, None, 1)


def test_report_lists_a_document_as_ok_only_when_its_pages_were_read():
    documents = [_doc("read"), _doc("never_read"), _doc("read_failed"), _doc("no_text"), _doc("rejected", "bad file")]
    texts = {
        "read": DocumentText("read", "read.pdf", None, (_page("read", "text_layer"),)),
        "read_failed": DocumentText("read_failed", "read_failed.pdf", "read_failed.pdf: boom"),
        "no_text": DocumentText("no_text", "no_text.pdf", None, (_page("no_text", "none"),)),
    }
    report = build_report(documents=documents, texts=texts, splits=DocumentSplits({"read": "train"}), chunks=[],
                          sft=SftDataset("sft", {}, {}, max_length=2048), conversations={}, near_duplicate_threshold=0.8)
    status = {d["doc_id"]: (d["status"], d["error"]) for d in report["documents"]}
    assert status["read"] == ("ok", None)
    assert status["never_read"][0] == "rejected" and "never stored" in status["never_read"][1]
    assert status["read_failed"] == ("rejected", "read_failed.pdf: boom")
    assert status["no_text"][0] == "rejected" and "no page with usable text" in status["no_text"][1]
    assert status["rejected"] == ("rejected", "bad file")
    assert report["totals"]["documents_accepted"] == 1 and report["totals"]["documents_rejected"] == 4


# ---- no empty rebuild, all splits or none --------------------------------------------------------------------------

def test_dataset_build_with_no_document_read_fails_and_keeps_the_previous_datasets(workspace):
    write_small_corpus(workspace.manuals)
    with DagsterInstance.ephemeral() as instance:
        assert workspace.run(instance).datasets.success
        before = _dataset_bytes(workspace)
        for stored in (workspace.root / "interim" / "page_text").glob("*.json"):  # every read lost upstream
            stored.unlink()
        run = workspace.run(instance, only=[])
    assert not run.datasets.success
    failures = [e for e in run.datasets.all_events if e.is_step_failure]
    message = " ".join(e.event_specific_data.error.message for e in failures)
    assert "no document was read" in message and "left as they were" in message
    assert "empty manuals folder fails here too" in message
    assert _dataset_bytes(workspace) == before
    atomic.read_file_set(workspace.processed / "dapt")  # still a finished set


def test_empty_manuals_folder_fails_loudly_instead_of_writing_empty_datasets(workspace):
    with DagsterInstance.ephemeral() as instance:
        run = workspace.run(instance)
    assert not run.datasets.success
    message = " ".join(e.event_specific_data.error.message for e in run.datasets.all_events if e.is_step_failure)
    assert "no document has stored page text" in message and str(workspace.manuals) in message
    assert not (workspace.processed / "dapt").exists() and not (workspace.processed / "splits.json").exists()


def test_dataset_folders_carry_a_manifest_that_matches_their_split_files(workspace):
    write_small_corpus(workspace.manuals)
    with DagsterInstance.ephemeral() as instance:
        assert workspace.run(instance).datasets.success
    for folder, names in SPLIT_FILES.items():
        manifest = atomic.read_file_set(workspace.processed / folder, names)
        assert set(manifest["files"]) == set(names)
    rows = atomic.read_file_set(workspace.processed / "dapt")["files"]["train.parquet"]["rows"]
    assert rows == pq.read_table(workspace.processed / "dapt" / "train.parquet").num_rows > 0
    # a new train split beside a missing validation split is not a finished set
    (workspace.processed / "sft" / "validation.jsonl").unlink()
    with pytest.raises(atomic.IncompleteFileSet, match=r"validation\.jsonl is missing"):
        atomic.read_file_set(workspace.processed / "sft")
    # nor is a split file from another build
    (workspace.processed / "dapt" / "test.parquet").write_bytes(b"PAR1 from another build")
    with pytest.raises(atomic.IncompleteFileSet, match=r"test\.parquet differs"):
        atomic.read_file_set(workspace.processed / "dapt")


def test_training_refuses_a_dataset_folder_without_a_finished_manifest(tmp_path):
    from dagster import Failure

    from c64_pipeline.defs.training.assets import require_finished_datasets

    folder = tmp_path / "sft"
    atomic.write_file_set(folder, {n: atomic.jsonl_writer([{"n": i}]) for i, n in enumerate(SPLIT_FILES["sft"])})
    require_finished_datasets(folder)
    (folder / atomic.SET_MANIFEST).unlink()
    with pytest.raises(Failure, match=r"training refused: .*_SUCCESS\.json is missing"):
        require_finished_datasets(folder)


def test_failed_split_write_leaves_the_previous_set_whole(tmp_path):
    folder = tmp_path / "sft"
    first = atomic.write_file_set(folder, {n: atomic.jsonl_writer([{"v": 1}]) for n in SPLIT_FILES["sft"]})

    def broken(path: Path) -> None:
        path.write_text('{"v": 2}\n')
        raise RuntimeError("disk full while writing validation")

    with pytest.raises(RuntimeError):
        atomic.write_file_set(folder, {"train.jsonl": atomic.jsonl_writer([{"v": 2}]), "validation.jsonl": broken,
                                       "test.jsonl": atomic.jsonl_writer([{"v": 2}])})
    assert atomic.read_file_set(folder) == first
    assert {p.name for p in folder.iterdir()} == {*SPLIT_FILES["sft"], atomic.SET_MANIFEST}
    assert (folder / "train.jsonl").read_text() == '{"v": 1}\n'


# ---- crashes leave no debris ---------------------------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from c64_pipeline import atomic

    folder = Path(sys.argv[1])

    def die(path):
        path.write_text("half of a split")
        os.kill(os.getpid(), signal.SIGKILL)

    atomic.write_file_set(folder, {"train.jsonl": atomic.jsonl_writer([{"v": 2}]), "validation.jsonl": die,
                                   "test.jsonl": atomic.jsonl_writer([{"v": 2}])})
""")

NEXT_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from c64_pipeline import atomic

    atomic.write_json(Path(sys.argv[1]) / "other.json", {"ok": True})
""")


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120)


def test_kill_during_a_dataset_write_keeps_the_old_set_and_the_next_write_removes_the_debris(tmp_path):
    folder = tmp_path / "sft"
    first = atomic.write_file_set(folder, {n: atomic.jsonl_writer([{"v": 1}]) for n in SPLIT_FILES["sft"]})
    killed = _python(KILLED_WRITER, str(folder))
    assert killed.returncode == -signal.SIGKILL
    debris = [p for p in folder.iterdir() if atomic.is_temporary(p)]
    assert len(debris) == 2, "the killed writer left its temporaries behind"
    assert atomic.read_file_set(folder) == first, "the old set is still the finished one"
    live = folder / ".train.jsonl.abcd1234.tmp"  # a writer in another process that is still running
    live.write_text("in progress")
    os.utime(live, (time.time() + 3600, time.time() + 3600))
    assert _python(NEXT_WRITER, str(folder)).returncode == 0
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([*SPLIT_FILES["sft"], atomic.SET_MANIFEST, "other.json", live.name])


def test_temporary_names_stay_short_for_names_at_the_file_system_limit(tmp_path):
    target = tmp_path / (("x" * 250) + ".json")
    seen = []
    with atomic.atomic_path(target) as tmp:
        seen.append(tmp.name)
        tmp.write_text("{}")
    assert target.read_text() == "{}"
    assert len(seen[0]) <= 1 + atomic.TEMP_NAME_CHARS + 1 + 8 + 4 and atomic.is_temporary(Path(seen[0]))


def test_html_with_a_megabyte_of_blanks_on_one_line_is_cleaned_in_one_pass():
    """The trailing-blank cleanup used a regex that rescanned a blank run from every position (quadratic: 43 s for
    100 kB of spaces); it now strips line by line."""
    from c64_pipeline.ingest.text_sources import html_to_text

    text = html_to_text("<p>POKE 53280,0" + " \t" * 500_000 + "</p><p>next</p>")
    assert text == "POKE 53280,0\n\nnext\n"
