import random

import pytest

from c64_pipeline.conversation import Conversation, parse_assistant_turn
from c64_pipeline.datasets.think_metrics import reasoning_skeleton, think_stats


def conv(*assistant_turns: str, question: str = "What is it?") -> Conversation:
    messages: list[dict] = [{"role": "system", "content": "You are a C64 expert."}]
    for turn in assistant_turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": turn}]
    return Conversation(tuple(messages))


# --- parsing ---------------------------------------------------------------------------------------------------


def test_well_formed_turn():
    p = parse_assistant_turn("  \n[THINK] The border colour is at $D020. [/THINK]\nPOKE 53280,0 ")
    assert p.ok and p.problem is None
    assert p.reasoning == "The border colour is at $D020."
    assert p.answer == "POKE 53280,0"


@pytest.mark.parametrize(
    "content, problem",
    [
        ("Just an answer.", "missing [THINK]"),
        ("reasoning[/THINK]answer", "missing [THINK]"),
        ("[THINK]a[/THINK][THINK]b[/THINK]answer", "two [THINK] blocks"),
        ("[THINK]a[/THINK]answer [THINK]", "two [THINK] blocks"),
        ("Sure! [THINK]a[/THINK]answer", "[THINK] not at start"),
        ("[THINK]reasoning and then the answer", "missing [/THINK]"),
        ("[THINK]a[/THINK]answer[/THINK]", "unbalanced markers"),
        ("[THINK]a[/THINK][/THINK]answer", "unbalanced markers"),
        ("[THINK]  \n [/THINK]answer", "empty reasoning"),
        ("[THINK][/THINK]answer", "empty reasoning"),
        ("[THINK]reasoning[/THINK]  \n", "empty final answer"),
        ("", "missing [THINK]"),
    ],
)
def test_malformed_turns(content, problem):
    p = parse_assistant_turn(content)
    assert not p.ok
    assert p.problem == problem


# Variants the tokenizer would not turn into its [THINK]/[/THINK] special tokens: they would stay raw text.
@pytest.mark.parametrize(
    "content",
    [
        "[think]reasoning[/think]answer",
        "[THINK]reasoning[/think]answer",
        "[ THINK ]reasoning[/THINK]answer",
        "[THINK]reasoning[/ THINK]answer",
        "<think>reasoning</think>answer",
        "[THINK]reasoning[/THINK]answer, then <think>",
        "[THINK]reasoning[/THINK]answer with a stray [/Think]",
        "\\[THINK\\]reasoning\\[/THINK\\]answer",
        "[THINKING]reasoning[/THINKING]answer",
    ],
)
def test_marker_lookalikes_that_survive_as_raw_text(content):
    p = parse_assistant_turn(content)
    assert not p.ok
    assert p.problem == "malformed marker"


def test_the_word_think_is_not_a_marker():
    assert parse_assistant_turn("[THINK]I think [the] user means $D020.[/THINK]Think of $D020.").ok


# --- stats -----------------------------------------------------------------------------------------------------


def test_multi_turn_conversations_count_every_assistant_turn():
    convs = [
        conv("[THINK]First reasoning.[/THINK]One.", "[THINK]Second reasoning.[/THINK]Two.", "No markers."),
        Conversation(({"role": "user", "content": "[THINK]user text is not checked"},)),
        conv("[THINK]Third reasoning here.[/THINK]Three.", "[THINK][/THINK]Four."),
        Conversation(({"role": "assistant", "content": [{"type": "text", "text": "parts"}]},)),
    ]
    s = think_stats(convs)
    assert s.assistant_turns == 6
    assert s.well_formed == 3
    assert s.coverage == pytest.approx(0.5)
    assert s.problems == {"empty reasoning": 1, "missing [THINK]": 1, "non-text content": 1}
    assert s.mean_reasoning_words == pytest.approx((2 + 2 + 3) / 3)
    assert s.distinct_reasoning == 3


def test_empty_input():
    s = think_stats([])
    assert (s.assistant_turns, s.well_formed, s.coverage, s.distinct_ratio, s.top_skeleton_share) == (0, 0, 0.0, 0.0, 0.0)
    assert s.top_skeletons == [] and s.problems == {}


def test_distinct_reasoning_normalises_whitespace():
    s = think_stats([conv("[THINK]Same  text.[/THINK]a", "[THINK]Same text.\n[/THINK]b", "[THINK]Other.[/THINK]c")])
    assert s.distinct_reasoning == 2
    assert s.distinct_ratio == pytest.approx(2 / 3)


# --- skeletons -------------------------------------------------------------------------------------------------


def test_skeleton_masks_quotes_numbers_and_entities():
    sk = reasoning_skeleton(
        'The table on page 12 says "POKE 53280,0"; bits 0-3 of $D020 (#$0F, 0x1F, 1.5) set the colour via the VIC-II '
        "and the Kernal routine CHROUT, see section 3.2 and 'border'."
    )
    assert sk == (
        "the table on <E> says <Q>; bits <N> of <N> (<N>) set the colour via the <E> "
        "and the <E> routine <E>, see <E> and <Q>."
    )


def test_skeleton_keeps_common_words_and_sentence_starts():
    assert reasoning_skeleton("So  the answer\nis   here.") == "so the answer is here."
    assert reasoning_skeleton("Colour codes live in the SID? No: in the VIC-II.") == (
        "colour codes live in the <E>? no: in the <E>."
    )
    assert reasoning_skeleton("The user's question isn't about it.") == "the user's question isn't about it."
    assert reasoning_skeleton("The 3rd sprite.") == "the <N> sprite."


def test_skeleton_treats_a_sentence_initial_name_as_an_entity():
    assert reasoning_skeleton("Voice 3 Control is on page 4.") == "<E> is on <E>."
    assert reasoning_skeleton("Border Colour is $D020.") == reasoning_skeleton("CHROUT is $FFD2.") == "<E> is <N>."
    assert reasoning_skeleton("The VIC-II draws it.") == "the <E> draws it."


NAMES = [
    "CHROUT", "GETIN", "SCNKEY", "Border Colour", "Background Colour 0", "VIC-II Control Register 1", "SID Volume",
    "Sprite 0 X Position", "Sprite Enable", "Raster Counter", "CIA 1 Data Port A", "PLOT", "SETLFS", "Voice 3 Control",
]


def templated_conversations(templates: list[str], n: int = 200, seed: int = 0) -> list[Conversation]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(NAMES)
        addr = rng.choice([f"${rng.randrange(0xC000, 0x10000):04X}", str(rng.randrange(1024, 65536))])
        reasoning = templates[i % len(templates)].format(name=name, n=rng.randrange(1, 300), addr=addr)
        out.append(conv(f"[THINK]{reasoning}[/THINK]It is at {addr}.", question=f"Where is {name}?"))
    return out


def test_single_template_is_detected():
    template = "The user asks about {name}. The table on page {n} lists {addr}. So the answer is {addr}."
    s = think_stats(templated_conversations([template]))
    assert s.well_formed == 200
    assert s.distinct_ratio > 0.9  # every text differs, so distinct_ratio alone would not catch it
    assert s.top_skeleton_share == 1.0
    assert s.distinct_skeletons == 1
    assert s.top_skeletons[0] == ("the user asks about <E>. the table on <E> lists <N>. so the answer is <N>.", 200)


def test_handful_of_templates_is_detected():
    templates = [
        "The user asks about {name}. The table on page {n} lists {addr}. So the answer is {addr}.",
        "{name} is documented on page {n}: its address is {addr}.",
        "Looking up {name} in the memory map gives {addr}, which answers the question.",
        "According to the reference (page {n}), {name} lives at {addr}. I will state {addr}.",
    ]
    s = think_stats(templated_conversations(templates))
    assert s.distinct_ratio > 0.9
    assert s.distinct_skeletons == 4
    assert s.top_skeleton_share == pytest.approx(0.25)
    assert sum(count for _, count in s.top_skeletons) == 200


def test_lowercase_slot_fills_split_the_top_skeleton_but_not_the_skeleton_count():
    # Slot fills in plain lower-case words ("the border colour") are indistinguishable from specific wording, so
    # each fill gets its own skeleton: top_skeleton_share drops, distinct_skeletons stays at the number of fills.
    fills = ["the border colour", "the volume register", "raster interrupts", "the keyboard buffer", "screen memory"]
    rng = random.Random(1)
    template = "The user asks about {}. The table on page {} lists {}. So the answer is {}."
    convs = []
    for _ in range(200):
        addr = f"${rng.randrange(0xC000, 0x10000):04X}"
        convs.append(conv(f"[THINK]{template.format(rng.choice(fills), rng.randrange(300), addr, addr)}[/THINK]{addr}"))
    s = think_stats(convs)
    assert s.top_skeleton_share < 0.5
    assert s.distinct_skeletons == len(fills)


SPECIFIC = [
    "The border colour register is $D020; writing 0 there gives black, so POKE 53280,0 does it.",
    "Background colour is a separate register from the border: $D021, i.e. 53281 in decimal.",
    "CHROUT prints the character whose PETSCII code is in the accumulator, so load A first and then JSR $FFD2.",
    "To read the keyboard without waiting, GETIN returns 0 in A when the buffer is empty.",
    "Sprite pointers sit in the last eight bytes of screen memory, 2040-2047 with the default screen at 1024.",
    "Each pointer value times 64 gives the sprite data address, so 13 points at 832, the cassette buffer.",
    "Volume is the low nibble of 54296; 15 is loudest and 0 silences all three voices.",
    "Voice 1 frequency spans two bytes, 54272 low and 54273 high, and the value is not in hertz directly.",
    "The question mixes up RAM and ROM: BASIC ROM occupies $A000-$BFFF and can be banked out via location 1.",
    "Bit 4 of $D011 blanks the screen, which speeds up the CPU slightly because badlines disappear.",
    "Enabling sprites means setting bits in 53269, one bit per sprite, so 255 turns on all eight.",
    "The raster register holds nine bits: eight in $D012 plus the high bit borrowed from $D011.",
    "Joystick port 2 is read from 56320, and a pressed direction pulls its bit low rather than high.",
    "A SYS call jumps to machine code; SYS 64738 lands in the reset routine and restarts the machine.",
    "PRINT CHR$(147) clears the screen because 147 is the PETSCII clear-home code.",
    "Sound needs an envelope before the gate bit does anything audible, hence attack/decay at 54277 first.",
    "The user wants lower-case letters: PRINT CHR$(14) switches the character set, CHR$(142) switches back.",
    "Colour RAM starts at 55296 and only the low four bits of each location are actually stored.",
    "With the datasette, LOAD without a name takes the next program found on the tape.",
    "Disk commands go over channel 15, so OPEN 15,8,15 comes before sending the scratch command.",
    "Multicolour mode halves horizontal resolution: each pair of bits selects one of four colours.",
    "An IRQ handler must end by jumping to $EA31 or acknowledging the interrupt, otherwise it fires again at once.",
    "FRE(0) reports free BASIC memory but goes negative above 32767, so the manual adds 65536.",
    "Memory location 198 counts the keys waiting in the buffer; clearing it discards pending keypresses.",
]


def test_specific_reasoning_is_not_flagged():
    s = think_stats([conv(f"[THINK]{r}[/THINK]Answer {i}.") for i, r in enumerate(SPECIFIC)])
    assert s.well_formed == len(SPECIFIC)
    assert s.distinct_ratio == 1.0
    assert s.distinct_skeletons == len(SPECIFIC)
    assert s.top_skeleton_share == pytest.approx(1 / len(SPECIFIC))


def test_shared_opening_phrase_does_not_collapse_specific_reasoning():
    texts = [f"The question asks about this. {r}" for r in SPECIFIC[:10]]
    assert len({reasoning_skeleton(t) for t in texts}) == 10


def test_think_stats_report_each_family_on_its_own():
    def fam(family, reasoning):
        return Conversation(({"role": "assistant", "content": f"[THINK]{reasoning}[/THINK]Answer."},), family=family)

    same = "The row for the border lists it at $D020."
    convs = [fam("register", same), fam("register", same), fam("section", "The heading Sprites opens with eight sprites.")]
    stats = think_stats(convs)
    assert set(stats.by_family) == {"register", "section"}
    assert stats.by_family["register"]["assistant_turns"] == 2 and stats.by_family["register"]["distinct_ratio"] == 0.5
    assert stats.by_family["register"]["top_skeleton_share"] == 1.0
    assert stats.by_family["section"]["distinct_ratio"] == 1.0
    assert think_stats([fam("register", same)], per_family=False).by_family == {}
    assert think_stats([Conversation(convs[0].messages)]).by_family == {}  # records without a family
