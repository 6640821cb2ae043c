"""Datasets: page text in, DAPT chunks, document splits, SFT conversations and the validation report out."""
