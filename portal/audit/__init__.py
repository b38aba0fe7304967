"""The tamper-evident access log: hash chain, signed checkpoints, export and verification."""
