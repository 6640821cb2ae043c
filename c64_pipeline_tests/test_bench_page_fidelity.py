"""The page-fidelity benchmark (bench/page_fidelity.py): its checks, its test data, and quick mode end to end."""

from __future__ import annotations

import json

import pytest

from bench.page_fidelity import (
    SAMPLE_TESTS,
    PageTest,
    check,
    corpus_qa_tests,
    load_tests,
    markdown,
    run,
    sample_manual_tests,
)


def test_each_check_type_passes_and_fails_on_known_pages():
    pages = ["Intro text.\n$D020 | 53280 | Border colour\nCOMMODORE 64", "Second page: the end.\nPage 2"]
    assert check(PageTest(id="p", doc="d", type="present", text="Border  colour"), pages)[0]
    assert not check(PageTest(id="p", doc="d", type="present", text="Screen colour"), pages)[0]
    assert check(PageTest(id="p", doc="d", type="present", page=2, text="the end"), pages)[0]
    assert not check(PageTest(id="p", doc="d", type="present", page=1, text="the end"), pages)[0]
    assert check(PageTest(id="o", doc="d", type="order", before="Intro", after="the end"), pages)[0]
    assert not check(PageTest(id="o", doc="d", type="order", before="the end", after="Intro"), pages)[0]
    assert not check(PageTest(id="a", doc="d", type="absent", text="COMMODORE 64"), pages)[0]
    assert not check(PageTest(id="a", doc="d", type="absent", line_regex=r"Page \d+"), pages)[0]
    assert check(PageTest(id="a", doc="d", type="absent", line_regex=r"Page \d+"), pages[:1])[0]
    assert check(PageTest(id="t", doc="d", type="table", a="$D020", b="Border colour"), pages)[0]
    assert check(PageTest(id="t", doc="d", type="table", a="$D020", b="53280"), pages)[0]
    # the cells must be whole cells of one row, a left of b
    assert not check(PageTest(id="t", doc="d", type="table", a="53280", b="$D020"), pages)[0]
    assert not check(PageTest(id="t", doc="d", type="table", a="$D02", b="Border colour"), pages)[0]
    assert not check(PageTest(id="t", doc="d", type="table", a="$D020", b="Border colour"),
                     ["$D020 53280 Border colour"])[0]


def test_a_malformed_test_is_rejected_with_its_id():
    with pytest.raises(ValueError, match="t1"):
        PageTest(id="t1", doc="d", type="table", a="$D020", b="  ")
    with pytest.raises(ValueError, match="t2"):
        PageTest(id="t2", doc="d", type="visible", text="x")


def test_sample_manual_tests_file_matches_the_html_sources():
    """bench/page_tests/sample_manuals.jsonl is derived from the sources; regenerate it with --write-sample-tests."""
    on_disk = [json.loads(line) for line in SAMPLE_TESTS.read_text(encoding="utf-8").splitlines()]
    derived = [t.as_dict() for t in sample_manual_tests()]
    assert on_disk == derived
    kinds = {t["type"] for t in derived}
    assert kinds == {"present", "absent", "order", "table"}
    # every register row of the VIC-II table is a table test
    assert {"a": "$D020", "b": "EXTCOL"}.items() <= next(
        t for t in derived if t["type"] == "table" and t["a"] == "$D020" and t["b"] == "EXTCOL"
    ).items()


def test_all_test_files_load_with_unique_ids():
    tests = load_tests()
    assert len({t.id for t in tests}) == len(tests) > 1000


def test_quick_mode_reads_the_sample_manual_tables_row_by_row(sample_manuals, tmp_path):
    results = run(quick=True, sample_dir=sample_manuals, corpus=tmp_path / "no-corpus", repeats=1)
    project = results["project"]
    assert project["skipped"]["needs OCR (full mode)"] > 0  # scanned pages wait for full mode
    assert project["skipped"]["document absent"] > 0  # the corpus tests skip cleanly without the corpus
    assert set(project["by_source"]) == {"sample"}
    table = project["by_type"]["table"]
    assert table["tests"] >= 500 and table["rate"] >= 0.9, table
    assert project["overall"]["rate"] >= 0.85, project["overall"]
    speed = results["throughput"]
    assert speed["pages"] >= 15 and speed["ratio_project_to_bare"] > 0
    out = markdown(results)
    assert "| table |" in out.splitlines()[0] and "pages/s" in out


@pytest.mark.corpus
def test_corpus_qa_quotes_become_present_tests(shared_corpus):
    tests = corpus_qa_tests(shared_corpus)
    assert tests and all(t.type == "present" and t.doc.startswith("corpus:pdf/") for t in tests)
    assert any("DOS_CMD_IDENTIFY (0x01)" in t.text for t in tests)
