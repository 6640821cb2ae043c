"""Training half, plain Python (no Dagster): recipe, strict model loading, DAPT and SFT LoRA runs, run manifests
and the three-way evaluation (base, base+DAPT, base+DAPT+SFT)."""
