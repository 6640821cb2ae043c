"""The thin Dagster layer: assets, checks, resources and jobs that wire the plain modules of c64_pipeline."""
