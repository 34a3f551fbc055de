"""Benchmarks that print the numbers the README quotes; each runs as a module: ``python -m bench.search``."""
