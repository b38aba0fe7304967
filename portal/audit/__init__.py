"""The tamper-evident access log: hash chain, signed checkpoints, search, reports, export, verification."""
