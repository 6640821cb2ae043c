"""The demo's choices that do not need the graph: it never adds the sample manuals to a folder of the user's."""

from __future__ import annotations

from c64_pipeline.demo.cli import sample_decision
from c64_pipeline.demo.sample_manuals import sample_file_names
from c64_pipeline.settings import paths_from_env


def test_sample_manuals_go_only_into_a_folder_that_holds_none_of_the_users_files(tmp_path, monkeypatch):
    monkeypatch.delenv("C64_MANUALS_DIR", raising=False)
    monkeypatch.setenv("C64_DATA_DIR", str(tmp_path / "data"))
    manuals = paths_from_env().manuals_dir
    assert sample_decision(paths_from_env(), None)[0]  # no folder yet: a fresh checkout
    manuals.mkdir(parents=True)
    for name in sample_file_names():  # a previous demo's files are the samples themselves
        (manuals / name).write_bytes(b"x")
    assert sample_decision(paths_from_env(), None)[0]
    (manuals / "my_manual.pdf").write_bytes(b"x")
    render, why = sample_decision(paths_from_env(), None)
    assert not render and "my_manual.pdf" in why
    assert sample_decision(paths_from_env(), True)[0]  # --samples


def test_a_manuals_folder_the_user_pointed_at_is_never_added_to(tmp_path, monkeypatch):
    monkeypatch.setenv("C64_MANUALS_DIR", str(tmp_path / "shelf"))
    render, why = sample_decision(paths_from_env(), None)
    assert not render and "C64_MANUALS_DIR" in why
