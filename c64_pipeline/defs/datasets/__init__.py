"""Datasets: base model, token chunks, splits, DAPT and SFT datasets, the validation report, and their gates."""
