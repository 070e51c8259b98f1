"""The `nlirg` command line (typer). Never imports torch: training runs in a trainer subprocess."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trainer_core.config import ConfigError, apply_overrides, config_from_dict, read_yaml
from trainer_core.live.launch import prepare_run, run_foreground, start_detached
from trainer_core.live.rundir import CONFIG_FILE, checkpoint_dirs

app = typer.Typer(add_completion=False, no_args_is_help=False, help="NLIRG workbench: train, watch and steer.")

SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a config key: KEY=VALUE.")]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")]


def _die(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _build_config(config: Path | None, overrides: list[str], max_steps: int | None, defaults: list[str]):
    raw = read_yaml(config) if config else {}
    raw = apply_overrides(raw, [*defaults, *overrides] if not config else overrides)
    if max_steps is not None:
        raw = apply_overrides(raw, [f"training.max_steps={max_steps}"])
    return config_from_dict(raw, str(config) if config else "default config")


def _launch(config: Path | None, overrides: list[str], max_steps: int | None, detach: bool, name: str,
            merge_lora: bool = False, defaults: list[str] | None = None) -> Path | None:
    try:
        cfg = _build_config(config, overrides, max_steps, defaults or [])
    except ConfigError as exc:
        _die(str(exc))
    if merge_lora:
        cfg.output.merge_lora = True
    _check_data(cfg)
    run_dir = prepare_run(cfg, config.stem if config else name)
    if detach:
        pid = start_detached(run_dir)
        typer.echo(f"trainer started (pid {pid}); follow it with: nlirg attach {run_dir.name}")
        typer.echo(str(run_dir))
        return run_dir
    typer.echo(f"run directory: {run_dir}", err=True)
    raise typer.Exit(run_foreground(run_dir))


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(help="Run config YAML (default: the embedded demo config).")] = None,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue a run directory from its last checkpoint.")]
    = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background; print the run dir.")] = False,
    merge_lora: Annotated[bool, typer.Option("--merge-lora", help="Also write a merged model to final/merged.")]
    = False,
) -> None:
    """Train in the foreground with a progress bar (or --detach), writing a run directory."""
    if resume is not None:
        _resume(resume, set_ or [], max_steps, detach)
        return
    _launch(config, set_ or [], max_steps, detach, "train", merge_lora)


def _check_data(cfg) -> None:
    """Read and normalise every data source (cached: the trainer finds it done) before a run directory exists, so
    a malformed record is one line naming its file and line, exit code 2, and nothing left behind."""
    from trainer_core.train.cache import cache_root
    from trainer_core.train.corpus import read_sources
    from trainer_core.train.records import DataError

    def progress(phase: str, done: int, total: int, seconds: float) -> None:
        typer.echo(f"{phase} data: {done}/{total} file(s), {seconds:.0f} s", err=True)

    try:
        for which in ("train", "eval"):
            read_sources(cfg.data.sources(which), cache_root(cfg.data.cache_dir), cfg.data.num_proc, progress)
    except DataError as exc:
        _die(str(exc))


def _resume(run_dir: Path, overrides: list[str], max_steps: int | None, detach: bool) -> None:
    run_dir = run_dir.resolve()
    if not (run_dir / CONFIG_FILE).is_file():
        _die(f"--resume {run_dir}: not a run directory (no {CONFIG_FILE})")
    found = checkpoint_dirs(run_dir)
    if not found:
        _die(f"--resume {run_dir}: no checkpoint to resume from")
    try:
        cfg = _build_config(run_dir / CONFIG_FILE, overrides, max_steps, [])
    except ConfigError as exc:
        _die(str(exc))
    from trainer_core.config import save_config

    _check_data(cfg)
    save_config(cfg, run_dir / CONFIG_FILE)
    if detach:
        start_detached(run_dir, found[-1])
        typer.echo(str(run_dir))
        return
    raise typer.Exit(run_foreground(run_dir, found[-1]))


@app.command()
def demo(
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    headless: Annotated[bool, typer.Option("--headless", help="Train with a progress bar instead of the TUI.")]
    = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
) -> None:
    """Train builtin:smollm2-135m with LoRA on the bundled demo data, watched in the workbench (TUI)."""
    if not headless and not detach and sys.stdout.isatty():
        # The TUI never hosts the trainer: it starts detached, so quitting the TUI can leave it running.
        run_dir = _launch(None, set_ or [], max_steps, True, "demo", defaults=DEMO_DEFAULTS)
        from nlirg_tui.app import run_attached

        run_attached(run_dir)
        return
    _launch(None, set_ or [], max_steps, detach, "demo", defaults=DEMO_DEFAULTS)


DEMO_DEFAULTS = ["model.path=builtin:smollm2-135m", "data.train=builtin:demo", "data.eval_fraction=0.05",
                 "training.max_steps=60", "training.batch_size=4", "data.max_length=256",
                 "training.eval_every=20", "training.save_every=20"]


# ------------------------------------------------------------------ live runs (docs/live.md)
RootOpt = Annotated[Path, typer.Option("--root", help="Folder holding the run directories.")]
RunArg = Annotated[str, typer.Argument(help="Run directory, run name, or a unique prefix of one.")]


@app.command("runs")
def runs_(root: RootOpt = Path("runs")) -> None:
    """List runs: name, status, step/total, loss, started, where; live ones first."""
    from nlirg_tui.live_commands import list_runs, runs_table

    found = list_runs(root)
    if not found:
        typer.echo(f"no runs under {root} (start one with `nlirg train --detach`, or pass --root DIR)", err=True)
        return
    for line in runs_table(found):
        typer.echo(line)


@app.command()
def attach(
    run: RunArg,
    root: RootOpt = Path("runs"),
    stream: Annotated[bool, typer.Option("--stream", help="Print events as text instead of opening the TUI.")]
    = False,
    json_: Annotated[bool, typer.Option("--json", help="With --stream: print raw protocol events.")] = False,
) -> None:
    """Open the workbench on a run, live or finished (its whole history first)."""
    from nlirg_tui.live_commands import LiveCommandError, resolve, stream_events

    try:
        run_dir = resolve(run, root)
    except LiveCommandError as exc:
        _die(str(exc))
    if not stream and not json_ and sys.stdout.isatty() and _open_workbench(run_dir):
        return
    stream_events(run_dir, typer.echo, as_json=json_)


def _open_workbench(run_dir: Path) -> bool:
    """The workbench on the run (`nlirg_tui.app.run_attached`); False when it cannot load: attach streams instead."""
    try:
        from nlirg_tui.app import run_attached
    except ImportError:
        return False
    run_attached(run_dir)
    return True


def _command(run: str, root: Path, name: str, args: dict | None = None, wait_end: bool = False) -> None:
    from nlirg_tui.live_commands import LiveCommandError, resolve, send_command

    try:
        run_dir = resolve(run, root)
        ack, end = send_command(run_dir, name, args, wait_end=wait_end)
    except LiveCommandError as exc:
        _die(str(exc))
    if end is not None:
        summary = end.get("summary") or {}
        typer.echo(f"{run_dir.name}: {end.get('status')} at step {summary.get('steps')}; summary in "
                   f"{run_dir / 'summary.json'}")
    else:
        typer.echo(f"{run_dir.name}: {name} applied at step {ack.get('applied_at_step')}")


@app.command()
def stop(run: RunArg, root: RootOpt = Path("runs"),
         no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the stop is acked.")] = False) -> None:
    """Stop a live run at the next step: checkpoint, summary (status stopped), exit 0."""
    _command(run, root, "stop", wait_end=not no_wait)


@app.command()
def pause(run: RunArg, root: RootOpt = Path("runs")) -> None:
    """Pause a live run at the next step boundary."""
    _command(run, root, "pause")


@app.command("resume")
def resume_(run: RunArg, root: RootOpt = Path("runs")) -> None:
    """Resume a paused run."""
    _command(run, root, "resume")


@app.command()
def save(run: RunArg, root: RootOpt = Path("runs")) -> None:
    """Write a checkpoint of a live run now (at the next step boundary)."""
    _command(run, root, "save")


@app.command("set")
def set_live(
    run: RunArg,
    pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE: lr_scale, log_every, flag_threshold, eval_every, "
                                                     "save_every, nlirg.<param>, nlirg.weighting.")],
    root: RootOpt = Path("runs"),
) -> None:
    """Change settings of a live run from the next step on (recorded in its event log)."""
    from nlirg_tui.live_commands import LiveCommandError, parse_set_pairs

    try:
        args = parse_set_pairs(pairs)
    except LiveCommandError as exc:
        _die(str(exc))
    _command(run, root, "set", args)


# ------------------------------------------------------------------ data (docs/data.md)
data_app = typer.Typer(help="The data path: the cache of read and tokenized corpora.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("cache")
def data_cache(
    clear: Annotated[bool, typer.Option("--clear", help="Remove the named entries (all of them when none is named).")]
    = False,
    names: Annotated[list[str] | None, typer.Argument(help="Entries to clear (as listed).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder (default: as data.cache_dir).")]
    = None,
) -> None:
    """List the data cache (entry, size, last used, what it holds), or clear it with --clear."""
    from trainer_core.train.cache import cache_root, list_entries
    from trainer_core.train.cache import clear as clear_entries

    root = cache_root(str(cache_dir) if cache_dir else None)
    if clear:
        try:
            removed = clear_entries(root, names)
        except KeyError as exc:
            _die(exc.args[0])
        freed = sum(e.size_bytes for e in removed)
        typer.echo(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({_size(freed)}) from {root}")
        return
    if names:
        _die("name entries only with --clear")
    entries = list_entries(root)
    if not entries:
        typer.echo(f"no cached data under {root}")
        return
    for e in entries:
        typer.echo(f"{e.name:<32} {_size(e.size_bytes):>9}  used {_ago(e.last_used):>9}  {e.summary}")
    typer.echo(f"{len(entries)} entries, {_size(sum(e.size_bytes for e in entries))} under {root}")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _ago(t: float) -> str:
    import time

    s = max(0.0, time.time() - t)
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= span:
            return f"{s / span:.0f} {unit} ago"
    return f"{s:.0f} s ago"


@app.callback(invoke_without_command=True)
def home(ctx: typer.Context, root: RootOpt = Path("runs")) -> None:
    """With no command, `nlirg` opens the workbench's Runs screen."""
    if ctx.invoked_subcommand is None:
        from nlirg_tui.app import run_home

        run_home(root, DEMO_DEFAULTS)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
