"""`python -m trainer_core.evaluate`: the process behind `nlirg eval` (one model) and `nlirg ab --detach`.

`nlirg` itself never imports torch: it checks the arguments, then runs this module. A user error (bad TARGET,
data without references, a model that does not load) is one line on stderr and exit code 2; eval.json is written
atomically, so an interrupted evaluation leaves none or the previous one.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m trainer_core.evaluate", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="evaluate one model")
    ev.add_argument("target")
    ev.add_argument("--root", type=Path, default=Path("runs"))
    ev.add_argument("--domain", action="append", default=[])
    ev.add_argument("--general", action="append", default=[])
    ev.add_argument("--base", default=None)
    ev.add_argument("--base-result", default=None)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--max-new-tokens", type=int, default=128)
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--limit", type=int, default=0)
    ev.add_argument("--max-length", type=int, default=None)
    ev.add_argument("--system-prompt", default=None)
    ev.add_argument("--labels", action="append", default=[])
    ev.add_argument("--quiet", action="store_true")
    ab = sub.add_parser("ab", help="run (or continue) a prepared experiment folder")
    ab.add_argument("experiment", type=Path)
    ab.add_argument("--gpus", default=None, help="comma list of GPU ids: one run per GPU at a time")
    return ap


def _quiet_libraries() -> None:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for noisy in ("transformers", "peft", "torch", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def eval_options(args: argparse.Namespace):
    """The EvalOptions that `EvalOptions.command` wrote as this command line."""
    from trainer_core.evaluate.eval_data import parse_entries
    from trainer_core.evaluate.options import EvalOptions

    return EvalOptions(domain=parse_entries(args.domain), general=parse_entries(args.general), base=args.base,
                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
                       base_result=args.base_result, max_length=args.max_length, system_prompt=args.system_prompt,
                       labels=args.labels)


def run_eval(args: argparse.Namespace) -> int:
    from trainer_core.evaluate.eval_lock import EvalBusy, hold_eval

    try:
        lock = hold_eval(args.out)  # one evaluator per output: an experiment's rerun waits for this one
    except EvalBusy as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    try:
        return _evaluate(args)
    finally:
        if lock is not None:
            lock.close()


def _evaluate(args: argparse.Namespace) -> int:
    from trainer_core.config import ConfigError
    from trainer_core.data.records import DataError
    from trainer_core.evaluate.evaluator import evaluate
    from trainer_core.evaluate.report import eval_table
    from trainer_core.evaluate.targets import TargetError, resolve_target
    from trainer_core.live.rundir import write_json_atomic
    from trainer_core.train.model.load import ModelLoadError

    say = (lambda _: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    try:
        opts = eval_options(args)
        result = evaluate(resolve_target(args.target, args.root), opts, say)
    except (TargetError, DataError, ModelLoadError, ConfigError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"interrupted: {args.out} not written", file=sys.stderr, flush=True)
        return 130
    write_json_atomic(args.out, result)
    if not args.quiet:
        print("\n".join(eval_table(result)))
        print(f"written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _quiet_libraries()
    if args.command == "eval":
        return run_eval(args)
    from trainer_core.evaluate.experiment import ExperimentError
    from trainer_core.evaluate.runner import RunFailed, run_experiment

    gpus = [g for g in (args.gpus or "").split(",") if g] or None
    try:
        return run_experiment(args.experiment, lambda text: print(text, flush=True), gpus)
    except (ExperimentError, RunFailed) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR if isinstance(exc, ExperimentError) else 1


if __name__ == "__main__":
    sys.exit(main())
