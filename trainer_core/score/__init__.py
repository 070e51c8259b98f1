"""Corpus quality scoring (docs/design.md §13): rate every record from the model's own per-token loss and entropy.

`forward` runs one batched, padding-aware pass that gives the loss and the predictive entropy of every answer
token from the same logits; `modes` turns those sequences into a record's raw score, flags and spans;
`quality` maps raw scores to [0, 1]; `run` ties it together for `python -m trainer_core.score` (`nlirg score`).
This package's `__init__` imports nothing heavy, so its torch-free modules (`options`, `modes`, `quality`,
`output`, `progress`) import without torch: `python -m trainer_core.score` checks the options before it loads it.
"""
