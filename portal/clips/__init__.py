"""Clips: consent-checked, de-identified, encrypted ingest; erasure and retention."""
