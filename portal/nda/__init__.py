"""The NDA gate: published versions, acceptance, and the redirect that enforces it."""
