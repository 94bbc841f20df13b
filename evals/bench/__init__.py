"""Benchmarks of cogarch components (run as `python -m cogarch.evals.bench.<name>`)."""
