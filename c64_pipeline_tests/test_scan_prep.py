"""A scanned page made ready for OCR: straightened, table rules taken out, text left alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from c64_pipeline.ingest.scan_prep import deskew, prepare_scan, remove_rules, skew_angle

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
