"""Ingest: manuals in, page text out (discovery and rejections, text layers and layout, OCR, quality)."""
