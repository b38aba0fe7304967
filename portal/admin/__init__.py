"""Administration: vendors, users, second-factor resets, session revocation, NDA publishing."""
