import random

import pytest

from c64_pipeline.datasets.near_duplicates import document_families
from c64_pipeline.datasets.splits import SPLITS, SplitSettings, assign_splits, split_shares
from c64_pipeline_tests.conftest import ocr_noise


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


def test_a_few_new_documents_fill_train_with_the_most_text_and_every_split_gets_one():
    sizes = {"small-md": 500, "big-pdf": 90_000, "mid-pdf": 40_000, "tiny-txt": 100}
    assignment, _ = assign_splits(sizes, sizes=sizes)
    assert (assignment["big-pdf"], assignment["mid-pdf"]) == ("train", "train")
    assert sorted(assignment.values()) == ["test", "train", "train", "validation"]


# --- near-duplicate families and balance -----------------------------------------------------------------------


_TOPICS = ["sprite", "raster", "border", "voice", "filter", "timer", "keyboard", "joystick", "cassette", "serial",
           "bank", "charset", "bitmap", "interrupt", "stack", "vector", "cursor", "colour", "envelope", "paddle"]


def _manual(seed: int, paragraphs: int) -> str:
    """A synthetic reference of register rows and prose, distinct from every other seed's."""
    rng = random.Random(seed)
    lines = []
    for p in range(paragraphs):
        base = rng.randrange(0x0400, 0xFF00)
        topic = rng.choice(_TOPICS)
        lines.append(f"${base:04X}  {base}  {topic.upper()[:6]}{p}  {topic} control number {rng.randrange(1000)}")
        words = [rng.choice(_TOPICS + ["the", "of", "bit", "set", "clear", "read", "write", "value", "byte"]) for _ in range(40)]
        lines.append(" ".join(words) + ".")
    return "\n".join(lines)


def test_a_scan_and_its_digital_copy_are_one_family_and_share_a_split():
    texts = {f"manual-{i:02d}": _manual(i, 30 + 7 * i) for i in range(12)}
    texts["mapping-scan-pdf"] = ocr_noise(texts["manual-03"], 0.03, seed=7)  # a 3% character error rate
    texts["manual-05-excerpt"] = texts["manual-05"][: len(texts["manual-05"]) // 3]
    families = document_families(texts, SplitSettings().near_duplicate_containment)
    grouped = [f for f in families if len(f) > 1]
    assert grouped == [["manual-03", "mapping-scan-pdf"], ["manual-05", "manual-05-excerpt"]]
    sizes = {d: len(t) for d, t in texts.items()}
    for seed in ("a", "b", "c", "d", "e", "f"):  # whatever the hash order, the family never straddles
        assignment, _ = assign_splits(texts, settings=SplitSettings(seed=seed), sizes=sizes, families=families)
        assert assignment["manual-03"] == assignment["mapping-scan-pdf"]
        assert assignment["manual-05"] == assignment["manual-05-excerpt"]


def test_unrelated_manuals_on_the_same_topics_stay_apart():
    texts = {f"manual-{i:02d}": _manual(i, 60) for i in range(8)}
    assert all(len(f) == 1 for f in document_families(texts))


def test_a_family_split_by_an_old_ledger_is_brought_together_with_a_note():
    # the old splitter put two copies of one book in train and validation
    ids = ["mapping-a", "mapping-b", "prg", "kernal", "sid"]
    previous = {"mapping-a": "train", "mapping-b": "validation", "prg": "train", "kernal": "test", "sid": "validation"}
    sizes = {"mapping-a": 900, "mapping-b": 300, "prg": 500, "kernal": 100, "sid": 100}
    assignment, notes = assign_splits(ids, previous, sizes=sizes, families=[["mapping-a", "mapping-b"]])
    assert assignment["mapping-a"] == assignment["mapping-b"] == "train"
    assert {d: assignment[d] for d in ("prg", "kernal", "sid")} == {"prg": "train", "kernal": "test", "sid": "validation"}
    assert len(notes) == 1 and "mapping-b moved from validation to train" in notes[0] and "near-duplicate" in notes[0]


def test_a_new_copy_of_an_assigned_book_joins_its_split():
    ids = [f"doc-{i}" for i in range(10)]
    sizes = {d: 1000 + 100 * i for i, d in enumerate(ids)}
    assignment, _ = assign_splits(ids, sizes=sizes)
    held_out = next(d for d, s in assignment.items() if s != "train")
    sizes["scan-of-" + held_out] = 50_000  # large enough that on its own it would go to train
    new, notes = assign_splits([*ids, "scan-of-" + held_out], assignment, sizes=sizes,
                               families=[[held_out, "scan-of-" + held_out]])
    assert new["scan-of-" + held_out] == assignment[held_out] and not notes
    assert all(new[d] == s for d, s in assignment.items())


def test_adding_families_and_weighted_documents_never_moves_an_old_one():
    rng = random.Random(3)
    assignment: dict[str, str] = {}
    sizes: dict[str, int] = {}
    sft: dict[str, int] = {}
    families: list[list[str]] = []
    for batch in range(8):
        for i in range(rng.randrange(1, 4)):
            d = f"b{batch}-d{i}"
            sizes[d], sft[d] = rng.randrange(1_000, 200_000), rng.randrange(0, 400)
        if batch % 3 == 2:  # a copy of an earlier document arrives
            original = rng.choice(sorted(assignment))
            copy = f"copy-of-{original}-{batch}"
            sizes[copy], sft[copy] = sizes[original], sft[original]
            families.append([original, copy])
        new, notes = assign_splits(sizes, assignment, sizes=sizes, sft_sizes=sft, families=families)
        assert all(new[d] == s for d, s in assignment.items()) and not notes
        for original, copy in families:
            assert new[original] == new[copy]
        assignment = new


def test_twelve_documents_of_varied_sizes_give_each_held_out_split_a_real_share():
    rng = random.Random(11)
    ids = [f"manual-{i:02d}" for i in range(14)]
    sizes = {d: int(rng.lognormvariate(10, 1.2)) for d in ids}  # from a few KB to a few hundred KB
    sft = {d: int(sizes[d] / rng.uniform(150, 900)) for d in ids}  # conversations do not follow text size exactly
    assignment, _ = assign_splits(ids, sizes=sizes, sft_sizes=sft)
    for amounts in (sizes, sft):
        shares = split_shares(assignment, amounts)
        assert 0.05 <= shares["validation"] <= 0.15 and 0.05 <= shares["test"] <= 0.15, shares
    # the hash-only splitter this replaces could leave a held-out split with almost nothing
    assert set(assignment.values()) == set(SPLITS)


def test_the_same_weighted_inputs_give_the_same_assignment():
    ids = [f"m{i}" for i in range(20)]
    sizes = {d: (i * 7919) % 5000 + 100 for i, d in enumerate(ids)}
    first = assign_splits(ids, sizes=sizes, families=[["m1", "m2"]])
    assert first == assign_splits(list(reversed(ids)), sizes=dict(reversed(list(sizes.items()))), families=[["m2", "m1"]])


def test_an_empty_held_out_split_is_seeded_with_a_document_near_its_share_that_yields_sft():
    sizes = {"memory": 29_734, "kernal": 27_922, "sound": 27_522, "basic": 11_139, "history": 9_000}
    sft = {"memory": 176, "kernal": 126, "sound": 120, "basic": 33, "history": 0}
    assignment, _ = assign_splits(sizes, sizes=sizes, sft_sizes=sft)
    assert assignment["basic"] == "validation"  # about 10% of the text and 7% of the conversations
    assert assignment["history"] != "validation"  # as near in text, but it would leave validation without SFT
    assert set(assignment.values()) == set(SPLITS)


def test_an_empty_held_out_split_is_seeded_with_a_document_that_yields_enough_sft_to_measure():
    """One-paragraph notes (one conversation each) are closest to a held-out split's 10% of the text, but a split of
    one or two conversations measures nothing (the validation gate's minimum is 5): register references seed them."""
    sizes = {f"regs-{i}-md": 3000 for i in range(4)} | {f"note-{i}-md": 600 for i in range(3)}
    sft = {doc: 10 if doc.startswith("regs") else 1 for doc in sizes}
    unaware, _ = assign_splits(sizes, sizes=sizes, sft_sizes=sft)
    aware, _ = assign_splits(sizes, sizes=sizes, sft_sizes=sft, min_held_out_sft=5)
    held = {split: sum(sft[d] for d, s in aware.items() if s == split) for split in ("validation", "test")}
    assert min(held.values()) >= 5, aware
    assert sum(sft[d] for d, s in unaware.items() if s == "validation") < 5  # what the minimum prevents
    assert sum(sft[d] for d, s in aware.items() if s == "train") > sum(held.values())
    assert aware == assign_splits(sizes, sizes=sizes, sft_sizes=sft, min_held_out_sft=5)[0]  # deterministic
