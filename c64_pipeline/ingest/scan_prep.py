"""A scanned page made ready for OCR: straightened, and the ruling lines of its tables taken out.

Two things on a scan break table rows in OCR output, whatever the engine:

- **Skew.** A page scanned 1 degree off drifts 9 points over a 500-point row, so the cells at the two ends of a
  row no longer share a line. ``skew_angle`` finds the angle at which the rows of dark pixels are sharpest (a
  projection profile, on a quarter-size image) and ``deskew`` turns the page back by it. The OCR'd words then come
  out in the straightened page's coordinates, where a table row is level.
- **Ruling lines.** Table rules and cell borders are read as text ("ee", "SRSA TTT", "|", "_") or make the engine
  merge a rule with the narrow cells next to it ("0 1" read as "Ou ek"). ``remove_rules`` finds runs of dark
  pixels longer than ``RULE_MIN_LENGTH`` inches along a row or a column (a morphological opening with a line,
  done with cumulative sums) and paints those no thicker than ``RULE_MAX_THICKNESS`` inches with the paper's
  colour; filled areas (thicker) and glyphs (shorter) are left alone.

Everything is plain numpy on the grayscale page image; both steps are linear in its pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["deskew", "lighten_fills", "prepare_scan", "remove_rules", "skew_angle"]

MAX_SKEW_DEGREES = 3.0  # a page more crooked than this is not straightened (a drawing, a page set at an angle)
SKEW_STEP_DEGREES = 0.05
MIN_SKEW_DEGREES = 0.1  # less is left alone: it moves the end of a 600-point row by 1 point; resampling blurs
RULE_MIN_LENGTH = 0.6  # inches: a dark run at least this long along a row or column is a rule, not a glyph
# A pixel darker than the paper by this share of the ink's contrast can be part of a rule. Half, as for ink: also
# taking light gray rules (0.1) cut the glyphs that touch them and lost 1.7% of the scanned table relations.
RULE_CONTRAST = 0.5
RULE_MAX_THICKNESS = 0.04  # inches (about 3 points): a thicker dark run across the rule is a filled area, kept
# A filled area (a box behind text): within FILL_WINDOW inches less than FILL_MAX_PAPER_SHARE of the pixels are
# paper-light and the others average a tone no darker than FILL_MIN_TONE (a coloured or gray box: letters in ink,
# however heavy, average darker, and are never taken for a fill).
FILL_WINDOW = 0.25
FILL_MAX_PAPER_SHARE = 0.6
FILL_MIN_TONE = 64
# a fill is one tone: the other pixels' spread (standard deviation) at most this share of the fill's contrast to the
# paper (an orange or brown box with white letters 0.15-0.23; the blurred strokes of dense bold type on a scan 0.37+)
FILL_MAX_SPREAD = 0.3
FILL_STROKE = 0.03  # inches: the light letters on a fill are this close to it (half a stroke of 24-point type)
FILL_PAPER_TOLERANCE = 30  # gray levels below the paper's that still count as paper (scan noise, yellowing)
FILL_MIN_CONTRAST = 40  # gray levels: the least difference between a fill and its paper that is stretched to black


def _levels(gray: np.ndarray, *shares: float) -> list[int]:
    """The gray levels below which each share of the pixels lie (percentiles from one 256-bin histogram)."""
    counts = np.cumsum(np.bincount(gray.ravel(), minlength=256))
    return [int(np.searchsorted(counts, share * counts[-1])) for share in shares]


def _ink(gray: np.ndarray) -> np.ndarray:
    """Dark pixels: below the middle of the page's 5th (ink) and 95th (paper) percentile levels."""
    ink, paper = _levels(gray, 0.05, 0.95)
    return gray < (ink + paper) / 2


def _sharpest(ys: np.ndarray, xs: np.ndarray, angles: np.ndarray) -> float:
    best, best_angle = -1.0, 0.0
    for angle in sorted(angles, key=abs):  # on a tie the angle nearest level wins
        shifted = np.rint(ys - xs * np.tan(np.radians(angle))).astype(np.int64)
        counts = np.bincount(shifted - shifted.min())
        sharpness = float(np.dot(counts, counts))
        if sharpness > best:
            best, best_angle = sharpness, float(angle)
    return best_angle


def skew_angle(gray: np.ndarray, max_degrees: float = MAX_SKEW_DEGREES, step: float = SKEW_STEP_DEGREES) -> float:
    """Degrees to turn the page (counter-clockwise, as ``PIL.Image.rotate`` does) so its text rows are level.

    The dark pixels are projected onto the vertical axis along lines of each candidate slope; text rows make the
    profile sharpest (largest sum of squared row counts) at the true skew. Searched in 0.25-degree steps on a
    quarter-size image, then in ``step`` degrees around the best on a half-size one. 0.0 when the page has almost
    no ink or the best angle is under ``MIN_SKEW_DEGREES``.
    """
    small = gray[::4, ::4]
    ys, xs = np.nonzero(_ink(small))
    if len(ys) < 200:
        return 0.0
    coarse = _sharpest(ys.astype(np.float64), xs.astype(np.float64), np.arange(-max_degrees, max_degrees + 0.01, 0.25))
    half = gray[::2, ::2]
    ys, xs = np.nonzero(_ink(half))
    fine = np.arange(coarse - 0.25, coarse + 0.25 + step / 2, step)
    best = _sharpest(ys.astype(np.float64), xs.astype(np.float64), fine)
    return round(best, 3) if abs(best) >= MIN_SKEW_DEGREES else 0.0


def _paper(gray: np.ndarray) -> int:
    return _levels(gray, 0.9)[0]


def deskew(gray: np.ndarray, angle: float | None = None) -> tuple[np.ndarray, float]:
    """The page turned level (same size, corners filled with paper) and the angle used."""
    angle = skew_angle(gray) if angle is None else angle
    if not angle:
        return gray, 0.0
    turned = Image.fromarray(gray).rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=_paper(gray))
    return np.asarray(turned), angle


def _runs(dark: np.ndarray, length: int) -> np.ndarray:
    """Pixels inside a run of at least ``length`` dark pixels along axis 1 (an opening with a 1 x length line).
    Only rows with that much ink are looked at; two cumulative sums over slices, no per-pixel Python."""
    out = np.zeros(dark.shape, dtype=bool)
    rows, cols = dark.shape
    if length > cols:
        return out
    busy = np.flatnonzero(np.count_nonzero(dark, axis=1) >= length)
    if not len(busy):
        return out
    part = dark[busy]
    csum = np.zeros((len(busy), cols + 1), np.int32)
    np.cumsum(part, axis=1, out=csum[:, 1:])
    full = (csum[:, length:] - csum[:, :-length]) == length  # the window starting at j is all dark
    padded = np.zeros((len(busy), cols + length), np.int32)  # windows starting at j-length+1 .. j cover pixel j
    np.cumsum(full, axis=1, out=padded[:, length : length + full.shape[1]])
    padded[:, length + full.shape[1] :] = padded[:, length + full.shape[1] - 1 : length + full.shape[1]]
    out[busy] = (padded[:, length:] - padded[:, :cols]) > 0
    return out


def remove_rules(gray: np.ndarray, dpi: int, ink: int | None = None) -> np.ndarray:
    """The page with its thin horizontal and vertical rules painted over with the paper's colour. ``ink``: the
    page's ink level when it was measured before (by default the level of its darkest 5%)."""
    measured, paper, fill = _levels(gray, 0.05, 0.95, 0.9)
    ink = measured if ink is None else ink
    dark = gray < paper - RULE_CONTRAST * (paper - ink)
    length = max(8, int(RULE_MIN_LENGTH * dpi))
    thick = max(2, int(RULE_MAX_THICKNESS * dpi))
    horizontal = _runs(dark, length)
    vertical = _runs(dark.T, length).T
    rules = (horizontal & ~_runs(horizontal.T, thick).T) | (vertical & ~_runs(vertical, thick))
    if not rules.any():
        return gray
    grown = rules.copy()  # one pixel more on each side: the blurred edge of a rule
    grown[1:] |= rules[:-1]
    grown[:-1] |= rules[1:]
    grown[:, 1:] |= rules[:, :-1]
    grown[:, :-1] |= rules[:, 1:]
    out = gray.copy()
    out[grown] = fill
    return out


def _block_sums(a: np.ndarray, block: int) -> np.ndarray:
    """Sums of ``a`` (integers or booleans) over ``block`` x ``block`` tiles (the ragged edge tiles padded with
    zeros), as int64."""
    rows, cols = -(-a.shape[0] // block), -(-a.shape[1] // block)
    if (rows * block, cols * block) != a.shape:
        a = np.pad(a, ((0, rows * block - a.shape[0]), (0, cols * block - a.shape[1])))
    return a.reshape(rows, block, cols * block).sum(axis=1, dtype=np.int64).reshape(rows, cols, block).sum(axis=2)


_SQUARES = np.arange(256, dtype=np.uint32) ** 2


def _window_sums(a: np.ndarray, radius: int) -> np.ndarray:
    """Sums of ``a`` over the (2 radius + 1)-square window around each cell, clipped at the edges (cumulative sums)."""
    c = np.zeros((a.shape[0] + 1, a.shape[1] + 1), np.float64)
    c[1:, 1:] = a.cumsum(0).cumsum(1)
    y = np.arange(a.shape[0])
    x = np.arange(a.shape[1])
    y0, y1 = np.clip(y - radius, 0, a.shape[0]), np.clip(y + radius + 1, 0, a.shape[0])
    x0, x1 = np.clip(x - radius, 0, a.shape[1]), np.clip(x + radius + 1, 0, a.shape[1])
    return c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]


def lighten_fills(gray: np.ndarray, dpi: int) -> np.ndarray:
    """The page with text on a filled area (a coloured or gray box of a diagram, a dark banner with white letters)
    turned into dark text on paper; the rest of the page untouched (the same array when it has no fill).

    Engines read dark text on light paper; white or light letters on an orange box come out as nothing or as noise
    ("RAM", "KERNAL ROM" lost from a memory-map diagram). An area is filled where, within ``FILL_WINDOW`` inches,
    less than ``FILL_MAX_PAPER_SHARE`` of the pixels are paper-light and the others average a tone lighter than
    ink (``FILL_MIN_TONE``: a black banner is left to the engine, which reads white on black) and of one tone
    (``FILL_MAX_SPREAD``: not the blurred strokes of dense bold type). There each pixel becomes darker the more it
    differs from the fill's tone (the mean of the pixels that are not paper-light), so letters lighter or darker than
    their box both come out dark on white. Measured on tiles of 4 x 4 pixels at 300 dpi, so it costs a small share
    of the OCR itself."""
    (paper,) = _levels(gray, 0.95)
    block = max(1, dpi // 75)
    light = gray >= paper - FILL_PAPER_TOLERANCE
    h, w = gray.shape
    tiles = np.outer(np.diff(np.minimum(np.arange(0, h + block, block), h))[: -(-h // block)],
                     np.diff(np.minimum(np.arange(0, w + block, block), w))[: -(-w // block)])
    light_tiles = _block_sums(light, block)
    dark_tiles = tiles - light_tiles
    ink = np.where(light, np.uint8(0), gray)
    radius = max(1, int(FILL_WINDOW * dpi / block / 2))
    area = _window_sums(tiles, radius)
    paper_share = _window_sums(light_tiles, radius) / area
    dark_count = _window_sums(dark_tiles, radius)
    tone = _window_sums(_block_sums(ink, block), radius) / np.maximum(dark_count, 1)
    squares = _window_sums(_block_sums(_SQUARES[ink], block), radius)
    spread = np.sqrt(np.maximum(squares / np.maximum(dark_count, 1) - tone**2, 0))
    # only next to the fill itself: tiles mostly of the fill's tone, and the strokes of the letters on it (light
    # tiles within FILL_STROKE inches of such a tile); the paper around a box stays as it is
    dark_tiles = dark_tiles * 2 > tiles
    near = _window_sums(dark_tiles.astype(np.float64), max(1, round(FILL_STROKE * dpi / block))) > 0
    filled = (paper_share < FILL_MAX_PAPER_SHARE) & (tone >= FILL_MIN_TONE) & (spread <= FILL_MAX_SPREAD * (paper - tone)) & near
    if not filled.any():
        return gray
    mask = np.repeat(np.repeat(filled, block, 0), block, 1)[:h, :w]
    fill = np.repeat(np.repeat(tone, block, 0), block, 1)[:h, :w]
    gain = 255.0 / np.maximum(np.abs(paper - fill), FILL_MIN_CONTRAST)
    lightened = 255.0 - np.clip(np.abs(gray - fill) * gain, 0, 255)
    return np.where(mask, lightened, gray).astype(np.uint8)


def prepare_scan(gray: np.ndarray, dpi: int, straighten: bool = True, rules: bool = True,
                 fills: bool = True) -> tuple[np.ndarray, float]:
    """``deskew``, ``lighten_fills``, then ``remove_rules`` (each optional); returns the image and the skew angle
    corrected."""
    angle = 0.0
    if straighten:
        gray, angle = deskew(gray)
    ink = None
    if fills:
        lightened = lighten_fills(gray, dpi)
        if lightened is not gray:  # its boxes are paper now: the ink is what the page had (its 5% may be paper now)
            ink, gray = _levels(gray, 0.05)[0], lightened
    if rules:
        gray = remove_rules(gray, dpi, ink)
    return gray, angle
