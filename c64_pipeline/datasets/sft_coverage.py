"""How much of a corpus the SFT builder turns into conversations, and which readers' questions those answer.

- `mine_document`: one document's mined conversations and what the builder says about it; the one call the pipeline
  (splitter weights, SFT dataset) and the coverage benchmark make into the builder.
- `key_facts` / `answering_conversation`: a question/answer pair (as in ../shared/corpus/qa.jsonl) is answered when
  some conversation's final answer states the pair's key facts and cites the pair's document. Key facts come from
  the pair's answer alone: hex values ($D020, 0x01), numbers, and names written in capitals (EXTCOL, GETIN, U18);
  an answer with none of those ("Send a byte to output channel") falls back to its content words.

Plain Python: no Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from c64_pipeline.datasets.sft.common import counting_rejections
from c64_pipeline.conversation import Conversation
from c64_pipeline.datasets.sft import build_conversations, mine_facts
from c64_pipeline.ingest.extraction import PageText


def mine_document(pages: Sequence[PageText | Mapping], system_prompt: str = "", multi_turn_every: int = 4) -> tuple[list[Conversation], dict]:
    """(conversations, outcome) for one document's pages (as `mine_facts` reads them). `outcome` holds `candidates` (rows mined, refused
    ones included), `conversations`, and `rejections` ({reason: count}) for rows the families refused (debris,
    misreads, rows whose reasoning would repeat; the report names the reason a document yields no SFT from these)."""
    with counting_rejections() as rejected:
        facts = mine_facts(pages)
    conversations = build_conversations(facts, system_prompt, multi_turn_every)
    rejections = dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    # candidates: every row a family recognised, the refused ones included (the report says "all N rows rejected")
    return conversations, {"candidates": len(facts) + sum(rejections.values()), "conversations": len(conversations),
                           "rejections": rejections}


_HEX = re.compile(r"(?:\$|0x)([0-9A-Fa-f]{1,4})\b")
_NUMBER = re.compile(r"(?<![\w$.])(\d+)(?![\w])")
_CAPS = re.compile(r"\b([A-Z][A-Z0-9]*[A-Z0-9](?:-[A-Z0-9]+)*)\b")  # EXTCOL, U18, VIC-II, AEC (not "A" or "I")
_CAPITALISED = re.compile(r"(?<![.!?(]\s)(?<!^)\b([A-Z][a-z]{2,})\b")  # Border, Zylin: not a sentence's first word
_WORD = re.compile(r"[A-Za-z]{4,}")
_STOP = {"with", "that", "this", "from", "into", "than", "then", "them", "they", "each", "when", "which", "what",
         "also", "only", "both", "either", "other", "there", "their", "these", "those", "have", "been", "will",
         "approx", "variant", "original", "derivative", "author"}


@dataclass(frozen=True)
class KeyFacts:
    hex_values: frozenset[int]
    numbers: frozenset[str]
    names: frozenset[str]  # compared case-insensitively, as whole words
    words: frozenset[str]  # the fallback: content words, when the answer has none of the above

    @property
    def structured(self) -> bool:
        return bool(self.hex_values or self.numbers or self.names)

    def __bool__(self) -> bool:
        return self.structured or bool(self.words)


def key_facts(answer: str, question: str = "") -> KeyFacts:
    """The facts an answer to `question` must state: those of the pair's `answer`, plus the hex values the question
    names (its subject: "Which bits of $DD00 select the bank?" is not answered by a row about another address)."""
    hex_values = frozenset(int(m, 16) for m in _HEX.findall(answer) + _HEX.findall(question))
    without_hex = _HEX.sub(" ", answer)
    numbers = frozenset(str(int(n)) for n in _NUMBER.findall(without_hex))
    names = {m for m in _CAPS.findall(without_hex) if not m.isdigit() and not re.fullmatch(r"\d+[A-Z]?", m)}
    names |= set(_CAPITALISED.findall(without_hex.strip()))
    names = frozenset(n.lower() for n in names)
    words = frozenset()
    if not (hex_values or numbers or names):
        words = frozenset(w.lower() for w in _WORD.findall(answer) if w.lower() not in _STOP)
    return KeyFacts(hex_values, numbers, names, words)


def states(answer: str, facts: KeyFacts) -> bool:
    """Whether `answer` states every key fact (hex by value, numbers as whole numbers, names and words as whole
    words, case-insensitive)."""
    if not facts:
        return False
    if facts.hex_values - {int(m, 16) for m in _HEX.findall(answer)}:
        return False
    plain = _HEX.sub(" ", answer)
    if facts.numbers - {str(int(n)) for n in _NUMBER.findall(plain)}:
        return False
    words = {w.lower() for w in re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", plain)}
    return facts.names <= words and facts.words <= words


def answering_conversation(answer: str, doc_id: str, conversations: Iterable[Conversation], question: str = "") -> Conversation | None:
    """The first conversation citing `doc_id` whose final answer (of any turn) states the key facts of the pair."""
    facts = key_facts(answer, question)
    if not facts:
        return None
    for conversation in conversations:
        if conversation.cites(doc_id) and any(states(a, facts) for a in conversation.final_answers):
            return conversation
    return None
