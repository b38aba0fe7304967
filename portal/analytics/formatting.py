"""How the dashboard writes its numbers (called from the templates, thousands of times a page)."""

from __future__ import annotations

from datetime import timedelta

DASH = "—"


def count(value: int) -> str:
    """12,345."""
    return f"{value:,}"


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage: 9.3%."""
    return DASH if value is None else f"{value * 100:.{digits}f}%"


def times(value: float | None) -> str:
    """A ratio to the clip's length: 1.85×, and ≥ 10× at the cap."""
    if value is None:
        return DASH
    return "≥ 10×" if value >= 10 else f"{value:.2f}×"


def rate(value: float | None) -> str:
    """An error rate: 0.085."""
    return DASH if value is None else f"{value:.3f}"


def one_decimal(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}"


def age(delta: timedelta) -> str:
    """A wait as people say it: "45 min", "3 h 20 min", "2 d 4 h"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"
