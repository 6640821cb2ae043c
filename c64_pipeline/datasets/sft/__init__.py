"""Grounded SFT conversations mined from page text, one module per knowledge family.

- registers: memory-map and register rows ("$D020 | 53280 | EXTCOL | Border colour")
- kernal: KERNAL/ROM routine entries (call address, purpose, registers in and out, preparatory routines, errors)
- instructions: CPU opcode tables and mnemonic lists
- basic: BASIC keywords (token, purpose, example) and error messages
- pinouts: pin/signal tables
- bits: the bit fields of a register (bit rows under a register row, or a column per bit)
- tables: rows of other tables with a header (name, value, meaning)
- procedures: numbered steps, with what they are for
- properties: labelled values of an entry (Default:, Command format:, Stack requirements:)
- prose: definitions and numeric statements in sentences, and section-level explanations

`mine_facts(pages)` returns the records of every family, `build_conversations(records, system_prompt)` turns them
into chat conversations; each carries `family`, `source_refs` (document, page, line, verbatim evidence) and `doc_id`.
Families that read table rows claim their lines first, so a line is taught by one family only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from c64_pipeline.datasets.sft.basic import mine_basic
from c64_pipeline.datasets.sft.bits import mine_bits
from c64_pipeline.datasets.sft.common import Mined
from c64_pipeline.datasets.sft.conversations import build_conversations
from c64_pipeline.datasets.sft.instructions import mine_instructions
from c64_pipeline.datasets.sft.kernal import mine_routines
from c64_pipeline.datasets.sft.pinouts import mine_connectors, mine_dip, mine_pinouts
from c64_pipeline.datasets.sft.procedures import mine_procedures
from c64_pipeline.datasets.sft.properties import mine_properties
from c64_pipeline.datasets.sft.prose import mine_prose
from c64_pipeline.datasets.sft.registers import Fact
from c64_pipeline.datasets.sft.registers import mine_facts as mine_register_facts
from c64_pipeline.datasets.sft.tables import mine_tables
from c64_pipeline.ingest.extraction import PageText, as_page

FAMILIES = ("register", "bit_field", "kernal_routine", "instruction", "basic_keyword", "pinout", "table_row", "procedure", "entry_property", "definition", "section")


def mine_facts(pages: Iterable[PageText | Mapping]) -> list[Mined]:
    """Records of every family from pages (`PageText` records; a dict with doc_id, page, text and optionally method is
    read as one), grouped by family, each family in page and line order."""
    pages = [p for p in map(as_page, pages) if p.has_text]
    taken: set[tuple[str, int, int]] = set()
    records: list[Mined] = []
    for miner in (mine_routines, mine_instructions, mine_basic, mine_pinouts, mine_bits):
        found, lines = miner(pages)
        records += found
        taken |= lines
    registers = mine_register_facts(pages, skip=taken)
    taken |= {(f.doc_id, f.page, f.line_no + k) for f in registers for k in range(f.evidence.count("\n") + 1)}
    for miner in (mine_dip, mine_connectors):
        found, lines = miner(pages, taken)
        records += found
        taken |= lines
    for miner in (mine_tables, mine_procedures, mine_properties):
        found, lines = miner(pages, taken)
        records += found
        taken |= lines
    return registers + records + mine_prose(pages, taken)


__all__ = ["FAMILIES", "Fact", "Mined", "build_conversations", "mine_facts"]
