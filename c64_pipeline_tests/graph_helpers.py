"""Run the project's Dagster graph in-process on small data in a temporary folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance

from c64_pipeline.definitions import build_definitions
from c64_pipeline.defs.io_managers import JsonAssetStore
from c64_pipeline.defs.resources import BaseModelSource, PageReader, PipelinePaths, QualityThresholds
from c64_pipeline.demo.runner import DataHalfRun, materialize_data_half

SMALL_CORPUS = {
    "vic_registers.md": [
        ("$D011", 53265, "SCROLY", "Vertical fine scroll, screen height and raster bit 8"),
        ("$D012", 53266, "RASTER", "Current raster line, low eight bits"),
        ("$D015", 53269, "SPENA", "Sprite enable bits, one per sprite"),
        ("$D016", 53270, "SCROLX", "Horizontal fine scroll and multicolour mode"),
        ("$D018", 53272, "VMCSB", "Screen and character memory base address"),
        ("$D020", 53280, "EXTCOL", "Border colour (bits 0-3)"),
        ("$D021", 53281, "BGCOL0", "Background colour 0 (bits 0-3)"),
    ],
    "sid_registers.md": [
        ("$D400", 54272, "FRELO1", "Voice 1 frequency, low byte"),
        ("$D401", 54273, "FREHI1", "Voice 1 frequency, high byte"),
        ("$D404", 54276, "VCREG1", "Voice 1 control: waveform, gate and sync"),
        ("$D405", 54277, "ATDCY1", "Voice 1 attack and decay durations"),
        ("$D418", 54296, "SIGVOL", "Master volume and filter mode select"),
    ],
    "cia_registers.md": [
        ("$DC00", 56320, "CIAPRA", "Data port A, keyboard column select and joystick 2"),
        ("$DC01", 56321, "CIAPRB", "Data port B, keyboard row read and joystick 1"),
        ("$DC04", 56324, "TIMALO", "Timer A low byte"),
        ("$DC0D", 56333, "CIAICR", "Interrupt control and status register"),
    ],
    "kernal_routines.md": [
        ("$FFD2", 65490, "CHROUT", "writes the character in the accumulator to the current output channel"),
        ("$FFE4", 65508, "GETIN", "takes one character from the keyboard buffer"),
        ("$FFCF", 65487, "CHRIN", "reads a character from the current input channel"),
        ("$FFBA", 65466, "SETLFS", "sets the logical file, device and secondary address"),
    ],
}


def write_small_corpus(folder: Path, names: list[str] | None = None) -> list[Path]:
    """Markdown references with register tables and prose: enough for every split, no OCR needed."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in SMALL_CORPUS.items():
        if names is not None and name not in names:
            continue
        title = name.removesuffix(".md").replace("_", " ").title()
        lines = [f"# {title}", "", f"Notes on the {title.lower()} of the Commodore 64, written for this test.", ""]
        lines += ["| Address | Decimal | Name | Description |", "|---|---|---|---|"]
        lines += [f"| {a} | {d} | {n} | {desc} |" for a, d, n, desc in rows]
        lines += ["", f"Each {title.lower()} entry above is used from BASIC with PEEK and POKE or from machine code."]
        path = folder / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written


@dataclass
class Workspace:
    root: Path
    manuals: Path
    processed: Path
    docs: Path
    model_dir: Path

    @classmethod
    def create(cls, root: Path, model_dir: Path) -> "Workspace":
        ws = cls(root, root / "manuals", root / "processed", root / "docs", model_dir)
        ws.manuals.mkdir(parents=True, exist_ok=True)
        return ws

    def resources(self, thresholds: QualityThresholds | None = None, page_reader: PageReader | None = None) -> dict:
        return {
            "io_manager": JsonAssetStore(base_dir=str(self.root / "interim")),
            "paths": PipelinePaths(
                manuals_dir=str(self.manuals), curated_sft_dir=str(self.root / "curated"),
                processed_dir=str(self.processed), docs_dir=str(self.docs), models_dir=str(self.root / "models"),
            ),
            "page_reader": page_reader or PageReader(ocr_workers=2),
            # the session's tiny model, validated as the real model would be (saves rebuilding it per test)
            "model_source": BaseModelSource(mode="real", model_dir=str(self.model_dir)),
            "thresholds": thresholds or QualityThresholds(),
        }

    def run(self, instance: DagsterInstance, extra_assets=None, only=None, **resource_overrides) -> DataHalfRun:
        defs = build_definitions(self.resources(**resource_overrides), extra_assets=extra_assets)
        return materialize_data_half(defs, instance, self.manuals, only=only)

    def report(self) -> dict:
        return json.loads((self.processed / "validation_report.json").read_text())

    def page_text(self) -> dict[str, dict]:
        """file name -> {page number: page record}, as the page_text asset stored them."""
        out = {}
        for path in sorted((self.root / "interim" / "page_text").glob("*.json")):
            result = json.loads(path.read_text())
            out[result["file_name"]] = {p["page"]: p for p in result["pages"]}
        return out

    def sft_rows(self, split: str) -> list[dict]:
        return [json.loads(line) for line in (self.processed / "sft" / f"{split}.jsonl").read_text().splitlines()]
