"""`python -m trainer_core.train.merge_final --run-dir RUN`: merge a finished LoRA run's final/ adapter into its
base and write final/merged, touching nothing else of the run.

`nlirg train --resume RUN --merge-lora` on a run with no steps left comes here instead of starting a trainer: a
trainer would record a new start, re-run the evaluation, rewrite summary.json and reset the live lr_scale
(README, "Resuming"). The merged folder is built beside final/ and renamed into place whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer_core.atomic import building_dir
from trainer_core.config import ConfigError, build_config
from trainer_core.live.launch import EXIT_USER_ERROR
from trainer_core.live.rundir import CONFIG_FILE, FINAL

MERGED = "merged"


def merge_final(run_dir: Path) -> Path:
    """Write run_dir/final/merged from final/ (the adapter) and the config's base model; return its path."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer_core.train.model.load import ModelLoadError, resolve

    cfg = build_config(run_dir / CONFIG_FILE)
    final = run_dir / FINAL
    path = resolve(cfg.model)
    try:
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                    trust_remote_code=cfg.model.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - any loader failure is one user-facing line
        raise ModelLoadError(f"model.path: cannot load '{cfg.model.path}': {exc}".splitlines()[0]) from exc
    merged = PeftModel.from_pretrained(base, str(final)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(final), trust_remote_code=cfg.model.trust_remote_code)
    target = final / MERGED
    with building_dir(target) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer_core.train.merge_final", description=__doc__)
    ap.add_argument("--run-dir", required=True, type=Path, help="a finished LoRA run (holding final/)")
    args = ap.parse_args(argv)
    from trainer_core.train.model.load import ModelLoadError

    try:
        target = merge_final(args.run_dir.resolve())
    except (ConfigError, ModelLoadError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"error: final/merged not written ({exc.strerror or exc}); free disk space under {args.run_dir} and "
              "run it again (the run is unchanged)", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"merged model written to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
