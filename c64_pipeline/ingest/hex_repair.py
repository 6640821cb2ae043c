"""Repair hex addresses that OCR misread, where the token or its row proves what it must be.

OCR engines read the ``0`` of a hex address as ``O`` (``$DCOA``), sometimes as ``O0`` (``$DDO00`` for
``$DD00``), ``1`` as ``I``/``l``, ``5`` as ``S``, and the ``$`` itself as ``S`` (``SD020``) or as ``S$``
(``S$DOOA``). Two kinds of proof are used, and nothing else is touched:

* **the token itself**: characters after a ``$`` (at the start of a token) are hex digits, so ``O``/``o``/``Q``
  -> ``0``, ``I``/``l``/``|`` -> ``1``, ``S`` -> ``5`` there; a five-character run with an ``O`` beside a ``0``
  reads as a doubled zero. ``S``/``5`` followed by four hex-like characters keeps the older, stricter rules of
  ``repair_hex_tokens``; address ranges written without ``$`` (``DCOO-DCFF``) those of ``repair_hex_ranges``.
* **a decimal column that agrees**: in a row such as ``$DDO0A | 56586`` or ``O30F 783`` the neighbouring
  decimal number is the address's value; when exactly one small correction of the hex token (the lookalikes
  above, one confusable digit such as 8/B or 0/D, one dropped character) has that value, it is applied. Bare
  tokens (no ``$``) are only considered when they are four characters with a real digit and a lookalike, so
  words never turn into hex.

Every function returns the repaired text with the number of tokens it changed, so callers can count repairs.
"""

from __future__ import annotations

import re

__all__ = [
    "repair_hex_ranges",
    "repair_hex_text",
    "repair_hex_tokens",
    "repair_row_tokens",
]

HEX = set("0123456789ABCDEFabcdef")
_AFTER_DOLLAR = str.maketrans({"O": "0", "o": "0", "Q": "0", "I": "1", "l": "1", "|": "1", "S": "5"})
_HEXLIKE = HEX | set("OoQIl|S")
# One confusable character (OCR swaps these in both directions); only tried when a decimal proves the result.
_CONFUSABLE = {
    "0": "8DC", "8": "0B3", "B": "8", "D": "0", "5": "6", "6": "5", "1": "7", "7": "1", "E": "F", "F": "E",
    "C": "0", "3": "8",
}
_LEAD = "([{'\"<#"
_TRAIL = ")]}'\".,;:>"
_DECIMAL = re.compile(r"^\d{1,5}$")
_SEPARATOR = re.compile(r"^[|=:\-–—/]+$")


# --------------------------------------------------------------------------------------------
# Context-free repairs of one token
# --------------------------------------------------------------------------------------------

# "$" read as S or 5, then 4 hex digits in which O/o stand for 0 and I/l/| for 1.
_S_TOKEN = re.compile(r"^([S5])([0-9A-FOoIl|]{4})$")
_S_LOOKALIKE = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "|": "1"})


def _repair_s_token(core: str) -> str:
    m = _S_TOKEN.match(core)
    if not m:
        return core
    prefix, run = m.group(1), m.group(2)
    digits = sum(ch.isdigit() for ch in run)
    letters = sum(ch in "ABCDEF" for ch in run)
    lookalikes = sum(ch in "OoIl|" for ch in run)
    if prefix == "5" and letters + lookalikes == 0:
        return core  # "53280" is a decimal number
    if prefix == "S" and digits == 0 and (run.count("O") < 2 or any(ch in "oIl|" for ch in run)):
        return core  # S + letters: "SDOOO" is an address, "SCOFF" or "Soil" are words
    return "$" + run.translate(_S_LOOKALIKE)


_DOUBLED = {"O0": "0", "0O": "0", "o0": "0", "0o": "0", "l1": "1", "1l": "1", "I1": "1", "1I": "1"}


def _collapsed(run: str) -> set[str]:
    """Readings of a run with one digit read twice, as the digit and its lookalike ("DDO00" -> "DD00",
    "Al1" -> "A1")."""
    out = set()
    for i in range(len(run) - 1):
        if run[i : i + 2] in _DOUBLED:
            out.add(run[:i] + _DOUBLED[run[i : i + 2]] + run[i + 2 :])
    return out


def _repair_dollar_run(run: str) -> str | None:
    """The hex digits a run after "$" must be, or None when the run is not hex-like enough to say."""
    if not run or any(ch not in _HEXLIKE for ch in run):
        return None
    if len(run) <= 4:
        fixed = run.translate(_AFTER_DOLLAR)
        return fixed if all(ch in HEX for ch in fixed) else None
    # Five characters: a four-digit address with one digit read twice ("DDO00"). (Three characters are left to
    # the decimal proof: "$40O" may be "$400", the screen, or "$40" read twice.)
    readings = {r.translate(_AFTER_DOLLAR) for r in _collapsed(run)} if len(run) == 5 else set()
    if len(readings) == 1:
        fixed = readings.pop()
        return fixed if all(ch in HEX for ch in fixed) else None
    return None


_RANGE_PART = re.compile(r"^[0-9A-FOSIl]{4}$")
_RANGE_LOOKALIKE = str.maketrans({"O": "0", "S": "5", "I": "1", "l": "1"})


def _repair_bare_range(start: str, end: str) -> tuple[str, str]:
    """"DCOO-DCFF" -> ("DC00", "DCFF"): both parts four hex-like characters, an ascending range after the fix,
    with a real digit or an "OO" (read for "00")."""
    if not (_RANGE_PART.match(start) and _RANGE_PART.match(end)):
        return start, end
    raw = start + end
    a, b = start.translate(_RANGE_LOOKALIKE), end.translate(_RANGE_LOOKALIKE)
    if not (any(ch.isdigit() for ch in raw) or "OO" in raw) or int(a, 16) > int(b, 16):
        return start, end
    return a, b


def _repair_core(core: str) -> str:
    """Context-free repair of a token without its surrounding punctuation."""
    if "-" in core.strip("-") and core.count("-") == 1:
        start, end = core.split("-")
        if start.startswith("$") or end.startswith("$"):
            return f"{_repair_core(start)}-{_repair_core(end)}"
        a, b = _repair_bare_range(start, end)
        return f"{a}-{b}"
    if core.startswith(("S$", "$$", "5$")) and len(core) > 2:
        run = _repair_dollar_run(core[2:])
        if run is not None and len(run) in (2, 4):
            return "$" + run
        return core
    if core.startswith("$"):
        run = _repair_dollar_run(core[1:])
        return "$" + run if run is not None else core
    return _repair_s_token(core)


def _split(token: str) -> tuple[str, str, str]:
    i, j = 0, len(token)
    while i < j and token[i] in _LEAD:
        i += 1
    while j > i and token[j - 1] in _TRAIL:
        j -= 1
    return token[:i], token[i:j], token[j:]


# --------------------------------------------------------------------------------------------
# A decimal neighbour that proves the value
# --------------------------------------------------------------------------------------------


def _hex_parts(core: str) -> tuple[str, str] | None:
    """(prefix kept in the output, hex-like run) of a token that may be an address."""
    for prefix in ("S$", "$$", "5$"):
        if core.startswith(prefix):
            return "$", core[2:]
    if core.startswith("$"):
        return "$", core[1:]
    if len(core) == 5 and core[0] == "S":
        return "$", core[1:]  # "$" read as S ("SDO2A")
    if len(core) == 4 and any(ch.isdigit() for ch in core) and any(ch in "OoQIl|S" for ch in core):
        return "", core  # a bare four-digit address with a misread digit ("O30F")
    return None


def _candidates(run: str) -> set[str]:
    """Readings of a hex-like run with its lookalikes mapped (and, for 3 or 5 characters, one character
    dropped), as 2 or 4 hex digits."""
    if not (2 <= len(run) <= 5) or any(ch not in _HEXLIKE for ch in run):
        return set()
    bases = {run} if len(run) in (2, 4) else _collapsed(run) | {run[:i] + run[i + 1 :] for i in range(len(run))}
    mapped = {b.translate(_AFTER_DOLLAR) for b in bases}
    return {m for m in mapped if len(m) in (2, 4) and all(ch in HEX for ch in m)}


def _confusable(readings: set[str]) -> set[str]:
    """Four-digit readings with one confusable digit changed (0/8/D/C, 8/B/3, 5/6, 1/7, E/F)."""
    out = set()
    for m in readings:
        if len(m) != 4:
            continue
        for i, ch in enumerate(m):
            for alt in _CONFUSABLE.get(ch.upper(), ""):
                out.add(m[:i] + alt + m[i + 1 :])
    return out


def _decimal_neighbours(cores: list[str], i: int) -> list[int]:
    values = []
    for step in (1, -1):
        j = i + step
        while 0 <= j < len(cores) and _SEPARATOR.match(cores[j]):
            j += step
        if 0 <= j < len(cores) and _DECIMAL.match(cores[j]) and int(cores[j]) <= 0xFFFF:
            values.append(int(cores[j]))
    return values


def _proved(core: str, decimals: list[int]) -> str | None:
    parts = _hex_parts(core)
    if parts is None or not decimals:
        return None
    prefix, run = parts
    if all(ch in HEX for ch in run) and int(run, 16) in decimals and (prefix or run == core):
        return prefix + run if prefix else None  # already right (a "$$"/"S$" prefix is still cleaned)
    readings = _candidates(run)
    matches = {c for c in readings if int(c, 16) in decimals}
    if not matches and prefix:
        # One confusable digit, only against an address-sized decimal (>= 256): "$D028 | 53280" is $D020, but
        # "$08, 0" proves nothing (small numbers beside a hex byte are usually something else).
        big = [d for d in decimals if d >= 256]
        matches = {c for c in _confusable(readings) if int(c, 16) in big}
    if len(matches) != 1:
        return None
    return prefix + matches.pop()


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def repair_row_tokens(tokens: list[str]) -> tuple[list[str], int]:
    """Repair the whitespace-separated tokens of one row (cells in reading order); one token in, one token
    out, so callers can hand them back to their cells. Returns the tokens and how many were changed."""
    cores = [_split(t)[1] for t in tokens]
    out = list(tokens)
    changed = 0
    for i, token in enumerate(tokens):
        lead, core, trail = _split(token)
        if not core:
            continue
        fixed = _proved(core, _decimal_neighbours(cores, i)) or _repair_core(core)
        if fixed != core:
            out[i] = lead + fixed + trail
            changed += 1
    return out, changed


def repair_hex_text(text: str) -> tuple[str, int]:
    """Repair every line of ``text`` (each line one row); returns the text and the number of tokens changed."""
    lines_out, total = [], 0
    for line in text.split("\n"):
        pieces = re.split(r"(\s+)", line)
        tokens = pieces[0::2]
        fixed, n = repair_row_tokens(tokens)
        pieces[0::2] = fixed
        lines_out.append("".join(pieces))
        total += n
    return "\n".join(lines_out), total


def repair_hex_tokens(text: str) -> str:
    """Context-free part only, for a single string (kept for callers of the earlier API)."""
    pieces = re.split(r"(\s+)", text)
    for k in range(0, len(pieces), 2):
        lead, core, trail = _split(pieces[k])
        if core:
            pieces[k] = lead + _repair_core(core) + trail
    return "".join(pieces)


def repair_hex_ranges(text: str) -> str:
    """Memory-map ranges without "$" ("DCOO-DCFF", "DS00-DSFF") back to hex; see ``_repair_bare_range``."""
    return repair_hex_tokens(text)
