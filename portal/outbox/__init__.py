"""Accepted corrections, in commit order, for the speech team's service client."""
