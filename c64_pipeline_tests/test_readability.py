"""The page-quality score sees what a reader sees: real technical text scores high, garbage low, in linear time."""

import random
import statistics

import pytest

from bench.quality import ocr_confusions, substitute
from c64_pipeline.readability import readability
from c64_pipeline.demo.model import SAMPLE_SOURCES
from c64_pipeline.text_sources import decode_bytes, html_to_text, split_pages

THRESHOLD = 0.6  # ExtractionSettings.min_quality: below it a text layer goes to OCR and a page is flagged

REGISTER_TABLE = """Address  Decimal  Name    Description
$D020    53280    EXTCOL  Border colour
$D021    53281    BGCOL0  Background colour 0
$D418    54296    SIGVOL  Volume and filter modes
$DC00    56320    CIAPRA  Data port A (keyboard, joystick 2)"""
HEX_DUMP = """C000  A9 00 8D 20 D0 8D 21 D0  ... ..!.
C008  A2 00 BD 00 C1 9D 00 04  ........
C010  E8 D0 F7 60 00 00 00 00  ...`...."""
BASIC = """10 PRINT CHR$(147)
20 FOR I=0 TO 15:POKE 53280,I:NEXT I
30 IF PEEK(197)=64 THEN 30
40 GOTO 20"""
ASSEMBLY = """        LDA #$00      ; black
        STA $D020     ; border
loop:   LDX $DC00
        BNE loop
        JSR $FFD2     ; CHROUT
        RTS"""
PROSE = ("The SID chip has three voices. Each voice has its own oscillator, envelope generator and waveform "
         "selection; the filter is shared. Writing to the frequency registers changes the pitch of a voice.")

def sample_source_pages() -> list[str]:
    """Pages of the bundled sample manuals' sources (the text their PDFs are rendered from)."""
    pages = []
    for path in sorted(SAMPLE_SOURCES.iterdir()):
        if path.suffix in (".html", ".md"):
            text = decode_bytes(path.read_bytes())
            pages += split_pages(html_to_text(text) if path.suffix == ".html" else text, lines_per_page=40)
    return [p for p in pages if len(p.strip()) >= 200]


@pytest.mark.parametrize("text", [REGISTER_TABLE, HEX_DUMP, BASIC, ASSEMBLY, PROSE])
def test_real_technical_text_scores_high(text):
    assert readability(text) >= 0.85


def test_garbled_register_table_scores_below_the_threshold():
    garbled = """Addrcss  Dccirnal  Narne   Dcscniptiori
SDO2O    5328O    EXTCO1  8ondcr eo1our
SDO2l    5328l    8GCO1O  8ackqnouricl eo1our O
SD4l8    S4296    SlGVO1  Vo1urnc qrid fi1fcr rnodcs
SDCOO    S632O    ClAPRA  Dqfq porf A (kcyboqrd, joysfick 2)"""
    assert readability(garbled) < THRESHOLD <= readability(REGISTER_TABLE)


def test_garbled_ocr_layer_scores_below_the_threshold():
    garbled = ("ED020 2280 EXTCOL Bondar colour\nSO2l 5328l 8GCO1O Bcckqrovrid eo1our O\n"
               "S$DOOA l4oc2 qnd ihc 5lD fi1fcr rnodcs. Wrifirig fo ihc frcqucricv rcqisfcns chorigcs ihc pifeh")
    assert readability(garbled) < THRESHOLD
    assert readability("\ufffd\ufffd\x01\x02 \ufffdq\ufffd zxcvbnm qwrtp") < 0.3


@pytest.mark.parametrize(
    "corrupt, rate, share_below",
    [(substitute, 0.2, 0.65), (substitute, 0.4, 0.95), (ocr_confusions, 0.25, 0.8), (ocr_confusions, 0.4, 0.95)],
)
def test_corrupted_sample_pages_fall_below_the_threshold_and_real_ones_stay_high(corrupt, rate, share_below):
    rng = random.Random(64)
    pages = sample_source_pages()
    assert len(pages) >= 20
    assert min(readability(p) for p in pages) >= 0.85
    scores = [readability(corrupt(p, rate, rng)) for p in pages]
    assert statistics.median(scores) < THRESHOLD
    assert sum(s < THRESHOLD for s in scores) >= share_below * len(scores)


@pytest.mark.corpus
def test_shared_corpus_text_scores_high_and_its_corruptions_low(shared_corpus):
    rng = random.Random(1541)
    pages = []
    for path in sorted((shared_corpus / "text").iterdir()):
        pages += [p for p in split_pages(decode_bytes(path.read_bytes())) if len(p.strip()) >= 200]
    assert len(pages) >= 50
    assert min(readability(p) for p in pages) >= 0.7
    for corrupt, rate in ((substitute, 0.3), (ocr_confusions, 0.3)):
        scores = [readability(corrupt(p, rate, rng)) for p in pages]
        assert sum(s < THRESHOLD for s in scores) >= 0.9 * len(scores), (corrupt.__name__, rate)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("token", ["a" * 1_000_000 + "1", "Ab" * 500_000 + "$", "$" + "D" * 999_999 + "Z"])
def test_a_one_megabyte_token_is_scored_in_linear_time(token):
    """The old plausibility regex backtracked quadratically on a long run of letters followed by a digit
    (14 s for 40 kB): a 1 MB token would take hours. Now it is one regex scan."""
    assert readability(token) == 0.0
    assert readability((PROSE + " ") * 20 + token) < THRESHOLD
