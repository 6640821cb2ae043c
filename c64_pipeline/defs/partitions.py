"""One dynamic partition per source document in the manuals folder."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

manual_partitions = DynamicPartitionsDefinition(name="manuals")


def contiguous_ranges(ordered_keys: list[str], wanted: set[str]) -> list[tuple[str, str]]:
    """Group `wanted` partitions into as few [start, end] ranges of `ordered_keys` as possible, so that a batch
    of manuals is read in one run (a run costs seconds to start) rather than one run per file."""
    ranges: list[tuple[str, str]] = []
    start = previous = None
    for key in ordered_keys:
        if key in wanted:
            start = start or key
            previous = key
        elif start is not None:
            ranges.append((start, previous))
            start = None
    if start is not None:
        ranges.append((start, previous))
    return ranges


def range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
