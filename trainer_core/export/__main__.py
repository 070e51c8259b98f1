"""`python -m trainer_core.export RUN --to hf|gguf|ollama --dtype D --out DIR`: the process behind `nlirg export`.

The export is built in a temporary folder beside --out and renamed into place when complete: a failure (a model
that does not load, an architecture or tokenizer the GGUF writer does not know, a full disk) is one line on
stderr, exit 2, and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
                    "q4_1": 20 / 32, "q4_0": 18 / 32}
"""Bytes a weight takes in each type (a quantized block of 32 weights with its scale), for the free-space check."""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m trainer_core.export", description=__doc__)
    ap.add_argument("run")
    ap.add_argument("--to", default="hf")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--root", type=Path, default=Path("runs"))
    ap.add_argument("--adapter", action="store_true")
    return ap


def export(plan) -> list[str]:
    """Write the export of `plan` (from `plan_export`); returns the files written."""
    from trainer_core.atomic import building_dir
    from trainer_core.export.card import model_card
    from trainer_core.export.hf import load_merged, write_hf
    from trainer_core.export.plan import check_free_space

    model, tokenizer = load_merged(plan)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    weights = sum(p.numel() for p in model.parameters())
    check_free_space(plan.out.parent, int(weights * BYTES_PER_WEIGHT[plan.dtype]))
    if plan.to != "hf":
        from trainer_core.export.gguf_file import arch_of, tokenizer_metadata

        arch_of(model.config)  # refused before a temporary folder exists
        tokenizer_metadata(tokenizer, model.config.vocab_size)
    with building_dir(plan.out, plan.out.with_name(f".tmp-{plan.out.name}-{os.getpid()}")) as tmp:
        if plan.to == "hf":
            files = write_hf(plan, model, tokenizer, tmp)
        else:
            files = _write_gguf(plan, model, tokenizer, tmp)
        (tmp / "README.md").write_text(model_card(plan, files), encoding="utf-8")
    return [*files, "README.md"]


def _write_gguf(plan, model, tokenizer, folder: Path) -> list[str]:
    from trainer_core.export.gguf_file import write_gguf
    from trainer_core.export.ollama import modelfile

    name = f"{plan.stem}-{plan.dtype}.gguf"
    write_gguf(folder / name, model, tokenizer, plan.dtype, plan.stem)
    files = [name]
    if plan.to == "ollama":
        cfg = plan.target.config
        system = cfg.data.system_prompt if cfg is not None else None
        (folder / "Modelfile").write_text(modelfile(name, tokenizer, system), encoding="utf-8")
        files.append("Modelfile")
    return files


def main(argv: list[str] | None = None) -> int:
    from trainer_core.evaluate.__main__ import _quiet_libraries

    args = _parser().parse_args(argv)
    _quiet_libraries()
    from trainer_core.config.model_source import ModelLoadError
    from trainer_core.export.plan import ExportError, plan_export

    try:
        plan = plan_export(args.run, args.to, args.dtype, args.out, args.root, args.adapter)
        if plan.note:
            print(plan.note, file=sys.stderr)
        files = export(plan)
    except (ExportError, ModelLoadError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"error: export not written ({exc.strerror or exc}); nothing was left behind: free disk space "
              "or choose another --out", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"exported {plan.target.describe()} to {plan.out}: {', '.join(files)}")
    if plan.to == "ollama":
        print(f"load it: cd {plan.out} && ollama create {plan.stem} -f Modelfile")
    print(f"push it: hf upload YOUR-NAME/{plan.stem} {plan.out} .")
    return 0


if __name__ == "__main__":
    sys.exit(main())
