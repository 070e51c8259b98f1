"""The `nlirg` command line (typer). Never imports torch: training runs in a trainer subprocess."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trainer_core.config import ConfigError, apply_overrides, config_from_dict, read_yaml
from trainer_core.launch import prepare_run, run_foreground, start_detached
from trainer_core.rundir import CONFIG_FILE, checkpoint_dirs

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
            merge_lora: bool = False, defaults: list[str] | None = None) -> None:
    try:
        cfg = _build_config(config, overrides, max_steps, defaults or [])
    except ConfigError as exc:
        _die(str(exc))
    if merge_lora:
        cfg.output.merge_lora = True
    run_dir = prepare_run(cfg, config.stem if config else name)
    if detach:
        pid = start_detached(run_dir)
        typer.echo(f"trainer started (pid {pid}); follow it with: nlirg attach {run_dir.name}")
        typer.echo(str(run_dir))
        return
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
    """Train builtin:smollm2-135m with LoRA on the bundled demo data."""
    defaults = ["model.path=builtin:smollm2-135m", "data.train=builtin:demo", "data.eval_fraction=0.05",
                "training.max_steps=60", "training.batch_size=4", "data.max_length=256",
                "training.eval_every=20", "training.save_every=20"]
    _launch(None, set_ or [], max_steps, detach, "demo", defaults=defaults)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
