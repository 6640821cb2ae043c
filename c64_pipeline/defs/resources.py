"""Typed, UI-editable configuration of where data lives, how pages are read, which model is used, and how
strict the data gates are."""


from pathlib import Path

from dagster import ConfigurableResource

from c64_pipeline.ingest.extraction import ExtractionSettings
from c64_pipeline.settings import paths_from_env


class PipelinePaths(ConfigurableResource):
    """Folders the graph reads from and writes to (defaults come from the C64_* environment variables)."""

    manuals_dir: str
    curated_sft_dir: str
    processed_dir: str
    docs_dir: str
    models_dir: str
    eval_dir: str | None = None  # the user's exam (*.jsonl question/answer pairs); None: no exam

    @classmethod
    def from_env(cls) -> "PipelinePaths":
        p = paths_from_env()
        return cls(
            manuals_dir=str(p.manuals_dir),
            curated_sft_dir=str(p.curated_sft_dir),
            processed_dir=str(p.processed_dir),
            docs_dir=str(p.docs_dir),
            models_dir=str(p.models_dir),
            eval_dir=str(p.eval_dir),
        )

    @property
    def processed(self) -> Path:
        return Path(self.processed_dir)


_READING = ExtractionSettings()


class PageReader(ConfigurableResource):
    """How page text is obtained: when a page goes to OCR, and which OCR engine reads it. Fields and defaults are
    `ExtractionSettings`' (ingest/extraction.py), where each is explained; `ocr_dpi` None keeps the engine's own
    resolution (Tesseract 300, EasyOCR 200); `ocr_lighten_fills` is a Tesseract option."""

    ocr_engine: str = _READING.ocr_engine
    ocr_dpi: int | None = None
    ocr_lighten_fills: bool = False  # Tesseract: text on coloured boxes made dark on paper first (see README)
    ocr_workers: int = _READING.ocr_workers
    min_chars: int = _READING.min_chars
    min_quality: float = _READING.min_quality
    image_share_for_ocr: float = _READING.image_share_for_ocr
    header_band: float = _READING.header_band
    header_min_share: float = _READING.header_min_share

    def settings(self) -> ExtractionSettings:
        return ExtractionSettings(
            min_chars=self.min_chars,
            min_quality=self.min_quality,
            image_share_for_ocr=self.image_share_for_ocr,
            ocr_engine=self.ocr_engine,
            ocr_options={**({"dpi": self.ocr_dpi} if self.ocr_dpi else {}),
                         **({"lighten_fills": True} if self.ocr_lighten_fills else {})},
            ocr_workers=self.ocr_workers,
            header_band=self.header_band,
            header_min_share=self.header_min_share,
        )


class BaseModelSource(ConfigurableResource):
    """The model the data is tokenized for: the tiny demo model built here, or the real checkpoint."""

    mode: str = "demo"  # "demo" or "real"
    model_dir: str
    demo_vocab_size: int = 4096

    @classmethod
    def from_env(cls) -> "BaseModelSource":
        p = paths_from_env()
        return cls(mode=p.model_mode, model_dir=str(p.base_model_dir))


class QualityThresholds(ConfigurableResource):
    """Thresholds of the blocking data checks that gate training."""

    min_coverage_ratio: float = 0.9
    min_think_coverage: float = 0.995
    min_distinct_think_ratio: float = 0.9
    max_skeleton_share: float = 0.1
    # distinct skeletons per well-formed turn: a few templates with plain-word slot fills pass the two checks
    # above but still reuse a handful of skeletons
    min_distinct_skeleton_ratio: float = 0.5
    max_near_duplicate_pairs: int = 0
    # validation_not_empty: the validation split holds at least this many rows, and, once held_out_share_from_documents
    # documents are accepted, at least min_validation_share of the DAPT tokens and of the SFT conversations (ERROR:
    # a split too small to measure anything blocks training); split_balance: validation and test each hold between
    # min_ and max_held_out_share of both, from that many documents on (WARN: the splitter places whole documents, so
    # a share a little off its 10% target is reported, not a reason to stop)
    min_validation_sft_conversations: int = 5
    min_validation_dapt_chunks: int = 1
    min_validation_share: float = 0.02
    min_held_out_share: float = 0.05
    max_held_out_share: float = 0.2
    held_out_share_from_documents: int = 10
    # sft_coverage: share of documents with text that yield an SFT conversation, and of their pages that SFT cites;
    # severity WARN (reported, training goes on) or ERROR (blocks training)
    min_sft_document_share: float = 0.9
    min_sft_page_share: float = 0.5
    sft_coverage_severity: str = "WARN"
    # after training: share of held-out prompts whose generation keeps [THINK]...[/THINK]answer</s>
    min_reasoning_format_rate: float = 0.9
