import pytest

from c64_pipeline.splits import SplitSettings, assign_splits


def test_every_split_gets_a_document_once_there_are_three():
    assignment, _ = assign_splits(["a", "b", "c"])
    assert sorted(assignment.values()) == ["test", "train", "validation"]


def test_same_inputs_same_assignment():
    ids = [f"manual-{i}" for i in range(30)]
    assert assign_splits(ids)[0] == assign_splits(list(reversed(ids)))[0]


def test_adding_manuals_never_moves_an_assigned_document():
    assignment, _ = assign_splits(["a"])
    for i in range(40):
        new, notes = assign_splits(list(assignment) + [f"new-{i}"], assignment)
        assert all(new[d] == s for d, s in assignment.items()) and not notes
        assignment = new
    counts = {s: list(assignment.values()).count(s) for s in ("train", "validation", "test")}
    assert counts["train"] > counts["validation"] > 0 and counts["test"] > 0


def test_removal_that_empties_a_split_refills_it_and_says_so():
    assignment, _ = assign_splits(["a", "b", "c", "d", "e"])
    lonely = next(d for d, s in assignment.items() if s == "validation")
    rest = [d for d in assignment if d != lonely]
    new, notes = assign_splits(rest, assignment)
    assert "validation" in new.values() and len(notes) == 1 and "moved" in notes[0]


def test_bad_shares_are_refused():
    with pytest.raises(ValueError):
        SplitSettings(validation_share=0.6, test_share=0.5)


def test_the_largest_new_documents_fill_train_first():
    sizes = {"small-md": 500, "big-pdf": 90_000, "mid-pdf": 40_000, "tiny-txt": 100}
    assignment, _ = assign_splits(sizes, sizes=sizes)
    assert (assignment["big-pdf"], assignment["mid-pdf"], assignment["small-md"]) == ("train", "validation", "test")
