"""`python -m trainer_core.score DATA... --model M --out OUT.jsonl [...]`: the process behind `nlirg score`.

A user error (options, data, model, chat template) is one line on stderr and exit code 2; the score file and
its summary are written atomically, so a failed or interrupted run leaves no half file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from trainer_core.score.lifetime import guard
from trainer_core.score.options import ScoreError, ScoreOptions, add_arguments

EXIT_USER_ERROR = 2


def parse_args(argv: list[str] | None) -> ScoreOptions:
    ap = argparse.ArgumentParser(prog="python -m trainer_core.score", description=__doc__)
    add_arguments(ap)
    return ScoreOptions(**vars(ap.parse_args(argv)))


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for noisy in ("transformers", "torch", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    guard(opts.out)  # dies with `nlirg score`, private outputs, a killed scorer's temp files removed
    _quiet_libraries()
    try:
        opts.check()
        from trainer_core.data.records import DataError
        from trainer_core.evaluate.targets import TargetError
        from trainer_core.score.run import run  # torch loads only past the option checks
        from trainer_core.train.model.load import ModelLoadError

        try:
            run(opts)
        except (DataError, ModelLoadError, TargetError) as exc:
            raise ScoreError(str(exc).replace("\n", " ")) from None
    except ScoreError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
