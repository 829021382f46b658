"""Benchmarks, run by hand: python -m bench.<name> (see README.md, Benchmarks)."""
