"""Benchmarks of the gateway against the real Restate server (run: ``make bench``)."""
