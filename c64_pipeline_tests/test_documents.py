from c64_pipeline.ingest.documents import discover_documents, inspect_document, slugify
from c64_pipeline_tests.bad_inputs import good_pdf, make_bad_inputs


def test_slug_is_safe_for_partition_keys():
    assert slugify("C64 Programmer's Reference, Vol. 1/2.PDF") == "c64-programmer-s-reference-vol-1-2-pdf"
    assert "/" not in slugify("a/b.pdf") and "," not in slugify("a,b.pdf")


def test_discover_keeps_files_whose_names_slug_alike_apart(tmp_path):
    (tmp_path / "A b.txt").write_text("one")
    (tmp_path / "a-b.txt").write_text("two")
    (tmp_path / "notes.docx").write_text("ignored")
    (tmp_path / ".hidden.pdf").write_text("ignored")
    found = discover_documents(tmp_path)
    assert len(found) == 2
    assert {p.name for p in found.values()} == {"A b.txt", "a-b.txt"}


def test_good_pdf_is_described(tmp_path):
    path = good_pdf(tmp_path / "ok.pdf", ["page one", "page two"])
    record = inspect_document("ok-pdf", path)
    assert (record.status, record.kind, record.pages) == ("ok", "pdf", 2)
    assert record.size_bytes == path.stat().st_size and len(record.sha256) == 64


def test_every_bad_input_is_rejected_with_the_file_named(tmp_path):
    expected = make_bad_inputs(tmp_path)
    for name, words in expected.items():
        if name == "blank.pdf":
            continue  # opens fine; rejected at extraction (see test_extraction)
        record = inspect_document(slugify(name), tmp_path / name)
        assert record.status == "rejected", name
        assert record.error.startswith(name) and words in record.error
