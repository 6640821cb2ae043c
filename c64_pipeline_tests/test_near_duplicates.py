import random

import pytest

from c64_pipeline.datasets.near_duplicates import NearDuplicatePair, cross_split_near_duplicates, shingles

VOCAB = [f"w{i}" for i in range(5000)]


def text(seed: int, n: int = 300) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def edit(t: str, positions: list[int]) -> str:
    words = t.split()
    for p in positions:
        words[p] = "changed"
    return " ".join(words)


def test_shingles():
    assert shingles("A b  C d\nE f", k=5) == {"a b c d e", "b c d e f"}
    assert shingles("Too  SHORT text", k=5) == {"too short text"}
    assert shingles("   ") == set()


def test_exact_and_edited_copies_across_splits_are_found():
    base, other = text(1), text(2)
    items = [
        ("train-1", "train", base),
        ("train-2", "train", other),
        ("test-copy", "test", base),
        ("val-edited", "validation", edit(other, [40, 150, 260])),
        ("test-unrelated", "test", text(3)),
    ]
    pairs = cross_split_near_duplicates(items)
    assert [(p.left_id, p.right_id) for p in pairs] == [("train-1", "test-copy"), ("train-2", "val-edited")]
    assert pairs[0].similarity == 1.0
    assert 0.8 <= pairs[1].similarity < 1.0


def test_unrelated_texts_are_not_paired():
    items = [(f"tr{i}", "train", text(i)) for i in range(50)] + [(f"te{i}", "test", text(100 + i)) for i in range(50)]
    assert cross_split_near_duplicates(items) == []


def test_same_split_duplicates_are_ignored():
    t = text(7)
    items = [("a", "train", t), ("b", "train", t), ("c", "test", text(8)), ("d", "test", text(8)), ("e", "validation", text(8))]
    assert cross_split_near_duplicates(items) == []


def test_short_texts_and_empty_texts():
    items = [("a", "train", "POKE 53280,0"), ("b", "test", "poke   53280,0"), ("c", "train", ""), ("d", "test", " ")]
    assert cross_split_near_duplicates(items) == [NearDuplicatePair("a", "b", 1.0)]


def test_deterministic_regardless_of_input_order():
    base = [text(i) for i in range(20)]
    items = [(f"tr{i}", "train", t) for i, t in enumerate(base)]
    items += [(f"te{i}", "test", edit(t, [i * 10 + 5])) for i, t in enumerate(base[:10])]
    first = cross_split_near_duplicates(items)
    assert len(first) == 10
    assert cross_split_near_duplicates(list(reversed(items))) == first
    assert cross_split_near_duplicates(items) == first


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="unknown split"):
        cross_split_near_duplicates([("a", "valid", "x")])
    with pytest.raises(ValueError, match="duplicate item id"):
        cross_split_near_duplicates([("a", "train", "x"), ("a", "test", "x")])


def test_recall_just_above_the_threshold():
    # 4 words changed in 300 -> 20 of 296 shingles differ -> true Jaccard ~0.87.
    base = [text(1000 + i) for i in range(40)]
    items = [(f"tr{i:02}", "train", t) for i, t in enumerate(base)]
    items += [(f"te{i:02}", "test", edit(t, [30, 100, 170, 240])) for i, t in enumerate(base)]
    found = {(p.left_id, p.right_id) for p in cross_split_near_duplicates(items)}
    assert len(found) >= 39
    assert found <= {(f"tr{i:02}", f"te{i:02}") for i in range(40)}
