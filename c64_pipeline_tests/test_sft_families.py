"""The SFT knowledge families: each mined from the layout real manuals use, each answer grounded on its cited lines."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from c64_pipeline.datasets.sft import build_conversations, mine_facts
from c64_pipeline.datasets.sft.grounding import conversation_grounding_problems, ungrounded_facts
from c64_pipeline.datasets.sft.registers import parse_fact_line
from c64_pipeline.demo.model import SAMPLE_SOURCES
from c64_pipeline.conversation import parse_assistant_turn
from c64_pipeline.datasets.think_metrics import think_stats


def page(text: str, doc_id: str = "manual-pdf", number: int = 3, method: str = "text_layer") -> dict:
    return {"doc_id": doc_id, "page": number, "text": text, "method": method}


def conversations_of(text: str, family: str | None = None, **kw) -> list[dict]:
    convs = build_conversations(mine_facts([page(text, **kw)]), "SYSTEM")
    return [c for c in convs if family is None or c.family == family]


def turns(convs: list[dict]) -> list[tuple[str, str, str]]:
    """(question, reasoning, answer) of every turn."""
    out = []
    for c in convs:
        msgs = c.messages
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
    refs = {r["line"] for c in convs for r in c.source_refs}
    assert {1, 4, 5} <= refs  # the header and the labelled lines used are all cited


def test_kernal_sentences_are_routines_with_their_wrapped_lines():
    convs = conversations_of(KERNAL_PROSE, "kernal_routine")
    assert convs and convs[0].source_refs[0]["evidence"].endswith("current output channel, which is normally the screen.")
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
    by_family = Counter(c.family for c in convs)
    assert by_family["section"] == 2 and by_family["definition"] >= 2
    qa = turns(convs)
    assert any(q == "How many bytes does a sprite shape take?" and "63 bytes" in a for q, _, a in qa)
    assert any(q == "What is a raster interrupt?" and a.startswith("A raster interrupt is a request") for q, _, a in qa)
    sections = turns([c for c in convs if c.family == "section"])
    assert any("raster interrupts" in q.lower() and "$D012" in a for q, _, a in sections)
    raster = next(c for c in convs if c.family == "section" and "Raster" in c.messages[1]["content"] + c.messages[2]["content"])
    assert raster.source_refs[0]["line"] == 8 and "$D011" in raster.source_refs[0]["evidence"]


BIT_ROWS = """$D418                     Select Filter Mode and Volume

                     7    Cut-Off Voice 3 Output: 1 = Off, 0 = On
                     6    Select Filter High-Pass Mode: 1 = On
                     3-0  Select Output Volume: 0-15

$DD00                     Data Port A (Serial Bus, RS-232, VIC
                            Memory Control)

                     7    Serial Bus Data Input
                     1-0  VIC Chip System Memory Bank Select
                            (Default = 11)
"""


def test_bit_rows_under_a_register_give_the_bits_their_mask_and_the_register():
    convs = conversations_of(BIT_ROWS, "bit_field")
    qa = turns(convs)
    answers = [a for _, _, a in qa]
    assert "Bits 3-0 of $D418, Select Filter Mode and Volume: Select Output Volume: 0-15." in answers
    assert any(a.startswith("Bit 7 of $D418") and "1 = Off, 0 = On" in a for a in answers)
    # a register row and a bit row that wrapped onto the next line are read whole
    assert "Bits 1-0 of $DD00, Data Port A (Serial Bus, RS-232, VIC Memory Control): VIC Chip System Memory Bank Select (Default = 11)." in answers
    reasoning = " ".join(r for _, r, _ in qa)
    assert "%00001111 = $0F = 15" in reasoning and "%10000000 = $80 = 128" in reasoning
    for c in convs:  # the register row is cited with the bit row
        assert c.source_refs[0]["evidence"].startswith("$D") and len(c.source_refs) == 2
    # the register rows themselves stay register facts
    assert any("$D418" in a for _, _, a in turns(conversations_of(BIT_ROWS, "register")))


BIT_COLUMNS = """# MOS 6526 CIA (timers)

| REG | Name | Description        | 7 | 6 | 5      | 4    | 3       | 2       | 1    | 0     |
|:----|:-----|:-------------------|--:|--:|-------:|-----:|--------:|--------:|-----:|------:|
| E   | CRA  | Control register A |   |   | INMODE | LOAD | RUNMODE | OUTMODE | PBON | START |
|     |      |                    |   |   |        |      |         |         |      |       |
| D   | ICR  | Interrupt control  |   |   |        |      |         |         | TB   | TA    |
"""


def test_a_register_table_with_a_column_per_bit_names_each_bit():
    qa = turns(conversations_of(BIT_COLUMNS, "bit_field"))
    answers = [a for _, _, a in qa]
    assert "CRA (register E, Control register A): bit 5 INMODE, bit 4 LOAD, bit 3 RUNMODE, bit 2 OUTMODE, bit 1 PBON, bit 0 START." in answers
    assert any(a.startswith("ICR (register D") and a.endswith("bit 1 TB, bit 0 TA.") for a in answers)
    assert len(answers) == 2  # the empty row teaches nothing
    assert any("MOS 6526 CIA" in q for q, _, _ in qa)


def test_a_range_is_answered_by_both_ends_and_its_label():
    qa = turns(conversations_of("$00A0-$00A2  TIME    Real-Time Jiffy Clock (approx) 1/60 Sec\n"
                                "$0314-$0315  CINV    Vector: Hardware Interrupt\n", "register"))
    answers = [a for _, _, a in qa]
    assert all("$00A0-$00A2" in a for a in answers if "$00A0" in a) and any("(TIME)" in a for a in answers)
    assert "$0314-$0315 (CINV): Vector: Hardware Interrupt." in answers
    assert not any("register for" in a for a in answers)  # a range of addresses is an area


SECTIONS = """## How interrupts work

The processor has two interrupt pins, both active low. Each pin has a detector that is polled
once per instruction, near its end.

The IRQ detector is activated by the IRQ pin being held low, but only while the I flag is clear.
The NMI detector is activated by a negative transition of the NMI pin, so the pin has to go high
again before it can fire once more.
"""


def test_every_paragraph_of_a_section_is_taught_and_asked_by_what_it_opens_with():
    convs = conversations_of(SECTIONS, "section")
    qa = turns(convs)
    assert len(qa) == 2
    assert any(q.lower().count("how interrupts work") and a.startswith("The processor has two interrupt pins") for q, _, a in qa)
    later = next((q, a) for q, _, a in qa if a.startswith("The IRQ detector"))
    assert "the IRQ detector" in later[0] and "negative transition of the NMI pin" in later[1]


ENTRY_PROSE = """$D011        SCROLY       Vertical Fine Scrolling and Control Register

                     0-2  Fine scroll display vertically by X scan lines (0-7)
                     3    Select a 24-row or 25-row text display (1=25 rows)

                          This is one of the two important multifunction control registers on
                          the VIC-II chip.  Its default value is 155, which sets the high bit of
                          the raster compare and selects a 25-row display.
"""


def test_a_memory_map_entry_heads_the_indented_prose_that_explains_it():
    convs = conversations_of(ENTRY_PROSE, "section")
    assert len(convs) == 1
    q, _, a = turns(convs)[0]
    assert "SCROLY ($D011)" in q and a.startswith("This is one of the two important") and "155" in a
    assert any(r["line"] == 1 for r in convs[0].source_refs)  # the entry row is cited with the prose
    assert conversation_grounding_problems(convs[0]) == []


def test_prose_typed_with_two_spaces_after_a_full_stop_is_not_a_table():
    text = ("Timers\n\nThe chip has two timers.  Each one counts down from a sixteen-bit value and\n"
            "raises an interrupt when it reaches zero.  Both can be chained.\n")
    answers = [a for _, _, a in turns(conversations_of(text, "section"))]
    assert answers and "Each one counts down from a sixteen-bit value" in answers[0]


def test_counted_statements_are_asked_as_closed_book_questions():
    text = "Opcodes\n\nThe chip was designed in 1975. 151 opcodes are documented, the remaining 105 have undocumented behavior.\n"
    qa = turns(conversations_of(text, "definition"))
    assert any(q == "How many opcodes are documented?" and "151" in a and "105" in a for q, _, a in qa)


TABLES = """### Lines

| VIC version      | Cycles    | Lines total | VBlank | Visible |
|:-----------------|:----------|:------------|:-------|:--------|
| 6567r8 (NTSC)    | 65 (1-65) | 263 (0-262) | 13-40  | 235     |
| 6569 (PAL)       | 63 (1-63) | 312 (0-311) | 300-15 | 284     |

## Useful codes

| Code | Effect | Code | Effect |
|------|--------|------|--------|
| 13 | Carriage return | 147 | Clear the screen |
| 17 | Cursor down | 145 | Cursor up |
"""


def test_table_rows_answer_a_cell_with_the_rest_of_its_row():
    qa = turns(conversations_of(TABLES, "table_row"))
    answers = [a for _, _, a in qa]
    assert any(a.startswith("For VIC version 6569 (PAL), ") and "VBlank 300-15" in a.replace("is 300-15", "VBlank 300-15")
               and "312 (0-311)" in a for a in answers)
    # a table printed in two blocks side by side: each block is a row of its own, never mixed with its neighbour
    assert any("Code 147" in a and "Clear the screen" in a for a in answers)
    assert not any("13" in a.split("(")[0] and "Clear the screen" in a for a in answers)
    assert any(re.search(r"\d+ - \d+ \+ 1 = \d+", r) for _, r, _ in qa)  # a range counted in the reasoning


DIP = """Vcc O 1 | 28 tJ GND
RDY Oj 2 | 27
NMI Cf 3 | 26 O Extern in
DB 30) 4 | 25
ZQX O 5 | 24
R/W O 7 | 22 0 7
AB 8 | 22
Cap lb 3 | 2f tJ Audio out
"""


def test_dip_pin_diagrams_keep_only_pins_whose_numbers_face_consistently_and_known_names():
    qa = turns(conversations_of(DIP, "pinout", doc_id="chip-pinout-pdf", method="ocr"))
    answers = " ".join(a for _, _, a in qa)
    assert re.search(r"RDY is pin 2|Pin 2 is RDY", answers) and re.search(r"R/W is pin 7|Pin 7 is R/W", answers)
    assert "DB" not in answers and "ZQX" not in answers  # a digit glued to the pin box; not a signal name
    assert "AB" not in answers  # 8 + 22 is not the 29 the other lines add up to
    assert any("2 + 27 = 29" in r for _, r, _ in qa)
    # a number OCR garbled ("2f") is worked out from the pin facing it, and only so
    assert any(a in ("Pin 26 is Audio out.", "Audio out is pin 26.") and "29 - 3 = 26" in r for _, r, a in qa)


CONNECTOR = """(6-PIN FEMALE DIN)
SERIAL BUS CN4

6 RESET
1 SRQIN
5 DATA
4 CLK
"""


def test_connector_pin_lists_cite_the_caption_that_names_the_connector():
    convs = conversations_of(CONNECTOR, "pinout")
    qa = turns(convs)
    assert any("SERIAL BUS CN4" in q and ("Pin 5 of SERIAL BUS CN4 is DATA." == a or a == "DATA is on pin 5 of SERIAL BUS CN4.")
               for q, _, a in qa)
    assert all(any(r["line"] == 2 for r in c.source_refs) for c in convs)


# a 28-pin package read as text: every line a pin of each side, names a reader finds in any pinout
DIP_28 = """CAS 1 | 28 VCC
RAS 2 | 27 Audio out
IRQ 3 | 26 Extern in
NMI 4 | 25 BA
AEC 5 | 24 CLK
RDY 6 | 23 GND
CLK 7 | 22 RDY
BA 8 | 21 AEC
NMI 9 | 20 IRQ
RAS 10 | 19 CAS
CAS 11 | 18 NMI
IRQ 12 | 17 RAS
AEC 13 | 16 BA
GND 14 | 15 RDY
"""

LIST_12 = """USER PORT CN2
1 GND
2 +5V
3 RESET
4 CNT1
5 SP1
6 CNT2
7 SP2
8 PC2
9 ATN
10 +9VAC
11 +9VAC
12 GND
"""


def _arithmetic_holds(reasoning: str) -> bool:
    """Every 'a + b = c', 'a - b = c' and 'a + b - c = d' in the reasoning adds up."""
    sums = re.findall(r"(\d+(?:\s*[-+]\s*\d+)+)\s*=\s*(\d+)", reasoning)
    return all(eval(expr) == int(result) for expr, result in sums)  # digits and +/- only, matched above


@pytest.mark.parametrize("text", [DIP_28, LIST_12], ids=["dip", "connector-list"])
def test_pins_that_differ_only_in_names_do_not_share_one_reasoning(text):
    convs = conversations_of(text, "pinout", doc_id="chip-pinout-pdf")
    qa = turns(convs)
    stats = think_stats(convs)
    pins = 2 * text.count("|") or len(re.findall(r"^\d+ ", text, re.MULTILINE))
    # fewer, better questions: the pins whose place on the package or in the list says something of its own
    assert len(qa) >= pins // 3
    assert stats.by_family["pinout"]["top_skeleton_share"] <= 1 / len(qa) and stats.distinct_ratio == 1.0
    for c, (_, reasoning, _) in zip(convs, qa):
        assert _arithmetic_holds(reasoning), reasoning
        cited = "\n".join(r["evidence"] for r in c.source_refs)
        # every neighbouring pin the reasoning names is on a line it cites
        for number, name in re.findall(r"pin (\d+) ([A-Z+][\w+/]*)", reasoning):
            assert re.search(rf"\b{number}\b.*{re.escape(name)}|{re.escape(name)}.*\b{number}\b", cited), (name, cited)
        assert conversation_grounding_problems(c) == [], c
    if "|" in text:
        assert any("the corner beside the notch" in r for _, r, _ in qa)
        assert any("27 + 2 = 29" in r and "Audio out" in a and "an output" in r for _, r, a in qa)


def test_memory_map_diagram_boxes_with_bare_ranges_are_areas():
    qa = turns(conversations_of("CIA 1 | DC00-DCFF\nUnused | DB00-DBFF\n1/0 2 | DF00-DFFF\n", "register", method="ocr"))
    answers = " ".join(a for _, _, a in qa)
    assert "$DC00-$DCFF" in answers and "CIA 1" in answers
    assert "DB00" not in answers and "DF00" not in answers


PROCEDURE = """$FFA2  SETTMO  Set IEEE bus card timeout flag

               ## How to Use:

               TO SET THE TIMEOUT FLAG

               1. Set bit 7 of the accumulator to 0.
               2. Call this routine.

               TO RESET THE TIMEOUT FLAG

               1. Set bit 7 of the
                  accumulator to 1.
               2. Call this routine.

$D019        VICIRQ       VIC Interrupt Flag Register

                          1.  The raster reaches the line written to the Raster Register.
                          2.  Two sprites touch.
"""


def test_numbered_procedures_are_taught_with_what_they_are_for():
    convs = conversations_of(PROCEDURE, "procedure")
    qa = turns(convs)
    assert len(qa) == 2  # the list under a memory location is a list of cases, not steps to follow
    by_task = {("reset" if "reset" in q else "set"): (q, a) for q, _, a in qa}
    assert "SETTMO routine ($FFA2)" in by_task["set"][0] and "set the timeout flag" in by_task["set"][0]
    assert by_task["set"][1] == "1. Set bit 7 of the accumulator to 0. 2. Call this routine."
    assert by_task["reset"][1] == "1. Set bit 7 of the accumulator to 1. 2. Call this routine."  # a wrapped step joined
    for c in convs:
        assert any(r["evidence"].startswith("$FFA2") for r in c.source_refs)  # the entry naming the routine is cited
        assert conversation_grounding_problems(c) == []


BIT_ITEMS = """$0001        R6510   Processor port

                     Bits:

                     * Bits #0-#2: Configuration for memory areas $A000-$BFFF and $D000-$DFFF. Values:
                     * %x00: RAM visible in all three areas.
                         * %x01: RAM visible at $A000-$BFFF.
                     * Bit #3: Datasette output signal level.
                     * Bit #5: Datasette motor control; 0 = On; 1 = Off.

                     Default: $37, %00110111.
"""


def test_bit_items_of_a_memory_map_entry_are_bit_fields_and_their_value_lists_are_skipped():
    answers = [a for _, _, a in turns(conversations_of(BIT_ITEMS, "bit_field"))]
    assert "Bits 2-0 of $0001 (R6510), Processor port: Configuration for memory areas $A000-$BFFF and $D000-$DFFF." in answers
    assert "Bit 5 of $0001 (R6510), Processor port: Datasette motor control; 0 = On; 1 = Off." in answers
    assert len(answers) == 3 and not any("%x00" in a for a in answers)


def test_bulleted_sentences_and_bold_labels_are_prose():
    text = ("## Registers\n\nThe clock has four registers of its own:\n"
            "* The SEC register holds two digits for the seconds count (3 + 4 bits).\n"
            "* The TODIN bit in control register A sets the expected input frequency on the TOD pin.\n\n"
            "## Description\n\n**Description**: This routine reads a byte from the serial bus and returns it in the accumulator.\n")
    answers = [a for _, _, a in turns(conversations_of(text))]
    assert any(a.startswith("The TODIN bit in control register A sets") for a in answers)
    assert any(a.startswith("This routine reads a byte from the serial bus") for a in answers)


def test_a_numbered_section_named_after_a_command_is_a_heading_and_generic_subjects_lead_no_question():
    text = ("2.16. DOS_CMD_COPY_UI_PATH (0x15)\n\n"
            "The Copy Path command is issued to continue using the path that was already opened in the file browser.\n\n"
            "The command is executed and then falls through to the Get Path command, which returns the current path.\n\n"
            "The status channel reads \u201c00,OK\u201d when the path could be copied to the data channel of the target.\n")
    qa = turns(conversations_of(text, "section"))
    assert any("DOS_CMD_COPY_UI_PATH (0x15)" in q and a.startswith("The Copy Path command is issued") for q, _, a in qa)
    assert not any("the command" in q.lower() or "about OK" in q for q, _, _ in qa)


PROPERTIES = """$002B-$002C  TXTTAB  Pointer to beginning of BASIC area

                     Default: $0801, 2049.

$0002                Unused

                     Default: $00.
"""


def test_labelled_defaults_are_asked_of_the_entry_they_stand_under():
    qa = turns(conversations_of(PROPERTIES, "entry_property"))
    assert len(qa) == 1  # the second default's entry names nothing a question could ask about
    q, r, a = qa[0]
    assert "TXTTAB ($002B-$002C)" in q and a == "Default of TXTTAB ($002B-$002C): $0801, 2049."
    assert "$0801 = 8*256 + 1*1 = 2049" in r


ALL_SNIPPETS = [MEMORY_MAP, KERNAL_TABLE, KERNAL_ENTRY, KERNAL_PROSE, OPCODES, BASIC, PINOUT, PROSE, BIT_ROWS, BIT_COLUMNS,
                SECTIONS, ENTRY_PROSE, TABLES, DIP, CONNECTOR, PROCEDURE, BIT_ITEMS, PROPERTIES]


@pytest.mark.parametrize("snippet", ALL_SNIPPETS, ids=lambda s: s.split("\n")[0][:30])
def test_every_answer_fact_is_on_a_cited_line(snippet):
    text_page = page(snippet)
    convs = build_conversations(mine_facts([text_page]), "SYSTEM")
    assert convs
    lines = snippet.split("\n")
    for c in convs:
        assert c.family and c.doc_id == "manual-pdf"
        for ref in c.source_refs:
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
    assert max(len(m["content"].split()) for c in convs for m in c.messages if m["role"] == "assistant") < 200


def test_a_location_that_mentions_a_register_is_still_a_location():
    qa = turns(conversations_of("$030E | 782 | SYREG | Y register value loaded before SYS\n"
                                "$DC0E | 56334 | CIACRA | Control Register A\n", "register"))
    answers = " ".join(a for _, _, a in qa)
    assert "the SYREG location" in answers and "the CIACRA register" in answers


def test_a_sentence_that_ends_on_a_number_is_not_a_heading():
    text = ("The character ROM appears to the chip in bank 0 and in bank\n"
            "2. This is why screen memory at\n"
            "$0400 and the character set can be used together without any banking.\n")
    assert [c for c in conversations_of(text) if c.family == "section"] == []


HEADINGS_OF_EVERY_SHAPE = """Why machine language?

Machine language programs run many times faster than BASIC programs. The processor executes each instruction
directly, without an interpreter between the program and the hardware.

How to read the keyboard

The KERNAL routine GETIN returns the next key from the keyboard buffer. A program calls it in a loop until the
accumulator holds a value other than zero.

In hexadecimal notation

Addresses are written with a dollar sign and four hexadecimal digits. The VIC-II registers start at $D000 and the
SID registers start at $D400.

Two chips, one design

The 6567 and the 6569 share the same register set. They differ in the number of raster lines and in the clock rate
of the dot clock.
"""


def test_section_questions_fit_the_shape_of_the_heading():
    questions = [q for q, _, _ in turns(conversations_of(HEADINGS_OF_EVERY_SHAPE, "section"))]
    assert "Why machine language?" in questions
    assert "How do I read the keyboard?" in questions
    titled = [q for q in questions if '"In hexadecimal notation"' in q or '"Two chips, one design"' in q]
    assert len(titled) == 2, questions
    assert not any(re.search(r"\b(about|on|explain) (in|why|how to|two chips)\b", q, re.I) for q in questions), questions
