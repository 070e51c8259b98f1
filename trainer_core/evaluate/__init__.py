"""Evaluation and controlled experiments (DESIGN §12): does NLIRG help on *my* data?

- `metrics`, `stats`: pure functions (no torch): answer matching, repetition, JSON validity, loss fluctuation;
  mean ± std and Welch's interval with a t quantile computed here.
- `eval_data`, `targets`: reading evaluation sets and resolving what `nlirg eval TARGET` points at (no torch).
- `generate`, `losses`, `evaluator`: the model side: batched greedy generation, eval loss and perplexity, the
  whole `nlirg eval` (imports torch).
- `probe`: generation metrics during training (`eval.generate_every`).
- `experiment`, `report`, `experiments`: `nlirg ab` (no torch: it starts trainer and evaluator processes).

This package's `__init__` imports nothing, so the torch-free modules stay importable from the CLI.
"""
