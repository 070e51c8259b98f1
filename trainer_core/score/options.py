"""What `nlirg score` was asked to do, checked before anything loads (torch-free).

`ScoreOptions` is the one list of the options: each field's `help`, `metavar` (and `short` flag) is what `nlirg score
--help` shows, `python -m trainer_core.score` parses the same fields (`add_arguments`), and `argv()` passes every
one of them from the CLI to that process, so an option is added in one place.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from trainer_core.config import DATA_FORMATS
from trainer_core.config.choices import DTYPES
from trainer_core.score.modes import AUTO, DEFAULT_MODE, MODES, PLAIN_TEXT_MODE, PROMPT_ANSWER_MODE


class ScoreError(ValueError):
    """A user error in the scoring request; the message is one line naming the option and the fix."""


def _option(metavar: str, help: str, short: str | None = None, **kw: Any) -> Any:
    return field(metadata={"metavar": metavar, "help": help, "short": short}, **kw)


@dataclass
class ScoreOptions:
    data: list[str] = _option("DATA", "Data files, folders or builtin:demo (any training format, as for data.train).")
    model: str = _option("MODEL", "Scoring model: builtin, folder or hub id, or a run or its final/ (a LoRA adapter is "
                         "merged into its base), or a checkpoint.", short="-m")
    out: Path = _option("FILE", "Score file to write (JSON lines, worst first); its summary goes to OUT.summary.json.",
                        short="-o")
    mode: str = _option("MODE", f"{AUTO} (the default: {PROMPT_ANSWER_MODE}, which found the most planted bad "
                        f"records, when every record has a prompt, else {PLAIN_TEXT_MODE}) or one of "
                        f"{', '.join(MODES)} (docs/score.md).", default=DEFAULT_MODE)
    top: int = _option("K", "Write only the K worst rows (0: all); the summary still counts every record.", default=0)
    max_length: int = _option("N", "Longest sample in tokens; longer are cut and flagged `truncated`.", default=1024)
    num_procs: int = _option("N", "Processes to split the records over (one per GPU).", default=1)
    batch_size: int = _option("N", "Records per forward pass (sorted by length).", default=8)
    format: str = _option("FORMAT", "Record format (auto: detected per file).", default="auto")
    system_prompt: str | None = _option("TEXT", "System prompt for records without one.", default=None)
    dtype: str = _option("DTYPE", "Compute precision: auto (bf16 on a GPU that has it, else fp32), fp32, bf16 or fp16.",
                         default="auto")
    chunk: int = _option("N", "Records encoded and scored at a time (per process); their rows go to disk before the "
                         "next chunk, so memory stays flat however big the corpus.", default=1024)

    def check(self) -> None:
        """Raise ScoreError for the first problem."""
        if self.mode not in (AUTO, *MODES):
            raise ScoreError(f"--mode: '{self.mode}' is not one of {', '.join((AUTO, *MODES))}")
        if self.dtype not in DTYPES:
            raise ScoreError(f"--dtype: '{self.dtype}' is not one of {', '.join(DTYPES)}")
        if self.format not in DATA_FORMATS:
            raise ScoreError(f"--format: '{self.format}' is not one of {', '.join(DATA_FORMATS)}")
        for name, value, low in (("--top", self.top, 0), ("--max-length", self.max_length, 8),
                                 ("--num-procs", self.num_procs, 1), ("--batch-size", self.batch_size, 1),
                                 ("--chunk", self.chunk, 1)):
            if value < low:
                raise ScoreError(f"{name}: {value} must be at least {low}")
        if not self.out.parent.is_dir():
            raise ScoreError(f"--out {self.out}: folder '{self.out.parent}' does not exist; create it first")
        check_outside_inputs(self.out, self.data)

    def argv(self) -> list[str]:
        """These options as `python -m trainer_core.score` reads them: the data first, then every other field as
        its flag (None left out)."""
        args = list(self.data)
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value is not None:
                args += [flag(f.name), str(value)]
        return args


def flag(name: str) -> str:
    """A field's long flag: `max_length` is --max-length."""
    return "--" + name.replace("_", "-")


def option_types() -> dict[str, Any]:
    """Each field's type, as written on ScoreOptions (`str | None` included)."""
    return get_type_hints(ScoreOptions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every field of ScoreOptions as an argument: `data` positional, the rest as their flags."""
    types = option_types()
    for f in fields(ScoreOptions):
        kind = types[f.name]
        if f.name == "data":
            parser.add_argument("data", nargs="+", metavar=f.metadata["metavar"], help=f.metadata["help"])
            continue
        scalar = Path if kind is Path else int if kind is int else str
        required = f.default is MISSING
        parser.add_argument(flag(f.name), *([f.metadata["short"]] if f.metadata["short"] else []), type=scalar,
                            required=required, default=None if required else f.default, help=f.metadata["help"],
                            dest=f.name, metavar=f.metadata["metavar"])


def check_outside_inputs(out: Path, data: list[str]) -> None:
    """The score file must not be, or lie inside, an input: it would replace the data or be read as data."""
    target = out.expanduser().resolve()
    for spec in data:
        if spec.startswith("builtin:"):
            continue
        src = Path(spec).expanduser().resolve()
        if target == src or (src.is_dir() and src in target.parents):
            raise ScoreError(f"--out {out}: lies inside the input '{spec}'; write the score file somewhere else")
