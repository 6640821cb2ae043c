"""Is every fact a final answer states found on the lines it cites?

The facts checked are the ones a reader would copy: addresses and other hex values, numbers, and upper-case names
(routine, register, keyword and signal names). Each must appear in the cited evidence, or be derived in the THINK
text (hex to decimal, a range size: the reasoning shows "... = 65490"), or be a word of the answer's own phrasing
(JSR, SYS, PEEK: how to use a fact, not a fact).
"""

from __future__ import annotations

import re

from c64_pipeline.conversation import Conversation, parse_assistant_turn

PHRASING = {"JSR", "SYS", "PEEK", "POKE", "BASIC", "KERNAL", "ROM", "RAM", "KB", "C64"}
_HEX = re.compile(r"\$([0-9A-Fa-f]{2,4})\b")
_NUMBER = re.compile(r"(?<![\w$.#])(\d+)(?![\w])")
_NAME = re.compile(r"(?<![\w$?])([A-Z][A-Z0-9]{2,}[$#]?)(?![\w])")


def answer_facts(answer: str) -> list[str]:
    text = _HEX.sub(lambda m: f" ${m.group(1).upper()} ", answer)
    facts = [f"${h.upper()}" for h in _HEX.findall(answer)]
    facts += _NUMBER.findall(_HEX.sub(" ", answer))
    facts += [n for n in _NAME.findall(text) if n not in PHRASING]
    return facts


def ungrounded_facts(answer: str, reasoning: str, evidence: str) -> list[str]:
    """Facts of `answer` found neither on the evidence lines nor derived in `reasoning`."""
    hexes = {h.upper().lstrip("0") or "0" for h in re.findall(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{2,4})(?![0-9A-Fa-f])", evidence)}
    words = set(re.findall(r"[A-Za-z0-9$#]+", evidence)) | set(re.findall(r"[A-Za-z0-9]+", evidence))
    numbers = set(re.findall(r"\d+", evidence))
    derived = set(re.findall(r"=\s*\$?([0-9A-Fa-f]+)\b", reasoning))
    missing = []
    for fact in answer_facts(answer):
        if fact.startswith("$"):
            ok = (fact[1:].lstrip("0") or "0") in hexes or fact[1:] in derived
        elif fact.isdigit():
            ok = fact in numbers or fact in derived
        else:
            ok = fact in words or fact.rstrip("$#") in words
        if not ok:
            missing.append(fact)
    return missing


def conversation_grounding_problems(conversation: Conversation) -> list[str]:
    """'turn N: FACT not on the cited lines' for every ungrounded fact of every assistant turn."""
    evidence = "\n".join(r["evidence"] for r in conversation.source_refs)
    problems = []
    for turn, content in enumerate(conversation.contents("assistant"), start=1):
        parsed = parse_assistant_turn(content)
        if not parsed.ok:
            problems.append(f"turn {turn}: {parsed.problem}")
            continue
        problems += [f"turn {turn}: {fact} not on the cited lines" for fact in ungrounded_facts(parsed.answer, parsed.reasoning, evidence)]
    return problems
