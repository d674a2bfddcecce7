"""Benchmarks of offerrank: scripts that print their figures (see README.md here)."""
