"""bench/ocr.py on the rendered sample manuals: table rows and hex on scanned pages, project vs baseline."""

from __future__ import annotations

import pytest

from bench.ocr import bench_ocr_tables, rows_kept_whole, sample_truth


def test_sample_truth_finds_the_address_rows_of_the_scanned_pages(sample_manuals):
    truth = sample_truth(sample_manuals)
    assert truth and all(t.pdf.is_file() for t in truth)
    rows = [r for t in truth for r in t.rows]
    assert len(rows) == len({r[0] for r in rows}) >= 40  # every register row once, on its page
    assert all(r[0].startswith("$") and len(r) >= 3 for r in rows)
    assert sum(sum(t.hexes.values()) for t in truth) > len(rows)


def test_rows_kept_whole_needs_address_and_description_on_one_line():
    row = ["$DC0B", "56331", "TODHRS", "Time of day clock, hours in BCD"]
    assert rows_kept_whole("$DC0B | 56331 | TODHRS | Time of day clock, hours", [row]) == (1, 1)
    assert rows_kept_whole("$DC0B | 56331 | TODHRS Time of day clock, hours", [row]) == (1, 0)
    assert rows_kept_whole("$DC0B\n56331\nTODHRS\nTime of day clock, hours", [row]) == (0, 0)


@pytest.mark.slow
def test_scanned_register_tables_keep_rows_and_hex(sample_manuals):
    result = bench_ocr_tables(sample_manuals, quick=True)
    project, baseline = result["project"], result["baseline"]
    assert project["address_rows"] >= 30
    assert project["share_rows_kept_whole"] >= 0.9, result
    assert project["share_hex_exact"] >= 0.95, result
    assert project["rows_with_all_cells"] >= baseline["rows_with_all_cells"], result
    assert project["hex_exact"] > baseline["hex_exact"] and project["hex_repairs"] > 0, result
