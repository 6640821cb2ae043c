"""One dynamic partition per source document in the manuals folder."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, DynamicPartitionsDefinition

from c64_pipeline.documents import discover_documents

manual_partitions = DynamicPartitionsDefinition(name="manuals")


def sync_manual_partitions(instance: DagsterInstance, manuals_dir: Path) -> tuple[list[str], list[str]]:
    """Make the partitions match the folder; return (added, removed) partition keys."""
    present = set(discover_documents(manuals_dir))
    known = set(instance.get_dynamic_partitions(manual_partitions.name))
    added, removed = sorted(present - known), sorted(known - present)
    if added:
        instance.add_dynamic_partitions(manual_partitions.name, added)
    for key in removed:
        instance.delete_dynamic_partition(manual_partitions.name, key)
    return added, removed
