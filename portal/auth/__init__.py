"""Accounts and the first two gates: password, TOTP second factor, server-side sessions."""
