"""`python -m trainer_core.train.data.warm --run-dir DIR`: tokenize the run's data into the shared cache and exit.

A multi-node run's node 0 does this before any rank starts (`trainer_core.live.nodes`), so no rank waits in a
collective while rank 0 tokenizes a cold corpus; the ranks then map the cached tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer_core.config import ConfigError, build_config
from trainer_core.data.records import DataError
from trainer_core.live.launch import EXIT_USER_ERROR
from trainer_core.live.rundir import CONFIG_FILE


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer_core.train.data.warm", description=__doc__)
    ap.add_argument("--run-dir", required=True, type=Path, help="run directory holding config.yaml")
    args = ap.parse_args(argv)
    from trainer_core.train.data.prepare import prepare_data
    from trainer_core.train.model.load import load_tokenizer, resolve

    try:
        cfg = build_config(args.run_dir / CONFIG_FILE)
        data = prepare_data(cfg, load_tokenizer(resolve(cfg.model), cfg.model))
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"data {'found in' if data.cached else 'prepared into'} the cache: {len(data.train)} train rows",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
