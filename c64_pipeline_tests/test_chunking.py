import pytest

from c64_pipeline.datasets.chunking import chunk_documents, join_pages


def test_join_pages_records_page_starts():
    text, starts, numbers = join_pages([(1, "abc"), (2, ""), (3, "def")])
    assert text == "abc\n\ndef" and list(starts) == [0, 5] and list(numbers) == [1, 3]


def test_windows_cover_every_token_and_carry_pages(tiny_tokenizer):
    pages = [(n, f"Page {n}: POKE 53280,{n} sets the border colour at $D020. " * 30) for n in range(1, 6)]
    chunks = chunk_documents({"manual-pdf": pages}, tiny_tokenizer, max_tokens=128, overlap=16)
    text, _, _ = join_pages(pages)
    all_ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert all(c.token_count <= 128 for c in chunks)
    # windows overlap by `overlap` tokens; together they hold every token of the document, none dropped
    assert sum(c.token_count for c in chunks) - 16 * (len(chunks) - 1) == len(all_ids)
    assert chunks[0].page_start == 1 and chunks[-1].page_end == 5
    assert all(c.page_start <= c.page_end for c in chunks)
    assert chunks[0].text.startswith("Page 1: POKE 53280,1")
    assert [c.chunk_id for c in chunks[:2]] == ["manual-pdf:0000", "manual-pdf:0001"]


def test_short_documents_give_one_chunk_each_and_keep_case(tiny_tokenizer):
    chunks = chunk_documents({"b": [(1, "LDA #$0F")], "a": [(2, "STA $D020")]}, tiny_tokenizer)
    assert [(c.doc_id, c.text, c.page_start) for c in chunks] == [("a", "STA $D020", 2), ("b", "LDA #$0F", 1)]


def test_overlap_must_be_sane(tiny_tokenizer):
    with pytest.raises(ValueError):
        chunk_documents({"a": [(1, "x")]}, tiny_tokenizer, max_tokens=64, overlap=40)


def test_windows_are_the_tokenizers_own_overflow_windows(tiny_tokenizer):
    """The chunker reads windows off one encoding per document; they match the tokenizer's overflow with stride."""
    words = ["LDA", "#$0F", "STA", "$D020", "border", "colour", "53280", "POKE", "raster", "interrupt", "sprite"]
    documents = {f"doc{d}": [(p, " ".join(words[(d * 7 + p * 3 + i) % len(words)] for i in range(40 * (p + d)))) for p in range(1, 5)]
                 for d in range(4)}
    for max_tokens, overlap in ((64, 0), (100, 49), (128, 16)):
        chunks = chunk_documents(documents, tiny_tokenizer, max_tokens, overlap)
        expected = []
        for doc_id in sorted(documents):
            text, _, _ = join_pages(documents[doc_id])
            encoded = tiny_tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_tokens,
                                     stride=overlap, return_overflowing_tokens=True, return_offsets_mapping=True)
            expected += [(doc_id, text[o[0][0]:o[-1][1]], len(ids))
                         for ids, o in zip(encoded["input_ids"], encoded["offset_mapping"]) if ids]
        assert [(c.doc_id, c.text, c.token_count) for c in chunks] == expected
        assert len(expected) > len(documents)  # several windows per document
