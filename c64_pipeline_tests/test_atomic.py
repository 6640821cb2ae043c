import pytest

from c64_pipeline.atomic import write_jsonl, write_text


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.jsonl"
    write_text(target, "old\n")

    def rows():
        yield {"a": 1}
        raise RuntimeError("writer died half way")

    with pytest.raises(RuntimeError):
        write_jsonl(target, rows())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
