"""Benchmarks: each prints a measurement and its ratio to a baseline measured in the same run."""
