"""Benchmarks: each compares against a baseline in the same run and writes its rows to docs/BENCHMARKS.md."""
