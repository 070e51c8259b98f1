"""Evaluation and controlled experiments (docs/design.md §12): does NLIRG help on *my* data?

- `metrics`, `stats`: pure functions (no torch): answer matching, repetition, JSON validity, loss fluctuation;
  mean ± std and Welch's interval with a t quantile computed here.
- `eval_data`, `targets`, `options`: reading evaluation sets, resolving what `nlirg eval TARGET` points at, an
  evaluation's settings and the evaluator's command line (no torch).
- `inference`, `generate`, `losses`, `evaluator`: the model side: loading a model to run it (shared with
  `nlirg score`), batched greedy generation, eval loss and perplexity, the whole `nlirg eval` (imports torch).
- `probe`: generation metrics during training (`eval.generate_every`).
- `commands`, `experiment`, `runner`, `report`: the checks before `nlirg eval` / `nlirg ab` start, and `nlirg ab`
  itself (no torch: it starts trainer and evaluator processes).

This package's `__init__` imports nothing, so the torch-free modules stay importable from the CLI.
"""
