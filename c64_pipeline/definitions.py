"""Everything Dagster loads: `dagster dev -w workspace.yaml` and the demo both start here."""

from __future__ import annotations

from dagster import (
    AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus, Definitions, PipesSubprocessClient,
)

from c64_pipeline.defs.datasets.checks import data_checks
from c64_pipeline.defs.datasets.assets import (
    base_model, dapt_dataset, document_splits, sft_dataset, token_chunks, validation_report,
)
from c64_pipeline.defs.ingest.assets import page_text, raw_pdfs
from c64_pipeline.defs.io_managers import JsonAssetStore
from c64_pipeline.defs.export.assets import export_assets, export_checks
from c64_pipeline.defs.jobs import dataset_job, export_job, ingest_job, training_job
from c64_pipeline.defs.alerts.resources import AlertSink
from c64_pipeline.defs.alerts.sensors import ALERT_SENSORS
from c64_pipeline.defs.ingest.sensors import new_manuals_sensor, nightly_manuals_rescan
from c64_pipeline.defs.resources import BaseModelSource, PageReader, PipelinePaths, QualityThresholds
from c64_pipeline.defs.training.assets import TrainingLauncher, dapt_adapter, model_evaluation, sft_adapter
from c64_pipeline.defs.training.checks import training_checks
from c64_pipeline.settings import paths_from_env

ASSETS = [
    raw_pdfs, page_text, base_model, token_chunks, document_splits, dapt_dataset, sft_dataset, validation_report,
    dapt_adapter, sft_adapter, model_evaluation, *export_assets,
]


def default_resources() -> dict:
    env = paths_from_env()
    return {
        "io_manager": JsonAssetStore(base_dir=str(env.storage_dir)),
        "paths": PipelinePaths.from_env(),
        "page_reader": PageReader(),
        "model_source": BaseModelSource.from_env(),
        "thresholds": QualityThresholds(),
        "alert_sink": AlertSink.from_env(),
        "training_launcher": TrainingLauncher.from_env(),
        "pipes_subprocess_client": PipesSubprocessClient(),
    }


automation_sensor = AutomationConditionSensorDefinition(
    "dataset_automation", target=AssetSelection.all(), default_status=DefaultSensorStatus.RUNNING,
    description="Refreshes the datasets once new or changed manuals have been read; retrains nightly when inputs "
    "changed and every blocking check passed.",
)


def build_definitions(resources: dict | None = None, extra_assets: list | None = None) -> Definitions:
    """The project's Definitions; tests and other deployments swap resources (paths, OCR engine, thresholds)."""
    return Definitions(
        assets=ASSETS + list(extra_assets or []),
        asset_checks=data_checks + training_checks + export_checks,
        jobs=[ingest_job, dataset_job, training_job, export_job],
        sensors=[new_manuals_sensor, *ALERT_SENSORS, automation_sensor],
        schedules=[nightly_manuals_rescan],
        resources={**default_resources(), **(resources or {})},
    )


defs = build_definitions()
