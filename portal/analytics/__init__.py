"""Supervisors' throughput and quality dashboard: figures, charts and CSV downloads."""
