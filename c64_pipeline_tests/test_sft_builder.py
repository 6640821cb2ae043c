import re

from c64_pipeline.datasets.sft import build_conversations, mine_facts
from c64_pipeline.datasets.sft.kernal import Routine
from c64_pipeline.datasets.sft.registers import parse_fact_line
from c64_pipeline.conversation import parse_assistant_turn
from c64_pipeline.datasets.think_metrics import think_stats

PAGE = """VIC-II registers
$D020 | 53280 | EXTCOL | Border colour (bits 0-3)
$D021 | 53281 | BGCOL0 | Background colour 0 (bits 0-3)
$D011 | 53265 | SCROLY | Vertical fine scroll and control register
$D016 | 53270 | SCROLX | Horizontal fine scroll and multicolour mode
$D418 | 54296 | SIGVOL | Volume and filter mode select
$A000-$BFFF | 40960-49151 | BASIC interpreter ROM
$0400-$07FF | 1024-2047 | Default screen memory
CHROUT at $FFD2 prints the character held in the accumulator.
GETIN at $FFE4 reads one character from the keyboard buffer.
Some prose without any address at all, and a line with $D000 and $D001 both.
"""


def test_rows_are_parsed_and_decimal_cross_checked():
    assert parse_fact_line("$D020 | 53280 | EXTCOL | Border colour (bits 0-3)") == (
        0xD020, None, True, "EXTCOL", "Border colour (bits 0-3)")
    address, end, confirmed, name, description = parse_fact_line("$A000-$BFFF | 40960-49151 | BASIC interpreter ROM")
    assert (address, end, confirmed, name) == (0xA000, 0xBFFF, True, None) and description == "BASIC interpreter ROM"
    # an OCR misread that breaks the hex/decimal agreement is not taken as confirmed
    assert parse_fact_line("$D020 | 53281 | EXTCOL | Border colour")[2] is False
    assert parse_fact_line("Some prose without any address") is None
    assert parse_fact_line("$D000 and $D001 are sprite 0 X and Y") is None


def test_mined_examples_are_grounded_and_well_formed():
    facts = mine_facts([{"doc_id": "vic-pdf", "page": 7, "text": PAGE, "method": "text_layer"}])
    assert len(facts) == 9
    assert isinstance(next(f for f in facts if f.name == "CHROUT"), Routine)
    conversations = build_conversations(facts, "SYSTEM")
    assert any(sum(m["role"] == "assistant" for m in c.messages) == 2 for c in conversations)
    for conversation in conversations:
        assert conversation.messages[0] == {"role": "system", "content": "SYSTEM"}
        for ref in conversation.source_refs:
            assert ref["page"] == 7 and ref["evidence"] in PAGE
        for message in conversation.messages:
            if message["role"] == "assistant":
                parsed = parse_assistant_turn(message["content"])
                assert parsed.ok, parsed.problem
                # the answer carries the address the evidence row gives
                evidence = " ".join(r["evidence"] for r in conversation.source_refs)
                assert set(re.findall(r"\$[0-9A-F]{4}", parsed.answer)) <= set(re.findall(r"\$[0-9A-F]{4}", evidence))


def test_every_fact_is_asked_from_every_side_once():
    facts = mine_facts([{"doc_id": "vic-pdf", "page": 7, "text": PAGE, "method": "text_layer"}])
    conversations = build_conversations(facts, "SYSTEM", multi_turn_every=2)
    turns = [m["content"] for c in conversations for m in c.messages if m["role"] == "assistant"]
    assert len(turns) == len(set(turns)) == sum(len(f.kinds()) for f in facts)
    questions = [m["content"] for c in conversations for m in c.messages if m["role"] == "user"]
    assert any("$D020" in q for q in questions) and any("border colour" in q.lower() for q in questions)
    assert any("POKE" in q or "decimal" in q for q in questions)


def test_descriptions_continue_onto_their_wrapped_lines():
    text = "\n".join([
        "$D017 | 53271 | YXPAND Sprite vertical expansion, bit n doubles the height",
        "",
        "of sprite n",
        "$D018 | 53272 | VMCSB | Memory pointers",
        "$028A | 650 | RPTFLG Key repeat mode: $80 repeats all keys, $40",
        "no keys, 0 only cursor, space and delete",
        "keys",
        "$D020 | 53280 | EXTCOL | Border colour (bits 0-3)",
        "The border is the frame around the text area.",
        "PLOT at $FFF0 reads or sets the",
        "cursor position. Called with the carry set, it returns the row in X.",
    ])
    facts = {f.name: f for f in mine_facts([{"doc_id": "m", "page": 1, "text": text, "method": "text_layer"}])}
    assert facts["YXPAND"].description == "Sprite vertical expansion, bit n doubles the height of sprite n"
    assert facts["YXPAND"].evidence in text and facts["YXPAND"].evidence.endswith("of sprite n")
    assert facts["VMCSB"].description == "Memory pointers"
    assert facts["RPTFLG"].description.endswith("$40 no keys, 0 only cursor, space and delete keys")
    assert facts["EXTCOL"].description == "Border colour (bits 0-3)"  # the sentence below is not its continuation
    assert facts["PLOT"].description == "reads or sets the cursor position"


def test_reasoning_walks_the_arithmetic():
    facts = mine_facts([{"doc_id": "m", "page": 1, "text": "$A000-$BFFF | 40960-49151 | BASIC interpreter ROM", "method": "text_layer"}])
    reasoning = facts[0].turn("range").reasoning
    assert "8192 bytes" in reasoning and "8 KB" in reasoning
    routine = mine_facts([{"doc_id": "k", "page": 2, "text": "CHROUT at $FFD2 prints a character.", "method": "text_layer"}])[0]
    assert "$FFD2 = 15*4096 + 15*256 + 13*16 + 2*1 = 65490" in routine.turn("routine").reasoning


def test_builder_is_deterministic_and_not_templated():
    pages = [{"doc_id": "vic-pdf", "page": 7, "text": PAGE, "method": "ocr"}]
    first = build_conversations(mine_facts(pages), "S")
    assert first == build_conversations(mine_facts(pages), "S")
    stats = think_stats(first)
    assert stats.coverage == 1.0 and stats.distinct_ratio == 1.0
    assert stats.top_skeleton_share < 0.5


def test_rows_from_ocr_debris_and_wrapped_prose_are_not_facts():
    assert parse_fact_line("466.16 | 7938 | $1F02 | oe | ee 7647") is None
    assert parse_fact_line("columns and bit 3 of $D011 reduces") is None
    assert parse_fact_line("sits in the upper four bits of $D417.") is None


def test_table_layouts_of_real_references():
    # plain-text reference with space-aligned columns (as in Mapping the C64)
    assert parse_fact_line("$D020        EXTCOL       Border Color Register") == (
        0xD020, None, False, "EXTCOL", "Border Color Register")
    # a size column is not part of the description; an empty bracket left by an address is dropped
    assert parse_fact_line("$0200-$02FF | 512-767 | 256 bytes | BASIC input buffer (  )")[4] == "BASIC input buffer"
    # a register name glued to the start of the description cell
    assert parse_fact_line("$028D | 653 | SHFLAG Shift key state")[3:] == ("SHFLAG", "Shift key state")
