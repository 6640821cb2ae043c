"""Jobs: per-document ingestion (one partition a run) and the corpus-wide data half."""

from dagster import AssetSelection, define_asset_job

from c64_pipeline.defs.partitions import manual_partitions

# Per-run time limits (seconds), enforced by run monitoring (deploy/dagster*.yaml): a run stuck on a pathological
# input ends as a failed run instead of hanging. Ingest runs batch every new document, OCR included, hence hours.
MAX_RUNTIME_TAG = "dagster/max_runtime"
INGEST_MAX_RUNTIME_S = 12 * 3600
DATASET_MAX_RUNTIME_S = 4 * 3600
TRAINING_MAX_RUNTIME_S = 48 * 3600

INGEST_ASSETS = AssetSelection.assets("raw_pdfs", "page_text")
DATASET_ASSETS = AssetSelection.groups("dataset")

ingest_job = define_asset_job(
    "ingest_documents", selection=INGEST_ASSETS, partitions_def=manual_partitions,
    description="Read one document: identity, then page text (OCR where needed).",
    tags={MAX_RUNTIME_TAG: str(INGEST_MAX_RUNTIME_S)},
)
dataset_job = define_asset_job(
    "build_datasets", selection=DATASET_ASSETS,
    description="Chunks, splits, DAPT and SFT datasets and the validation report, with the blocking data checks.",
    tags={MAX_RUNTIME_TAG: str(DATASET_MAX_RUNTIME_S)},
)

TRAINING_ASSETS = AssetSelection.groups("training", "evaluation")

training_job = define_asset_job(
    "train_and_evaluate", selection=TRAINING_ASSETS,
    description="DAPT then SFT LoRA adapters, then the evaluation; refused unless every blocking data check passed.",
    tags={MAX_RUNTIME_TAG: str(TRAINING_MAX_RUNTIME_S)},
)

EXPORT_ASSETS = AssetSelection.groups("export")

export_job = define_asset_job(
    "export_model", selection=EXPORT_ASSETS,
    description="Merge base + DAPT + SFT into plain safetensors, convert to GGUF with llama.cpp's converter, write the "
    "Ollama Modelfile and check the GGUF under llama.cpp. Its own job: it needs the trained adapters and a llama.cpp "
    "tree (C64_LLAMA_CPP_DIR).",
    tags={MAX_RUNTIME_TAG: str(TRAINING_MAX_RUNTIME_S)},
)
