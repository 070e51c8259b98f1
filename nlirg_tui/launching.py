"""Starting runs from the TUI: a config file, the demo, or a relaunch of an edited config (torch-free).

Each returns the new run directory with its trainer started detached (its own session), so closing the TUI
never stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlirg_tui.cleaning import clean_paths
from nlirg_tui.config_check import check_config_text
from nlirg_tui.data_check import check_run_inputs
from trainer_core.config import RunConfig, build_config, config_to_yaml
from trainer_core.config.model_source import ModelLoadError
from trainer_core.config.sources import parse_sources
from trainer_core.data.files import SUFFIX_KINDS, SourceFile, expand_source, nonblank_lines, raw_rows
from trainer_core.data.records import DataError
from trainer_core.live.checkpoint_recovery import resume_point
from trainer_core.live.hostfile import HostfileError, check_hostfile_launch
from trainer_core.live.launch import prepare_run, start_detached
from trainer_core.live.run_lock import busy_message, lock_holder
from trainer_core.live.rundir import TRAINER_FILE, checkpoint_dirs, read_json
from trainer_core.live.runs import run_info


class LaunchError(ValueError):
    """A config that cannot start a run; the message lists the problems by key path."""


def launch_config_file(path: Path, root: Path) -> Path:
    """A run of the config file under the workbench's `root` (what `nlirg --root DIR` shows). The ConfigError of a
    bad file propagates: its message already names the file and the keys."""
    cfg = build_config(path)
    cfg.output.root = str(root)
    return _start(cfg, path.stem)


def launch_demo(overrides: list[str], root: Path) -> Path:
    cfg = build_config(None, overrides, source="demo config")
    cfg.output.root = str(root)
    return _start(cfg, "demo")


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def relaunch(run_dir: Path, config_text: str, resume_weights: bool) -> Path:
    """A new run from the edited config, optionally continuing from the old run's newest checkpoint."""
    cfg, problems = check_config_text(config_text)
    if cfg is None:
        raise LaunchError("; ".join(problems))
    name = (read_json(run_dir / TRAINER_FILE) or {}).get("name") or run_dir.name
    if resume_weights:  # its newest checkpoint may be a save in progress, and two trainers would train on
        holder, info = lock_holder(run_dir), run_info(run_dir)
        if holder is not None or info.live:
            raise LaunchError(busy_message(run_dir, holder or info.pid))
    resume = resume_point(run_dir) if resume_weights else None
    if resume_weights and resume is None:
        raise LaunchError(f"{run_dir.name} has no checkpoint to resume from; relaunch with fresh weights")
    return _start(cfg, name, resume)


def _start(cfg: RunConfig, name: str, resume: Path | None = None) -> Path:
    try:  # a missing config.json, an unreachable hub id, a malformed record, a full cache, a hostfile host that
        check_run_inputs(cfg)  # does not answer SSH: no run directory
        check_hostfile_launch(cfg)
    except (ModelLoadError, DataError, HostfileError) as exc:
        raise LaunchError(str(exc)) from None
    run_dir = prepare_run(cfg, name)
    start_detached(run_dir, resume)
    return run_dir


def launch_config_text(config_text: str, name: str) -> Path:
    """A new run (fresh weights) from config text, e.g. a score file's model on its cleaned data."""
    cfg, problems = check_config_text(config_text)
    if cfg is None:
        raise LaunchError("; ".join(problems))
    return _start(cfg, name)


def swap_data(entries: list[Any], cleaned: dict[Path, Path], defaults: dict[str, Any]) -> list[Any]:
    """data.train entries with every file that has a cleaned copy replaced by it (a `{path, ...}` entry keeps its
    settings); a folder or builtin that holds one becomes its list of files, its `ratio` split over them."""
    written = _cleaning_outputs(cleaned)
    out: list[Any] = []
    for entry in entries:
        spec = parse_sources([entry], "data", defaults)[0][0]
        files = [Path(f.path) for f in expand_source(spec) if Path(f.path).resolve() not in written]
        if not any(f in cleaned for f in files):
            out.append(entry)
            continue
        paths = [cleaned.get(f, f) for f in files]
        if spec.ratio is None:
            out += [str(p) if isinstance(entry, str) else {**entry, "path": str(p)} for p in paths]
        else:
            out += [{**entry, "path": str(p), "ratio": r} for p, r in _split_ratio(spec.path, spec.ratio, paths)]
    return out


def _cleaning_outputs(cleaned: dict[Path, Path]) -> set[Path]:
    """The cleaned copies and changes logs `w` wrote: beside their originals, so a folder source lists them too;
    they are not more data (the copy replaces its original, the log is no training data)."""
    return {p.resolve() for source, clean in cleaned.items() for p in (clean, clean_paths(source, clean.parent)[1])}


def _split_ratio(source: str, ratio: float, paths: list[Path]) -> list[tuple[Path, float]]:
    """`ratio` over the files of one source in proportion to their records, so the source keeps its share of the
    epoch (the sampler normalises ratios over sources: each file with the whole ratio would multiply it) and its
    files keep theirs (within a source, every record is equally likely). Files left with no record are dropped."""
    if len(paths) == 1:
        return [(paths[0], ratio)]
    counts = [_record_count(p) for p in paths]
    if not sum(counts):
        raise LaunchError(f"{source}: no records left after cleaning; keep some or remove the source from "
                          "data.train")
    return [(p, ratio * n / sum(counts)) for p, n in zip(paths, counts, strict=True) if n]


def _record_count(path: Path) -> int:
    """Records of one data file, as the trainer reads them (a JSON-lines file: its non-blank lines)."""
    kind = SUFFIX_KINDS[path.suffix.lower()]
    return len(nonblank_lines(path) if kind == "jsonl" else raw_rows(SourceFile(kind, str(path))))


def config_on_cleaned_data(cfg: RunConfig, cleaned: dict[Path, Path]) -> str:
    """Config text: `cfg` (a run's) with data.train and data.eval pointed at the cleaned files."""
    defaults = cfg.data.source_defaults()
    cfg.data.train = swap_data(cfg.data.train, cleaned, defaults)
    cfg.data.eval = swap_data(cfg.data.eval, cleaned, defaults)
    return config_to_yaml(cfg)
