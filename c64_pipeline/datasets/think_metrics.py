"""Quality metrics for assistant turns of the form `[THINK]reasoning[/THINK]final answer`.

Plain Python (no Dagster), used by the blocking SFT data-quality checks: is every assistant turn well formed,
and is the reasoning written for its example rather than stamped out of a few templates?
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from c64_pipeline.conversation import Conversation, parse_assistant_turn

_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|‘[^’\n]*’|(?<!\w)'[^'\n]+'(?!\w)")
_NUM = r"(?:#?\$[0-9A-Fa-f]+|#?0[xX][0-9A-Fa-f]+|#?%[01]+|#?\d+(?:[.,]\d+)*)"
_NUMBER = re.compile(rf"(?<![\w$#%]){_NUM}(?:\s*[-–]\s*{_NUM})?(?:st|nd|rd|th)?(?!\w)")
_REFERENCE = re.compile(
    r"\b(?:pages?|pp?\.|sections?|sect\.|§|chapters?|ch\.|appendix|appendices|tables?|figures?|fig\.)\s*"
    rf"(?:{_NUM}(?:\s*[-–]\s*{_NUM})?|(?-i:[A-Z])\b)",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"<[QNE]>|[A-Za-z][A-Za-z0-9]*(?:[-/'][A-Za-z0-9]+)*|\S")
_ALL_CAPS = re.compile(r"[A-Z][A-Z0-9]*(?:[-/][A-Z0-9]+)*")
_SENTENCE_END = {".", "!", "?", ":"}
_BULLETS = {"-", "*", "•", "(", ">"}
_SEP = r"[\s,/]*"
# A name with a number in it ("Sprite 0", "Voice 3 Control", "POKE 53280") is one entity.
_ENTITY_RUN = re.compile(rf"(?:<[EN]>{_SEP})*<E>(?:{_SEP}<[EN]>)*")
_MASK_RUN = re.compile(rf"(<[QN]>)(?:{_SEP}\1)+")
# Sentence-initial words that are never part of a name, even when a name follows ("The VIC-II ...").
_FUNCTION_WORDS = set(
    "a an the this that these those it its i we you they there here so then thus hence now also not only if when "
    "since because as after before while to in on at for with by from of and but or each every all both no yes "
    "what which where why how first next finally".split()
)


def _is_entity(token: str, sentence_start: bool, next_token: str) -> bool:
    if token == "I":
        return False
    if len(token) > 1 and _ALL_CAPS.fullmatch(token):
        return True
    if not token[0].isupper():
        return False
    if not sentence_start:
        return True
    # A capitalised sentence-initial word followed by a name or number starts a name: "Voice 3 Control is ...".
    followed_by_name = next_token == "<N>" or next_token[:1].isupper()
    return followed_by_name and token.lower() not in _FUNCTION_WORDS


def reasoning_skeleton(reasoning: str) -> str:
    """The reasoning with quotes, numbers/addresses and named entities masked, lower-cased, whitespace-normalised.

    Texts produced by filling the slots of one template share a skeleton; specifically written texts do not.
    """
    text = _QUOTED.sub(" <Q> ", reasoning)
    text = _REFERENCE.sub(" <E> ", text)
    text = _NUMBER.sub(" <N> ", text)
    out: list[str] = []
    for line in text.splitlines():
        tokens = _TOKEN.findall(line)
        sentence_start = True
        for i, token in enumerate(tokens):
            if token[0].isalpha() and _is_entity(token, sentence_start, tokens[i + 1] if i + 1 < len(tokens) else ""):
                token = "<E>"
            out.append(token if token.startswith("<") else token.lower())
            # A bullet or opening bracket does not end the sentence start.
            sentence_start = token in _SENTENCE_END or (sentence_start and token in _BULLETS)
    skeleton = _MASK_RUN.sub(r"\1", _ENTITY_RUN.sub("<E>", " ".join(out)))
    return re.sub(r"([(\[])\s+", r"\1", re.sub(r"\s+([.,;:!?)\]])", r"\1", skeleton))


@dataclass(frozen=True)
class ThinkStats:
    assistant_turns: int
    well_formed: int
    coverage: float
    distinct_reasoning: int
    distinct_ratio: float
    distinct_skeletons: int
    top_skeleton_share: float
    top_skeletons: list[tuple[str, int]]
    problems: dict[str, int]
    mean_reasoning_words: float
    # the same figures per knowledge family (conversations that carry a "family" key), without the top skeletons
    by_family: dict[str, dict] = field(default_factory=dict)


def think_stats(conversations: Iterable[Conversation], per_family: bool = True) -> ThinkStats:
    """Aggregate THINK metrics over the assistant turns of `conversations`, overall and (when `per_family`) for each
    knowledge family the conversations name."""
    conversations = list(conversations)
    by_family: dict[str, dict] = {}
    if per_family:
        families: dict[str, list[Conversation]] = {}
        for conversation in conversations:
            if conversation.family:
                families.setdefault(conversation.family, []).append(conversation)
        for name in sorted(families):
            s = think_stats(families[name], per_family=False)
            by_family[name] = {
                "assistant_turns": s.assistant_turns, "well_formed": s.well_formed, "distinct_ratio": s.distinct_ratio,
                "distinct_skeletons": s.distinct_skeletons, "top_skeleton_share": s.top_skeleton_share,
                "distinct_skeleton_ratio": s.distinct_skeletons / s.well_formed if s.well_formed else 0.0,
            }
    turns = 0
    problems: Counter[str] = Counter()
    reasonings: list[str] = []
    for conversation in conversations:
        for content in conversation.contents("assistant"):
            turns += 1
            parsed = parse_assistant_turn(content)
            if parsed.ok:
                reasonings.append(parsed.reasoning)
            else:
                problems[parsed.problem or "unknown"] += 1
    good = len(reasonings)
    skeletons = Counter(reasoning_skeleton(r) for r in reasonings)
    # Ties broken by text so the report is stable across runs.
    top = sorted(skeletons.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    distinct = len({" ".join(r.split()) for r in reasonings})
    return ThinkStats(
        assistant_turns=turns,
        well_formed=good,
        coverage=good / turns if turns else 0.0,
        distinct_reasoning=distinct,
        distinct_ratio=distinct / good if good else 0.0,
        distinct_skeletons=len(skeletons),
        top_skeleton_share=top[0][1] / good if good else 0.0,
        top_skeletons=top,
        problems=dict(sorted(problems.items())),
        mean_reasoning_words=sum(len(r.split()) for r in reasonings) / good if good else 0.0,
        by_family=by_family,
    )
