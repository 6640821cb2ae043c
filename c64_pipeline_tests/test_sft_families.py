"""The SFT knowledge families: each mined from the layout real manuals use, each answer grounded on its cited lines."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from c64_pipeline.datasets.sft import build_conversations, mine_facts
from c64_pipeline.datasets.sft.grounding import conversation_grounding_problems, ungrounded_facts
from c64_pipeline.datasets.sft.registers import parse_fact_line
from c64_pipeline.demo.model import SAMPLE_SOURCES
from c64_pipeline.datasets.think_metrics import parse_assistant_turn, think_stats


def page(text: str, doc_id: str = "manual-pdf", number: int = 3, method: str = "text_layer") -> dict:
    return {"doc_id": doc_id, "page": number, "text": text, "method": method}


def conversations_of(text: str, family: str | None = None, **kw) -> list[dict]:
    convs = build_conversations(mine_facts([page(text, **kw)]), "SYSTEM")
    return [c for c in convs if family is None or c["family"] == family]


def turns(convs: list[dict]) -> list[tuple[str, str, str]]:
    """(question, reasoning, answer) of every turn."""
    out = []
    for c in convs:
        msgs = c["messages"]
        for q, a in zip(msgs[1::2], msgs[2::2]):
            parsed = parse_assistant_turn(a["content"])
            assert parsed.ok, parsed.problem
            out.append((q["content"], parsed.reasoning, parsed.answer))
    return out


MEMORY_MAP = """Table 2-4. Video and colour registers.
Address  Dec    Bits 7 6 5 4 3 2 1 0   Description
$D020  | 53280 | EXTCOL | Border colour, bits 0-3
$D021  | 53281 | 33 - - - - Background colour 0
$D800-$DBFF | 55296-56319 | Colour RAM, one nybble per character
$0288  | 648 | HIBASE | High byte of screen memory for the editor, normally 4
$0314-$0315 | 788-789 | CINV | Hardware IRQ vector, default $EA31
$A000 | 40960 | ram ram ram ram
$FFC3 | 65475 | CLOSE | close a specified logical file
"""


def test_register_rows_name_registers_and_locations_and_drop_debris():
    convs = conversations_of(MEMORY_MAP, "register")
    answers = " ".join(a for _, _, a in turns(convs))
    questions = [q for q, _, _ in turns(convs)]
    assert "the EXTCOL register" in answers  # $D020 is a chip register
    assert "HIBASE location" in answers  # a memory cell is a location, not a register
    assert "- - - -" not in answers and "33 -" not in answers  # bit-column debris is dropped
    assert any("background colour 0" in q for q in questions)
    assert not any("ram ram" in q.lower() for q in questions)  # a row of repeated cells is not a description
    assert not any("close a specified" in q for q in questions)  # routines are not asked as memory contents


def test_register_questions_use_noun_phrases_only():
    assert parse_fact_line("$A000 | 40960 | ram ram ram ram") is None
    convs = conversations_of("$C000 | 49152 | Reads the clock and stores it in the buffer\n"
                             "$C100 | 49408 | Pointer to the start of the sprite table\n", "register")
    qs = [q for q, _, _ in turns(convs)]
    assert any("pointer to the start of the sprite table" in q for q in qs)
    assert not any("reads the clock" in q.lower() for q in qs)  # a verb phrase is asked about by address only
    assert any("$C000" in q for q in qs)


KERNAL_TABLE = """Table 6-1. KERNAL entry points.
Address | Decimal | Name | Purpose | Registers
$FFBA | 65466 | SETLFS | Set logical file number, device and secondary address | In: A file, X device, Y secondary address
$FFBD | 65469 | SETNAM | Set the file name for the next OPEN | In: A length, X/Y name address
$FFE4 | 65508 | GETIN | Get a character from the input channel | Out: A character, 0 if none
"""

KERNAL_ENTRY = """$FFCF  CHRIN   Read a byte from the input channel

  * Communication registers: A
  * Preparatory routines: (OPEN, CHKIN)
  * Error returns: 0 (See READST)
  * Registers affected: A, X

  **Description**: This routine reads a byte of data from a channel already
set up as the input channel.
"""

KERNAL_PROSE = """Printing text
CHROUT at $FFD2 sends the character in the accumulator to the
current output channel, which is normally the screen.
"""


def test_kernal_table_rows_give_call_address_and_registers():
    convs = conversations_of(KERNAL_TABLE, "kernal_routine", doc_id="kernal-pdf")
    qa = turns(convs)
    setlfs = [t for t in qa if "SETLFS" in t[0]]
    assert any("What must be in the registers" in q or "pass parameters" in q or "read on entry" in q for q, _, _ in setlfs)
    assert any("A = file, X = device, Y = secondary address" in a for _, _, a in setlfs)
    assert any("65466" in r and "$FFBA = " in r for _, r, _ in qa)  # SYS address worked out and cross-checked
    assert any("$FFBA + 3 = $FFBD" in r for _, r, _ in qa)  # jump-table slots are three bytes apart
    assert any("A = character, 0 if none" in a for _, _, a in qa if "GETIN" in a)
    assert all("register" not in a.split(":")[0] for _, _, a in qa)  # a routine is never called a register


def test_kernal_entry_blocks_give_preparatory_routines_and_errors():
    convs = conversations_of(KERNAL_ENTRY, "kernal_routine", doc_id="kernal-txt")
    qa = turns(convs)
    assert any("OPEN, CHKIN" in a for q, _, a in qa if "before" in q.lower())
    assert any(a.endswith("passes its data through: A.") for _, _, a in qa)
    assert any("0 (See READST)" in a for q, _, a in qa if "error" in q.lower())
    refs = {r["line"] for c in convs for r in c["source_refs"]}
    assert {1, 4, 5} <= refs  # the header and the labelled lines used are all cited


def test_kernal_sentences_are_routines_with_their_wrapped_lines():
    convs = conversations_of(KERNAL_PROSE, "kernal_routine")
    assert convs and convs[0]["source_refs"][0]["evidence"].endswith("current output channel, which is normally the screen.")
    assert any("send the character in the accumulator" in q for q, _, _ in turns(convs))


OPCODES = """Table 5-2. Opcodes (a + adds a cycle when a page boundary is crossed).
Instruction | Mode | Opcode | Decimal | Bytes | Cycles
LDA #$10 | Immediate | $A9 | 169 | 2 | 2
LDA $C000,X | Absolute,X | $BD | 189 | 3 | 4+
STA $FB | Zero page | $85 | 133 | 2 | 3
CMP $FB | Zero page | $CS | 197 | 2 | 3
BNE LOOP | Relative | $D0 | 207 | 2 | 2*
LDA | Load the accumulator from memory | NZ
STA | Store the accumulator in memory
"""


def test_instruction_tables_give_opcode_bytes_and_cycles_and_skip_misreads():
    convs = conversations_of(OPCODES, "instruction", doc_id="cpu-pdf")
    qa = turns(convs)
    text = " ".join(q + " " + a for q, _, a in qa)
    assert "$A9" in text and "$BD" in text and "$85" in text
    assert "CMP" not in text  # "$CS" is an OCR misread of $C5: no opcode
    assert "$D0" not in text  # the decimal column (207) disagrees with $D0 (208): rejected
    assert any(a.startswith("LDA: Load the accumulator") for _, _, a in qa)
    assert any("NZ" in a for q, _, a in qa if "flags" in q)
    reasoning = " ".join(r for _, r, _ in qa)
    assert re.search(r"1 \+ [12] = [23] bytes|\$[0-9A-F]{2} = \d+\*16 \+ \d+ = \d+|or 5 when", reasoning)


def test_plain_text_opcode_lists_are_read():
    convs = conversations_of("A9  LDA   #d8\nB1  LDA   (a8),Y\n6C  JMP   (a16)\n", "instruction")
    answers = " ".join(a for _, _, a in turns(convs))
    assert "immediate" in answers and "(indirect),y" in answers and "indirect" in answers


BASIC = """| Keyword | Token (hex) | Token (decimal) | Purpose |
|---------|-------------|-----------------|---------|
| GOSUB | $8D | 141 | Call a subroutine at a line number: `GOSUB 500` |
| POKE | $97 | 151 | Store a byte in memory: `POKE 53281,6` |
| CLR | $9C | 156 | Clear all variables and arrays |

| Message | Usual cause |
|---------|-------------|
| ?OUT OF DATA | READ has run past the last DATA item |
| ?BAD SUBSCRIPT | An array index beyond the dimensioned size |
"""


def test_basic_keywords_give_purpose_example_token_and_errors():
    qa = turns(conversations_of(BASIC, "basic_keyword", doc_id="basic-md"))
    assert any("POKE 53281,6" in a for q, _, a in qa if "example" in q.lower())
    assert any("$97 (151 decimal)" in a for _, _, a in qa)
    assert any(a.startswith("?OUT OF DATA") and "past the last DATA item" in a for _, _, a in qa)
    assert any("CLR" in q for q, _, _ in qa) and not any("example of CLR" in q for q, _, _ in qa)


PINOUT = """Figure 8-3. User port connector pin assignments
Pin | Signal | Function
1 | GND | Ground
2 | +5V | 5 volts, at most 100 mA
8 | PC2 | Handshake output from CIA 2
9 | ATN | Serial bus attention line
"""


def test_pinout_rows_give_pin_signal_and_function():
    qa = turns(conversations_of(PINOUT, "pinout"))
    assert any("pin 9" in q.lower() and "ATN" in a and "attention" in a for q, _, a in qa)
    assert any("PC2" in q and "pin 8" in a.lower() for q, _, a in qa)
    assert any("user port" in q.lower() for q, _, _ in qa)
    bits = conversations_of("Bit | Flag | Meaning\n7 | N | Negative result\n6 | V | Signed overflow\n", "pinout")
    assert bits == []  # a bit table is not a pinout


PROSE = """Sprites

The VIC-II displays up to eight sprites at once. Each sprite is a block
of 24 by 21 pixels. A sprite shape takes 63 bytes and is stored in a
64-byte block chosen by the sprite pointer.

Raster interrupts
A raster interrupt is a request the VIC-II raises when the beam reaches
a chosen line. The line is written to $D012, with bit 8 in $D011.
"""


def test_prose_gives_closed_book_statements_and_section_explanations():
    convs = conversations_of(PROSE, doc_id="vic-pdf")
    by_family = Counter(c["family"] for c in convs)
    assert by_family["section"] == 2 and by_family["definition"] >= 2
    qa = turns(convs)
    assert any(q == "How many bytes does a sprite shape take?" and "63 bytes" in a for q, _, a in qa)
    assert any(q == "What is a raster interrupt?" and a.startswith("A raster interrupt is a request") for q, _, a in qa)
    sections = turns([c for c in convs if c["family"] == "section"])
    assert any("raster interrupts" in q.lower() and "$D012" in a for q, _, a in sections)
    raster = next(c for c in convs if c["family"] == "section" and "Raster" in c["messages"][1]["content"] + c["messages"][2]["content"])
    assert raster["source_refs"][0]["line"] == 8 and "$D011" in raster["source_refs"][0]["evidence"]


ALL_SNIPPETS = [MEMORY_MAP, KERNAL_TABLE, KERNAL_ENTRY, KERNAL_PROSE, OPCODES, BASIC, PINOUT, PROSE]


@pytest.mark.parametrize("snippet", ALL_SNIPPETS, ids=lambda s: s.split("\n")[0][:30])
def test_every_answer_fact_is_on_a_cited_line(snippet):
    text_page = page(snippet)
    convs = build_conversations(mine_facts([text_page]), "SYSTEM")
    assert convs
    lines = snippet.split("\n")
    for c in convs:
        assert c["family"] and c["doc_id"] == "manual-pdf"
        for ref in c["source_refs"]:
            start = ref["line"] - 1
            assert ref["evidence"] == "\n".join(lines[start : start + ref["evidence"].count("\n") + 1]).strip()
        assert conversation_grounding_problems(c) == [], c


def test_grounding_check_catches_a_fact_that_is_not_on_the_cited_line():
    evidence = "$FFD2 | 65490 | CHROUT | Print the character in the accumulator"
    assert ungrounded_facts("CHROUT at $FFD2 prints A.", "", evidence) == []
    assert ungrounded_facts("CHROUT at $FFD5 prints A.", "", evidence) == ["$FFD5"]
    assert ungrounded_facts("CHRIN is at $FFD2.", "", evidence) == ["CHRIN"]
    assert ungrounded_facts("It spans 8192 bytes.", "", evidence) == ["8192"]
    assert ungrounded_facts("It spans 8192 bytes.", "Size: $BFFF - $A000 + 1 = 8192 bytes", evidence) == []


def _sample_sources() -> list[dict]:
    from c64_pipeline.ingest.extraction import ExtractionSettings, extract_document

    pages = []
    for path in sorted(SAMPLE_SOURCES.iterdir()):
        if path.suffix in (".md", ".html"):
            pages += [p.as_dict() for p in extract_document(path.stem, path, path.suffix.lstrip("."), ExtractionSettings())]
    return pages


def test_sample_manuals_teach_every_family_with_diverse_grounded_reasoning():
    convs = build_conversations(mine_facts(_sample_sources()), "SYSTEM")
    stats = think_stats(convs)
    assert stats.coverage == 1.0 and stats.distinct_ratio >= 0.9 and stats.top_skeleton_share <= 0.05
    assert stats.distinct_skeletons >= stats.well_formed / 2
    assert {"register", "kernal_routine", "instruction", "basic_keyword", "definition", "section"} <= set(stats.by_family)
    for family, figures in stats.by_family.items():
        assert figures["distinct_ratio"] >= 0.9, family
        assert figures["top_skeleton_share"] <= 0.1, (family, figures)
        assert figures["distinct_skeleton_ratio"] >= 0.5, (family, figures)
    assert all(conversation_grounding_problems(c) == [] for c in convs)
    # answers stay short enough for the demo model's 768-token window
    assert max(len(m["content"].split()) for c in convs for m in c["messages"] if m["role"] == "assistant") < 200


def test_a_location_that_mentions_a_register_is_still_a_location():
    qa = turns(conversations_of("$030E | 782 | SYREG | Y register value loaded before SYS\n"
                                "$DC0E | 56334 | CIACRA | Control Register A\n", "register"))
    answers = " ".join(a for _, _, a in qa)
    assert "the SYREG location" in answers and "the CIACRA register" in answers


def test_a_sentence_that_ends_on_a_number_is_not_a_heading():
    text = ("The character ROM appears to the chip in bank 0 and in bank\n"
            "2. This is why screen memory at\n"
            "$0400 and the character set can be used together without any banking.\n")
    assert [c for c in conversations_of(text) if c["family"] == "section"] == []
