"""The checks a run's inputs get before its run directory exists (the CLI's `nlirg train` and the workbench's
launches and relaunches alike): the model source, then every data source read and normalised (cached, so the
trainer finds it done). Torch-free."""

from __future__ import annotations

from collections.abc import Callable

from trainer_core.config import RunConfig

Progress = Callable[[str, int, int, float], None]


def check_run_inputs(cfg: RunConfig, progress: Progress | None = None) -> None:
    """Raise ModelLoadError or DataError (one line each: which file, which line, what to do)."""
    from trainer_core.config.model_source import check_model_source
    from trainer_core.data.cache import cache_root
    from trainer_core.data.cache_errors import cache_disk_errors
    from trainer_core.data.corpus import read_sources
    from trainer_core.data.exclude import read_exclude

    check_model_source(cfg.model.path)  # seconds at most, before minutes of reading data
    root = cache_root(cfg.data.cache_dir)
    exclude = read_exclude(cfg.data.exclude) if cfg.data.exclude else None
    with cache_disk_errors(root):
        for which in ("train", "eval"):
            read_sources(cfg.data.sources(which), root, cfg.data.num_proc, progress, exclude)
