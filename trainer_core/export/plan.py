"""What `nlirg export RUN` will write, checked before any model loads (torch-free: the CLI refuses bad input in
one line, exit 2, with nothing written).

RUN is a run (its final/, else its latest checkpoint), a run's final/ or a checkpoint; anything else
`nlirg eval` takes (a model or adapter folder, a builtin) exports too, with a shorter model card.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainer_core.evaluate.targets import Target, TargetError, resolve_target
from trainer_core.live.rundir import CONFIG_FILE, FINAL, checkpoint_dirs

FORMATS = ("hf", "gguf", "ollama")
HF_DTYPES = ("f32", "f16", "bf16")
GGUF_DTYPES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")
"""What the `gguf` package writes itself (numpy quantizers); the k-quants (Q4_K_M, ...) need llama.cpp."""
LLAMA_QUANTIZE = "llama-quantize {gguf} {stem}-Q4_K_M.gguf Q4_K_M"
"""llama.cpp's quantizer, for the types the gguf package cannot write (run it on an f16 or f32 export)."""
DEFAULT_DTYPE = {"hf": "f32", "gguf": "f16", "ollama": "q8_0"}
MIN_FREE_FACTOR = 1.1
"""An export needs about its weights' size free (and a little more) where it is written."""


class ExportError(ValueError):
    """RUN, --to, --dtype or --out cannot make an export; the message is one line that says what to do."""


@dataclass(frozen=True)
class ExportPlan:
    target: Target
    to: str
    dtype: str
    out: Path
    adapter: bool
    """hf only: the LoRA adapter and the name of its base, not a merged model."""
    note: str | None = None
    """A line to print first (a run without final/ exports its latest checkpoint)."""

    @property
    def stem(self) -> str:
        """The model's file name stem: the run's name (without its time stamp) or the folder's."""
        if self.target.run_dir is not None:
            return re.sub(r"-\d{8}-\d{6}$", "", self.target.run_dir.name) or "model"
        return re.split(r"[:/]", self.target.model.rstrip("/"))[-1] or "model"


def plan_export(spec: str, to: str, dtype: str | None, out: Path | None, root: Path, adapter: bool = False
                ) -> ExportPlan:
    if to not in FORMATS:
        raise ExportError(f"--to {to}: not a format; choose one of {', '.join(FORMATS)}")
    allowed = HF_DTYPES if to == "hf" else GGUF_DTYPES
    dtype = dtype or DEFAULT_DTYPE[to]
    if dtype not in allowed:
        hint = (f"; the k-quants need llama.cpp: export --dtype f16, then run `{LLAMA_QUANTIZE}`"
                if to != "hf" else "; quantized types are for --to gguf or ollama")
        raise ExportError(f"--dtype {dtype}: {to} takes {', '.join(allowed)}{hint}")
    target, note = _target(spec, root)
    if adapter and (to != "hf" or target.adapter is None):
        raise ExportError("--adapter: only for --to hf of a LoRA run (a GGUF holds a whole model: drop --adapter)")
    folder = out if out is not None else _default_out(target, to, dtype)
    if folder.exists() or folder.is_symlink():
        raise ExportError(f"--out {folder}: already exists; remove it or choose another folder")
    if out is not None and not folder.parent.is_dir():
        raise ExportError(f"--out {folder}: its folder {folder.parent} does not exist")
    return ExportPlan(target, to, dtype, folder, adapter, note)


def _target(spec: str, root: Path) -> tuple[Target, str | None]:
    path = Path(spec).expanduser()
    run_dir = path.parent if path.name == FINAL else path
    note = None
    if (run_dir / CONFIG_FILE).is_file() and not (run_dir / FINAL).is_dir():
        found = [c for c in checkpoint_dirs(run_dir) if (c / "model").is_dir()]
        if not found:
            raise ExportError(f"{spec}: no final/ and no checkpoint to export; train it to the end or save one "
                              f"(`nlirg save {run_dir.name}`)")
        spec, note = str(found[-1]), f"{run_dir.name} has no final/: exporting its latest checkpoint {found[-1].name}"
    try:
        return resolve_target(spec, root), note
    except TargetError as exc:
        raise ExportError(str(exc).replace("nlirg eval", "nlirg export")) from None


def _default_out(target: Target, to: str, dtype: str) -> Path:
    """RUN/exports/<to>-<dtype> for a run or checkpoint; ./export-<to>-<dtype> otherwise."""
    if target.run_dir is not None:
        return target.run_dir / "exports" / f"{to}-{dtype}"
    return Path(f"export-{to}-{dtype}")


def check_free_space(folder: Path, needed: int) -> None:
    """A disk without room for the export is refused before anything is written."""
    free = shutil.disk_usage(folder).free
    if free < needed * MIN_FREE_FACTOR:
        raise ExportError(f"--out {folder}: {free / 1e6:.0f} MB free, the export needs about "
                          f"{needed * MIN_FREE_FACTOR / 1e6:.0f} MB; free disk space or choose another --out")
