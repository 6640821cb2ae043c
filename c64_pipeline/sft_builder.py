"""Compatibility entry points: the SFT builder now lives in the `c64_pipeline.sft` package (one module per family)."""

from c64_pipeline.sft import FAMILIES, build_conversations, mine_facts
from c64_pipeline.conversation import THINK_CLOSE, THINK_OPEN
from c64_pipeline.sft.common import Turn, assistant_content, doc_title
from c64_pipeline.sft.kernal import Routine
from c64_pipeline.sft.registers import Fact, kind_of_location, parse_fact_line


def is_routine(record) -> bool:
    return isinstance(record, Routine)


def question_kinds(record) -> list[str]:
    return record.kinds()


def build_turn(record, kind: str) -> Turn:
    return record.turn(kind)


__all__ = ["FAMILIES", "THINK_CLOSE", "THINK_OPEN", "Fact", "Routine", "Turn", "assistant_content", "build_conversations",
           "build_turn", "doc_title", "is_routine", "kind_of_location", "mine_facts", "parse_fact_line", "question_kinds"]
