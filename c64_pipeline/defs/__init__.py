"""The Dagster layer, one folder per stage (as in Dagster's open platform `defs/<area>/`): each stage's assets,
checks, sensors and resources side by side, merged in `c64_pipeline/definitions.py`. Shared by several stages:
`resources` (paths, page reader, model source, thresholds), `io_managers`, `partitions` and `jobs`."""
