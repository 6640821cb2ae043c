"""A scanned page made ready for OCR: straightened, table rules taken out, text left alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from c64_pipeline.ingest.scan_prep import deskew, lighten_fills, prepare_scan, remove_rules, skew_angle

PAPER, INK, RULE_GRAY = 242, 22, 110
DPI = 150


def text_page(width: int = 1200, height: int = 1600) -> Image.Image:
    """Rows of word-like ink blobs (text lines) on paper."""
    img = Image.new("L", (width, height), PAPER)
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(3)
    for top in range(120, height - 120, 40):
        x = 100
        while x < width - 150:
            w = int(rng.integers(20, 90))
            draw.rectangle([x, top, x + w, top + 14], fill=INK)
            x += w + int(rng.integers(10, 18))
    return img


@pytest.mark.parametrize("degrees", [0.8, -0.6, 1.7])
def test_skew_angle_finds_how_far_the_text_rows_are_turned(degrees):
    page = text_page().rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=PAPER)
    found = skew_angle(np.asarray(page))
    assert found == pytest.approx(-degrees, abs=0.1)
    level, angle = deskew(np.asarray(page))
    assert angle == found and skew_angle(level) == pytest.approx(0.0, abs=0.1)


def test_a_level_page_and_a_blank_page_are_left_as_they_are():
    level = np.asarray(text_page())
    assert skew_angle(level) == 0.0
    assert deskew(level)[0] is level
    blank = np.full((400, 300), PAPER, np.uint8)
    assert skew_angle(blank) == 0.0 and remove_rules(blank, DPI) is blank


def test_remove_rules_paints_over_thin_long_rules_black_or_gray():
    img = Image.new("L", (1000, 600), PAPER)
    draw = ImageDraw.Draw(img)
    draw.rectangle([50, 100, 950, 102], fill=INK)  # a black header rule
    draw.rectangle([50, 200, 950, 201], fill=RULE_GRAY)  # a gray row rule
    draw.rectangle([500, 250, 501, 550], fill=RULE_GRAY)  # a vertical cell border
    draw.rectangle([80, 150, 95, 170], fill=INK)  # a glyph just above a rule
    draw.rectangle([50, 400, 400, 460], fill=INK)  # a filled area (a black bar): thicker than a rule
    out = remove_rules(np.asarray(img), DPI)
    assert (out[100:103, 50:951] > 230).all()
    assert (out[200:202, 50:951] > 230).all()
    assert (out[250:551, 500:502] > 230).all()
    assert (out[150:171, 80:96] == INK).all()
    assert (out[400:461, 50:401] == INK).all()


def test_short_dark_runs_such_as_text_are_not_rules():
    page = np.asarray(text_page())
    assert np.array_equal(remove_rules(page, DPI), page)


def test_prepare_scan_straightens_then_clears_rules():
    img = text_page()
    ImageDraw.Draw(img).rectangle([80, 100, 1120, 102], fill=INK)
    turned = np.asarray(img.rotate(1.0, resample=Image.Resampling.BICUBIC, fillcolor=PAPER))
    out, angle = prepare_scan(turned, DPI)
    assert angle == pytest.approx(-1.0, abs=0.1)
    assert (out[96:108, 150:1050] > 200).all()  # the rule, level now, is gone
    kept, none = prepare_scan(turned, DPI, straighten=False, rules=False)
    assert none == 0.0 and kept is turned


def test_text_on_a_filled_box_comes_out_dark_on_paper_and_the_rest_of_the_page_is_untouched():
    img = text_page()
    draw = ImageDraw.Draw(img)
    draw.rectangle([100, 600, 700, 760], fill=165)  # an orange box, as gray
    draw.rectangle([800, 600, 1100, 760], fill=100)  # a brown one
    for x in range(300, 420, 12):  # the strokes of white letters on each
        draw.rectangle([x, 660, x + 4, 700], fill=255)
        draw.rectangle([x + 600, 660, x + 604, 700], fill=250)
    page = np.asarray(img)
    out = lighten_fills(page, DPI)
    assert (out[665:695, 301:304] < 60).all() and (out[665:695, 901:904] < 60).all()  # the strokes are dark now
    assert (out[620:640, 150:250] > 200).all() and (out[620:640, 830:880] > 200).all()  # their boxes are paper
    assert np.array_equal(out[:560], page[:560])  # the text above is as it was
    banner = np.asarray(text_page()).copy()
    banner[600:760, 100:700] = INK
    banner[660:700, 300:420:12] = PAPER
    assert lighten_fills(banner, DPI) is banner  # white on black is left to the engine: ink is never a fill
    plain = np.asarray(text_page())
    assert lighten_fills(plain, DPI) is plain  # a page without a filled area is not touched at all


def test_ocr_reads_light_letters_on_coloured_boxes(tmp_path):
    import pymupdf

    from c64_pipeline.ingest.ocr import TesseractEngine

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=300)
    for top, colour, label in ((40, (0.93, 0.55, 0.3), "KERNAL ROM"), (140, (0.45, 0.25, 0.1), "BASIC ROM")):
        page.draw_rect(pymupdf.Rect(60, top, 300, top + 60), color=None, fill=colour)
        page.insert_text((95, top + 38), label, fontsize=20, color=(1, 1, 1))
    text = " ".join(b.text for b in TesseractEngine(lighten_fills=True).page_blocks(page))
    assert "KERNAL ROM" in text and "BASIC ROM" in text
