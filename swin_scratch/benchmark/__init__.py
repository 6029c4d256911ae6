"""Benchmark helpers: interleaved timing so that peers share the machine's state fairly."""
