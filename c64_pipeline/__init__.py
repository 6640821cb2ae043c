"""c64-pipeline: Commodore 64 manuals in, DAPT/SFT datasets and LoRA adapters out."""
