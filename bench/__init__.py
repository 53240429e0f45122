"""Benchmarks for Parley (see docs/benchmarks.md); nothing here is imported by the app."""
