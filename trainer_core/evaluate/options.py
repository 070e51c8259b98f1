"""How one evaluation runs (`EvalOptions`) and the evaluator process's command line (no torch).

The one list of an evaluation's settings: `fingerprint()` is what eval.json records and what an experiment
compares before it reuses one, and `command()` passes every field to `python -m trainer_core.evaluate eval`, so a
new field is neither left out of the comparison nor lost on the way to the evaluator.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from trainer_core.evaluate.eval_data import entry_argument, sets_digest
from trainer_core.evaluate.targets import Target


@dataclass
class EvalOptions:
    domain: list[Any] = field(default_factory=list)
    """Domain set entries: paths, builtins or `{path, columns, ...}` source mappings."""
    general: list[Any] = field(default_factory=list)
    base: str | None = None
    """Model that general retention is measured against (None: no perplexity ratio)."""
    max_new_tokens: int = 128
    batch_size: int = 8
    limit: int = 0
    """Score N items of each set, spread evenly over it (0 = all)."""
    base_result: str | None = None
    """An eval.json of the base model on the same general set: its perplexity is reused, not recomputed."""
    max_length: int | None = None
    """Longest scored sequence in tokens (None: the run's data.max_length, else 1024); an experiment gives its
    runs and the base model the same value, so their losses and perplexities compare."""
    system_prompt: str | None = None
    """System prompt for records without one (None: the run's data.system_prompt)."""
    labels: list[str] = field(default_factory=list)
    """The domain set's labels (empty: the run's eval.labels, else detected; `metrics.detect_labels`)."""

    def resolved(self, target: Target) -> EvalOptions:
        """These options with max_length and system_prompt filled in from the target's run config."""
        cfg = target.config
        return replace(self, max_length=self.max_length or (cfg.data.max_length if cfg is not None else 1024),
                       system_prompt=self.system_prompt or (cfg.data.system_prompt if cfg is not None else None),
                       labels=self.labels or (list(cfg.eval.labels) if cfg is not None else []))

    def fingerprint(self) -> dict[str, Any]:
        """What makes two evaluations of one model comparable (an experiment reuses an eval.json when equal)."""
        return {k: v for k, v in asdict(self).items() if k != "base_result"}

    def settings(self) -> dict[str, Any]:
        """The fingerprint and a digest of what the sets hold: an experiment reuses an eval.json only when both
        are unchanged (a set edited in place is scored again)."""
        return {**self.fingerprint(), "sets_digest": sets_digest([*self.domain, *self.general])}

    def command(self, target: str, out: Path) -> list[str]:
        """The evaluator process's command line: every field as its flag (`max_new_tokens` as --max-new-tokens,
        a list as one flag per entry, None left out)."""
        cmd = [sys.executable, "-m", "trainer_core.evaluate", "eval", target, "--out", str(out)]
        for f in fields(self):
            value, flag = getattr(self, f.name), "--" + f.name.replace("_", "-")
            if isinstance(value, list):
                cmd += [x for entry in value for x in (flag, entry_argument(entry))]
            elif value is not None:
                cmd += [flag, str(value)]
        return cmd
