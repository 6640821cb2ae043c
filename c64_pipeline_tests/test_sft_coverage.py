"""The yardstick: key facts of a reader's question/answer pair, and whether a mined conversation answers it."""

from __future__ import annotations

from c64_pipeline.datasets.sft import build_conversations, mine_facts
from c64_pipeline.datasets.report import no_sft_reason
from c64_pipeline.datasets.sft_coverage import answering_conversation, key_facts, mine_document, states
from c64_pipeline.ingest.extraction import PageText

PAGE = {"doc_id": "mapping-txt", "page": 3, "method": "text_layer", "text": "\n".join([
    "$D020        EXTCOL       Border Color Register",
    "$D021        BGCOL0       Background Color 0",
    "$D022        BGCOL1       Background Color 1",
])}


def test_key_facts_are_hex_values_numbers_and_capitalised_names():
    facts = key_facts("EXTCOL (Border Color Register)", "What is the label of $D020 in the I/O map?")
    assert facts.hex_values == {0xD020}
    assert facts.names == {"extcol", "border", "color", "register"}
    lines = key_facts("Lines 300-15 (312 lines total, 0-311)")
    assert lines.numbers == {"300", "15", "312", "0", "311"} and lines.names == set()  # "Lines" opens the answer
    assert key_facts("0x01").hex_values == {1} and key_facts("0x01").numbers == set()


def test_an_answer_without_hex_numbers_or_names_falls_back_to_its_content_words():
    facts = key_facts("Send a byte to output channel")
    assert not facts.structured and facts.words == {"send", "byte", "output", "channel"}


def test_hex_is_compared_by_value_and_words_as_whole_words():
    facts = key_facts("EXTCOL (Border Color Register)", "label of $D020?")
    assert states("It is at $d020, the EXTCOL register: border color register.", facts)
    assert not states("It is at $D021, the EXTCOL register: Border Color Register.", facts)
    assert not states("It is at $D020, EXTCOLOR: Border Color Register.", facts)


def test_a_mined_conversation_answers_the_pair_only_about_its_subject_and_from_its_document():
    conversations = build_conversations(mine_facts([PAGE]), "system")
    answer, question = "EXTCOL (Border Color Register)", "What is the label of $D020 in the Mapping I/O map?"
    hit = answering_conversation(answer, "mapping-txt", conversations, question)
    assert hit is not None and any(r["doc_id"] == "mapping-txt" and "$D020" in r["evidence"] for r in hit.source_refs)
    assert answering_conversation(answer, "another-book-txt", conversations, question) is None
    assert answering_conversation("BGCOL1", "mapping-txt", conversations, "What is at $D021?") is None


def test_mine_document_reads_page_records_as_it_reads_page_dicts():
    record = PageText(PAGE["doc_id"], PAGE["page"], PAGE["text"], PAGE["method"], 1.0, None, len(PAGE["text"]))
    empty = PageText("mapping-txt", 4, "$D023 | EXTCOL | Border", "none", 0.0, "no text", 0)  # no text: not mined
    from_records = mine_document([record, empty], "system")
    assert from_records == mine_document([PAGE], "system") and from_records[1]["conversations"] > 0


def test_mine_document_reports_candidates_next_to_conversations():
    conversations, outcome = mine_document([PAGE])
    assert outcome["candidates"] == 3 and outcome["conversations"] == len(conversations) > 0
    prose = dict(PAGE, text="The border colour can be changed from BASIC with a POKE.")
    assert mine_document([prose]) == ([], {"candidates": 0, "conversations": 0, "rejections": {}})


def test_mine_document_counts_the_rows_it_refuses_by_reason():
    page = {"doc_id": "d-txt", "page": 1, "method": "text_layer",
            "text": "$A000 | 40960 | ram ram ram ram\n$C000 | 49152 | xq zv 7647 oe\n"
                    "LDA #$10 | Immediate | $A9 | 168 | 2 | 2\n$D020 | 53280 | EXTCOL | Border colour\n"}
    conversations, outcome = mine_document([page])
    assert conversations and outcome["candidates"] == 4  # one row taught, three refused
    assert outcome["rejections"] == {"address row whose cells repeat (not a description)": 1,
                                     "address row whose description is debris": 1,
                                     "opcode row whose decimal column disagrees with its hex opcode": 1}
    # a document whose every row is refused says so, with the reasons
    _, refused = mine_document([{**page, "text": "$A000 | 40960 | ram ram ram ram\n"}])
    assert refused["candidates"] == 1 and refused["rejections"] and no_sft_reason(refused).startswith("all 1 mined rows rejected")
