"""Flagged samples: those with zeroed tokens (loss >= deadline) or a high mean loss, worst first,
with their text token by token so the Inspector can show exactly what the model choked on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from trainer_core.atomic import AppendFile
from trainer_core.config import TelemetryConfig
from trainer_core.live.rundir import FLAGGED_FILE
from trainer_core.train.data.batch import IGNORE
from trainer_core.train.data.token_text import token_texts
from trainer_core.train.data.tokenized import TokenizedSet
from trainer_core.train.telemetry.flag_window import window
from trainer_core.train.telemetry.step_stats import IntervalStats, Telemetry

log = logging.getLogger("trainer_core")


class FlaggedTracker:
    """Keeps the worst flagged samples and reports only the ones that are new or changed."""

    def __init__(self, run_dir: Path, tokenizer, cfg: TelemetryConfig):
        self.path = run_dir / FLAGGED_FILE
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.seen: dict[int, tuple[int, float]] = {}
        self.disk_error: str | None = None
        """Why the last write to flagged.jsonl failed (a full disk), until one succeeds again."""

    def update(self, stats: IntervalStats, telemetry: Telemetry, samples: TokenizedSet, step: int,
               ) -> list[dict[str, Any]]:
        by_id = {}
        for sid, sum_loss, n, zeroed, max_loss in stats.rows:
            if n == 0:
                continue
            mean = sum_loss / n
            if zeroed > 0 or mean >= self.cfg.flag_threshold:
                by_id[sid] = (mean, zeroed, max_loss)
        out = []
        for sid, (mean, zeroed, max_loss) in sorted(by_id.items(), key=lambda kv: (-kv[1][1], -kv[1][0])):
            key = (zeroed, round(mean, 3))
            if self.seen.get(sid) == key or len(out) >= self.cfg.max_flagged:
                continue
            detail = telemetry.token_detail(sid)
            if detail is None:
                continue
            self.seen[sid] = key
            out.append(self._describe(samples, sid, detail, mean, zeroed, max_loss, step))
        if out:
            self.append(out)
        return out

    def append(self, items: list[dict[str, Any]]) -> None:
        """Add the lines to flagged.jsonl; a full disk skips them (whole: no torn line) and says so once."""
        data = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode("utf-8")
        try:
            out = AppendFile(self.path)
            try:
                out.append(data)
            finally:
                out.close()
        except OSError as exc:
            if self.disk_error is None:
                log.error("%s not written (%s): flagged samples reach the live view but not the file until there "
                          "is space; free disk space", self.path, exc.strerror or exc)
            self.disk_error = exc.strerror or str(exc)
            return
        self.disk_error = None

    def _describe(self, samples: TokenizedSet, sid: int, detail, mean: float, zeroed: int, max_loss: float,
                  step: int) -> dict[str, Any]:
        sample = samples[sid]  # a row of the memory-mapped set: sample_id is its index
        losses, weights, zones, positions = detail
        ids = sample.input_ids
        n = len(ids)
        token_loss: list[float | None] = [None] * n
        token_weight: list[float | None] = [None] * n
        token_zone: list[int | None] = [None] * n
        targets = [t for t in range(1, n) if sample.labels[t] != IGNORE]
        for t, loss, w, z in zip(positions or targets, losses, weights, zones, strict=False):  # token_batch: windows
            token_loss[t], token_weight[t], token_zone[t] = round(loss, 4), round(w, 6), int(z)
        origin = samples.origin(sid)
        start, end = window(token_loss, token_zone)  # a long context: a window around its zeroed tokens
        return {
            "sample_id": sid, "step": step, "source": origin["source"], "line": origin["line"], "id": origin["id"],
            "mean_loss": round(mean, 4), "max_loss": round(max_loss, 4),
            "zeroed_tokens": zeroed, "target_tokens": len(targets),
            "tokens": token_texts(self.tokenizer, list(ids[start:end])),
            "losses": token_loss[start:end], "weights": token_weight[start:end], "zones": token_zone[start:end],
            "offset": start, "length": n,
        }
