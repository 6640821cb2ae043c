"""Ingest: raw_pdfs and page_text per manual partition, and the sensor that follows the manuals folder."""
