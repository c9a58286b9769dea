"""Data: table reading/writing (:mod:`.tables`), schemas, PII, drift and bias checks."""
