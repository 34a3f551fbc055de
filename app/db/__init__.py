"""Persistence: the tables (``models``), the engine and migrations (``engine``), one repository per table group."""
