"""Tasks: one per requested pass of a clip, for the vendors allowed to work on it."""
