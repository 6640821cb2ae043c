"""Training: the DAPT and SFT adapters (run through Dagster Pipes in their own process), the evaluation, and their checks."""
