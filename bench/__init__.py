"""Benchmarks: each prints ratios measured side by side in one process, ending with one JSON line."""
