"""`python -m trainer_core --run-dir DIR`: the trainer process of one run (one per rank under DeepSpeed).

It reads DIR/config.yaml, writes trainer.json / events.jsonl / trainer.log / summary.json there, and
turns every user error (config, data, model) into one line on stderr, an `error` event and exit code 2
(`trainer_core.train.lifecycle`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer_core.config import RunConfig
from trainer_core.live.jit_cache import use_jit_cache
from trainer_core.live.terminal import make_output_best_effort
from trainer_core.train.lifecycle import run_trainer
from trainer_core.train.ranks import launcher_rank


def generation_probe(cfg: RunConfig):
    """The eval.generate_every probe (`evaluate.probe`), imported once the trainer sets up (torch loads later)."""
    from trainer_core.evaluate.probe import GenerationProbe

    return GenerationProbe.build(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer_core", description=__doc__)
    ap.add_argument("--run-dir", required=True, type=Path, help="run directory holding config.yaml")
    ap.add_argument("--resume", type=Path, default=None, help="checkpoint folder to continue from")
    ap.add_argument("--keep-lr-scale", action="store_true",
                    help="with --resume: keep the checkpoint's live lr_scale instead of starting at 1")
    ap.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    args = ap.parse_args(argv)
    make_output_best_effort()  # a closed pipe or terminal never ends a run (`nlirg train ... | head -1`)
    use_jit_cache()  # before DeepSpeed starts: its ops build in this environment's folder (live/jit_cache.py)
    return run_trainer(args.run_dir.resolve(), launcher_rank(), args.resume, args.progress, args.keep_lr_scale,
                       make_probe=generation_probe)


if __name__ == "__main__":
    sys.exit(main())
