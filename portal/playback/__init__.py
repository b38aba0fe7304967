"""Streaming without download links: short-lived playback grants and range requests."""
