"""The `nlirg` command line (typer). Never imports torch: training runs in a trainer subprocess."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui import export_command
from trainer_core.config import ConfigError, build_config, save_config
from trainer_core.live.checkpoint_recovery import resume_point
from trainer_core.live.launch import EXIT_USER_ERROR, prepare_run, run_foreground, start_detached
from trainer_core.live.rundir import CONFIG_FILE, checkpoint_dirs
from trainer_core.live.terminal import make_output_best_effort

app = typer.Typer(
    add_completion=False, no_args_is_help=False, rich_markup_mode=None,  # plain help: flags show as flags
    help="NLIRG workbench: train, watch and steer. `nlirg` alone opens the workbench on the runs under --root.",
)

SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override a config key, e.g. --set training.lr=1e-4; repeat it for more (--set a=1 --set b=2).")]
MaxStepsOpt = Annotated[int | None, typer.Option(
    "--max-steps", metavar="N", help="Stop after N optimizer steps (N >= 1; without it: training.epochs).")]
DetachOpt = Annotated[bool, typer.Option("--detach", "-d", metavar="",
                                         help="Run in the background (its own session); print the run dir last.")]
RootOpt = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR", help="Folder holding the run directories (default: ./runs, or the config's "
    "output.root for a new run); also accepted before the command: nlirg --root DIR COMMAND.")]


def _die(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _root(ctx: typer.Context, root: Path | None) -> Path | None:
    """--root after the command, else --root before it (`nlirg --root DIR runs`), else None (the default)."""
    return root if root is not None else (ctx.obj or {}).get("root")


def _build_config(config: Path | None, overrides: list[str], max_steps: int | None, defaults: list[str],
                  root: Path | None = None):
    """The config file (its relative paths read from its own folder) with the defaults (the demo's, only without
    a config file), --set, and --max-steps last; `root` replaces output.root."""
    if max_steps is not None and max_steps < 1:
        _die(f"--max-steps {max_steps}: give a number of optimizer steps >= 1; leave --max-steps out to train for "
             "training.epochs (a config's training.max_steps: 0 means that)")
    steps = [f"training.max_steps={max_steps}"] if max_steps is not None else []
    cfg = build_config(config, [*([] if config else defaults), *overrides, *steps])
    if root is not None:
        cfg.output.root = str(root)
    return cfg


def _launch(config: Path | None, overrides: list[str], max_steps: int | None, detach: bool, name: str,
            root: Path | None, defaults: list[str] | None = None) -> Path | None:
    make_output_best_effort()  # the run outlives a closed pipe or terminal; so does this launcher
    try:
        cfg = _build_config(config, overrides, max_steps, defaults or [], root)
    except ConfigError as exc:
        _die(str(exc))
    _check_data(cfg)
    run_dir = prepare_run(cfg, config.stem if config else name)
    if detach:
        pid = start_detached(run_dir)
        # A full path: the hint works from any folder, whatever --root was.
        typer.echo(f"trainer started (pid {pid}); follow it with: nlirg attach {run_dir}")
        typer.echo(str(run_dir))
        return run_dir
    typer.echo(f"run directory: {run_dir}", err=True)
    code = run_foreground(run_dir)
    if code == EXIT_USER_ERROR and not checkpoint_dirs(run_dir):
        # A config, data or model error before the first checkpoint: the error above says it all; keep no debris.
        shutil.rmtree(run_dir, ignore_errors=True)
        typer.echo(f"(nothing trained; {run_dir} removed)", err=True)
    raise typer.Exit(code)


@app.command()
def train(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Argument(
        help="Run config YAML; its relative paths are read from its own folder (default: the "
        "embedded config, builtin:smollm2-135m + LoRA on the demo data, run name `train`).")] = None,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="RUN", help="Continue a run (directory, name or unique prefix) from its newest "
        "checkpoint, with the run's config as --set/--max-steps change it: the new LR and schedule apply from "
        "the resumed step.")] = None,
    keep_lr_scale: Annotated[bool, typer.Option(
        "--keep-lr-scale", metavar="", help="With --resume: keep the live lr_scale the checkpoint was trained "
        "with (default: back to 1).")] = False,
    detach: DetachOpt = False,
    merge_lora: Annotated[bool, typer.Option(
        "--merge-lora", metavar="", help="Also write the adapter merged into its base to final/merged (LoRA runs; "
        "with --resume too).")] = False,
    root: RootOpt = None,
) -> None:
    """Train a run: in the foreground with a progress bar, or --detach.

    Writes a run directory under --root (README: "A run directory")."""
    overrides = [*(set_ or []), *(["output.merge_lora=true"] if merge_lora else [])]
    if resume is not None:
        _resume(resume, _root(ctx, root), overrides, max_steps, detach, keep_lr_scale, config)
        return
    if keep_lr_scale:
        _die("--keep-lr-scale goes with --resume RUN")
    _launch(config, overrides, max_steps, detach, "train", _root(ctx, root))


@app.command()
def check(
    config: Annotated[Path | None, typer.Argument(
        help="Run config YAML (default: the embedded config nlirg train uses without one).")] = None,
    set_: SetOpt = None,
) -> None:
    """Check a config before a run: the config, every data source (records, tokens, truncation, what data.exclude
    drops), the model's config and tokenizer, and the memory plan; no weights loaded, no run directory made.

    Exit code 0 when nothing would stop the run (warnings are printed), 2 on any problem."""
    overrides = set_ or []
    try:
        build_config(config, overrides)
    except ConfigError as exc:
        _die(str(exc))
    command = [sys.executable, "-m", "trainer_core.train.check_config", *([str(config)] if config else [])]
    raise typer.Exit(subprocess.call([*command, *(x for o in overrides for x in ("--set", o))]))


def _check_data(cfg) -> None:
    """Read and normalise every data source (cached: the trainer finds it done) before a run directory exists, so
    a malformed record is one line naming its file and line, exit code 2, and nothing left behind."""
    from trainer_core.data.cache import cache_root
    from trainer_core.data.corpus import read_sources
    from trainer_core.data.exclude import read_exclude
    from trainer_core.data.records import DataError

    def progress(phase: str, done: int, total: int, seconds: float) -> None:
        typer.echo(f"{phase} data: {done}/{total} file(s), {seconds:.0f} s", err=True)

    _check_model(cfg.model.path)  # seconds at most, before minutes of reading data

    try:
        exclude = read_exclude(cfg.data.exclude) if cfg.data.exclude else None
        for which in ("train", "eval"):
            read_sources(cfg.data.sources(which), cache_root(cfg.data.cache_dir), cfg.data.num_proc, progress,
                         exclude)
    except DataError as exc:
        _die(str(exc))


def _check_model(spec: str) -> None:
    """A model folder without config.json, or a hub id that is neither cached nor reachable: one line, exit 2,
    before a run directory exists (and offline with a cached model: the trainer inherits HF_HUB_OFFLINE)."""
    from trainer_core.config.model_source import ModelLoadError, check_model_source

    try:
        check_model_source(spec)
    except ModelLoadError as exc:
        _die(str(exc))


def _resume(run: str, root: Path | None, overrides: list[str], max_steps: int | None, detach: bool,
            keep_lr_scale: bool, config: Path | None) -> None:
    make_output_best_effort()
    if config is not None:
        _die(f"--resume continues a run with its own config.yaml; drop {config} (change keys with --set)")
    from nlirg_tui.live_commands import LiveCommandError, resolve

    try:
        run_dir = resolve(run, root or Path("runs"))
    except LiveCommandError as exc:
        _die(f"--resume {exc}")
    checkpoint = resume_point(run_dir)  # finishes or undoes a save that a kill interrupted
    if checkpoint is None:
        _die(f"--resume {run_dir}: no checkpoint to resume from")
    try:
        cfg = _build_config(run_dir / CONFIG_FILE, overrides, max_steps, [])
    except ConfigError as exc:
        _die(str(exc))
    _nothing_left(run_dir, checkpoint, cfg)  # a finished run: merge only, or say there is nothing to train
    _check_data(cfg)
    save_config(cfg, run_dir / CONFIG_FILE)  # what the resumed run does, and nothing else (README "Resuming")
    if detach:
        start_detached(run_dir, checkpoint, keep_lr_scale=keep_lr_scale)
        typer.echo(f"trainer resumed; follow it with: nlirg attach {run_dir}")
        typer.echo(str(run_dir))
        return
    raise typer.Exit(run_foreground(run_dir, checkpoint, keep_lr_scale=keep_lr_scale))


def _nothing_left(run_dir: Path, checkpoint: Path, cfg) -> None:
    """A completed run with no step left: `--merge-lora` writes final/merged and nothing else of the run changes
    (no trainer starts: summary, evaluation, start time and lr_scale stay); without it there is nothing to do."""
    from trainer_core.live.steps_left import finished_step

    step = finished_step(run_dir, checkpoint, build_config(run_dir / CONFIG_FILE), cfg)
    if step is None:
        return
    if not cfg.output.merge_lora:
        _die(f"--resume {run_dir}: the run completed at step {step} and has no step left to train; raise "
             "--max-steps (or --set training.epochs=N) to train on, or add --merge-lora to write final/merged")
    typer.echo(f"{run_dir.name} completed at step {step}: merging final/ into final/merged (the run is otherwise "
               "left as it is)", err=True)
    code = subprocess.call([sys.executable, "-m", "trainer_core.train.merge_final", "--run-dir", str(run_dir)])
    raise typer.Exit(code)


@app.command()
def demo(
    ctx: typer.Context,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    headless: Annotated[bool, typer.Option("--headless", metavar="",
                                           help="Train with a progress bar instead of the TUI.")] = False,
    detach: DetachOpt = False,
    root: RootOpt = None,
) -> None:
    """Train the demo: SmolLM2-135M + LoRA on the bundled data.

    60 steps: about 15 minutes on a CPU, a minute or two on a GPU; watched in the workbench unless --headless or
    --detach."""
    where = _root(ctx, root)
    if not headless and not detach and sys.stdout.isatty():
        # The TUI never hosts the trainer: it starts detached, so quitting the TUI can leave it running.
        run_dir = _launch(None, set_ or [], max_steps, True, "demo", where, defaults=DEMO_DEFAULTS)
        from nlirg_tui.app import run_attached

        run_attached(run_dir)
        return
    _launch(None, set_ or [], max_steps, detach, "demo", where, defaults=DEMO_DEFAULTS)


DEMO_DEFAULTS = ["model.path=builtin:smollm2-135m", "data.train=builtin:demo", "data.eval_fraction=0.05",
                 "training.max_steps=60", "training.batch_size=4", "data.max_length=256",
                 "training.eval_every=20", "training.save_every=20"]


# ------------------------------------------------------------------ data quality (docs/score.md)
@app.command()
def score(
    data: Annotated[list[str], typer.Argument(help="Data files, folders or builtin:demo (any training format).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Scoring model: builtin, folder or hub id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Score file to write (JSON lines, worst first).")],
    mode: Annotated[str, typer.Option(help="divergence, similarity_rank, filtered_rank or ifd.")] = "divergence",
    top: Annotated[int, typer.Option(help="Write only the K worst rows (0: all).")] = 0,
    max_length: Annotated[int, typer.Option(help="Longest sample in tokens; longer are cut and flagged.")] = 1024,
    num_procs: Annotated[int, typer.Option(help="Processes to split the records over (one per GPU).")] = 1,
    batch_size: Annotated[int, typer.Option(help="Records per forward pass.")] = 8,
    format_: Annotated[str, typer.Option("--format", help="Record format (auto: detected per file).")] = "auto",
) -> None:
    """Rate every record by the model's own per-token loss and entropy; quality in [0, 1], worst first."""
    import subprocess

    cmd = [sys.executable, "-m", "trainer_core.score", *data, "--model", model, "--out", str(out), "--mode", mode,
           "--top", str(top), "--max-length", str(max_length), "--num-procs", str(num_procs),
           "--batch-size", str(batch_size), "--format", format_]
    raise typer.Exit(subprocess.call(cmd))  # torch lives in that process, never in the CLI's


@app.command()
def review(
    file: Annotated[str, typer.Argument(help="A score file, a flagged.jsonl, or a run (its flagged samples).")],
    run: Annotated[str | None, typer.Option("--run", help="The run that `r` relaunches on the cleaned data.")]
    = None,
    root: RootOpt = Path("runs"),
) -> None:
    """The Data screen: review records worst first, drop / keep / edit, write a cleaned copy, relaunch."""
    from nlirg_tui.live_commands import LiveCommandError, resolve
    from nlirg_tui.review_rows import ReviewFileError

    path = Path(file)
    try:
        run_dir = resolve(run, root) if run else None
        if not path.exists():
            path = resolve(file, root)
        if path.is_dir() and run_dir is None:
            run_dir = path
        from nlirg_tui.app import run_review

        run_review(path, run_dir)
    except (LiveCommandError, ReviewFileError) as exc:
        _die(str(exc))


# ------------------------------------------------------------------ evaluation and experiments (docs/evaluate.md)
DomainOpt = Annotated[list[str] | None, typer.Option(
    "--domain", metavar="FILE", help="Held-out instructions with reference answers (any data format; repeatable).")]
GeneralOpt = Annotated[list[str] | None, typer.Option(
    "--general", metavar="FILE",
    help="General instructions with short references and/or general text (repeatable).")]
BaseOpt = Annotated[str | None, typer.Option(
    "--base", metavar="MODEL", help="Model general retention is measured against (default: the run's base model).")]
AB_DEFAULTS = [d for d in DEMO_DEFAULTS if not d.startswith("data.eval_fraction")] + ["data.eval=builtin:demo-heldout"]
"""`nlirg ab` without a config: the demo, its loss evaluated on the held-out set the experiment scores."""


def _problem_text(exc: Exception, squash) -> str:
    """A user error's message: a config's list of problems as its one block (`c.yaml: 3 problems` and a line
    each), any other error as `squash` makes it one line."""
    text = str(exc)
    return text if isinstance(exc, ConfigError) or "\n  - " in text else squash(text)


def _user_errors() -> tuple[type[Exception], ...]:
    from trainer_core.data.records import DataError
    from trainer_core.evaluate.experiment import ExperimentError
    from trainer_core.evaluate.targets import TargetError

    return ConfigError, DataError, ExperimentError, TargetError


@app.command("eval")
def eval_(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        metavar="TARGET", help="A run (its final/), a checkpoint, a model or adapter folder, a hub id or a builtin.")],
    domain: DomainOpt = None,
    general: GeneralOpt = None,
    base: BaseOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="eval.json to write (default: next to the target).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, metavar="N", help="Longest answer.")]
    = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, metavar="N", help="Prompts generated together.")]
    = 8,
    limit: Annotated[int, typer.Option(
        "--limit", min=0, metavar="N", help="Score N items of each set, spread evenly (0 = all).")] = 0,
    root: RootOpt = None,
) -> None:
    """Measure a model: domain loss and answers, general retention, repetition and JSON validity (eval.json)."""
    from trainer_core.evaluate.commands import eval_arguments, prepare_eval

    try:
        req = prepare_eval(target, domain or [], general or [], base, out, _runs_root(ctx, root))
    except _user_errors() as exc:
        _die(_problem_text(exc, lambda text: text.splitlines()[0]))
    proc = subprocess.Popen(eval_arguments(req, max_new_tokens, batch_size, limit))
    while True:
        try:
            raise typer.Exit(proc.wait())
        except KeyboardInterrupt:
            continue  # the evaluator got the same SIGINT; it exits without writing eval.json


@app.command()
def ab(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Argument(metavar="CONFIG", help="Run config YAML (default: the demo).")]
    = None,
    arms: Annotated[str, typer.Option("--arms", metavar="ARMS", help="Weightings to compare: plain, nlirg, dft.")]
    = "plain,nlirg",
    repeats: Annotated[int, typer.Option(
        "--repeats", metavar="N", help="Runs per arm; repeat i uses seed training.seed + i.")] = 3,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    domain: DomainOpt = None,
    general: GeneralOpt = None,
    base: BaseOpt = None,
    gpus: Annotated[str | None, typer.Option(
        "--gpus", metavar="IDS", help="Run one run per GPU at a time, e.g. 0,1,2,3.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", help="Evaluate on N items of each set, spread evenly (0 = all).")] = 0,
    new: Annotated[bool, typer.Option(
        "--new", metavar="", help="Start a fresh experiment even if this one exists.")] = False,
    detach: Annotated[bool, typer.Option(
        "--detach", "-d", metavar="", help="Run in the background; print the folder.")] = False,
    root: RootOpt = None,
) -> None:
    """Controlled experiment: the same config per arm but nlirg.weighting, paired seeds, every run evaluated."""
    from trainer_core.evaluate.commands import experiment_complete, prepare_experiment
    from trainer_core.evaluate.runner import RunFailed, run_experiment, start_experiment_detached

    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    try:
        cfg = _build_config(config, set_ or [], max_steps, AB_DEFAULTS, _root(ctx, root))
        if gpu_list and cfg.distributed.backend == "deepspeed":
            _die("--gpus runs one single-device run per GPU; a DeepSpeed config already uses its GPUs: drop --gpus")
        command = "nlirg " + shlex.join(sys.argv[1:])
        name = cfg.output.name or (config.stem if config else "demo")
        exp_dir, existed = prepare_experiment(cfg, arms, repeats, domain or [], general or [], base, command, name,
                                              new, limit, lambda: _check_data(cfg))
    except _user_errors() as exc:
        _die(_problem_text(exc, lambda text: text.replace("\n", " ")))
    if existed and experiment_complete(exp_dir):
        typer.echo((exp_dir / "report.md").read_text(encoding="utf-8"))
        typer.echo(f"{exp_dir} is complete; --new starts a fresh experiment", err=True)
        return
    typer.echo(f"experiment {exp_dir} ({'continued' if existed else 'new'})", err=True)
    if detach:
        pid = start_experiment_detached(exp_dir, gpu_list)
        typer.echo(f"running in the background (pid {pid}); follow it with `nlirg runs` or the workbench")
        typer.echo(str(exp_dir))
        return
    try:
        raise typer.Exit(run_experiment(exp_dir, typer.echo, gpu_list))
    except RunFailed as exc:
        _die(str(exc), code=1)
    except _user_errors() as exc:
        _die(str(exc))


app.command("export")(export_command.export)  # docs/export.md


# ------------------------------------------------------------------ live runs (docs/live.md)
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="Run directory, run name, or a unique prefix of one.")]


def _runs_root(ctx: typer.Context, root: Path | None) -> Path:
    return _root(ctx, root) or DEFAULT_ROOT


DEFAULT_ROOT = Path("runs")


@app.command("runs")
def runs_(ctx: typer.Context, root: RootOpt = None) -> None:
    """List runs, live ones first, then experiments with their runs.

    Name, status, step/total, loss, started, where; under a failed or dead run, why."""
    from nlirg_tui.live_commands import experiments_table, list_runs, runs_table
    from trainer_core.evaluate.experiment import find_experiments

    where = _runs_root(ctx, root)
    found, (experiments, unreadable) = list_runs(where), find_experiments(where)
    for line in unreadable:
        typer.echo(line, err=True)
    if not found and not experiments:
        typer.echo(f"no runs under {where} (start one with `nlirg train --detach`, or pass --root DIR)", err=True)
        return
    for line in (runs_table(found) if found else []) + experiments_table(experiments):
        typer.echo(line)


@app.command()
def attach(
    ctx: typer.Context,
    run: RunArg,
    root: RootOpt = None,
    stream: Annotated[bool, typer.Option("--stream", metavar="", help="Print events as text instead of opening "
                                                                       "the TUI.")] = False,
    json_: Annotated[bool, typer.Option("--json", metavar="", help="With --stream: print raw protocol events.")]
    = False,
) -> None:
    """Open the workbench on a run, live or finished.

    Its whole history is replayed first, then live events follow."""
    from nlirg_tui.live_commands import LiveCommandError, resolve, stream_events

    try:
        run_dir = resolve(run, _runs_root(ctx, root))
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


def _command(ctx: typer.Context, run: str, root: Path | None, name: str, args: dict | None = None,
             wait_end: bool = False) -> None:
    from nlirg_tui.live_commands import LiveCommandError, resolve, send_command

    try:
        run_dir = resolve(run, _runs_root(ctx, root))
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
def stop(ctx: typer.Context, run: RunArg, root: RootOpt = None,
         no_wait: Annotated[bool, typer.Option("--no-wait", metavar="", help="Return once the stop is acked, "
                                                                              "without waiting for the run's end.")]
         = False) -> None:
    """Stop a live run at the next step, with a checkpoint.

    Writes summary.json (status stopped); waits for the run's end unless --no-wait."""
    _command(ctx, run, root, "stop", wait_end=not no_wait)


@app.command()
def pause(ctx: typer.Context, run: RunArg, root: RootOpt = None) -> None:
    """Pause a live run at the next step boundary.

    Refused (exit 2) if it is paused already."""
    _command(ctx, run, root, "pause")


@app.command("resume")
def resume_(ctx: typer.Context, run: RunArg, root: RootOpt = None) -> None:
    """Resume a paused run.

    Refused (exit 2) if it is running. A finished or dead run continues with: nlirg train --resume RUN."""
    _command(ctx, run, root, "resume")


@app.command()
def save(ctx: typer.Context, run: RunArg, root: RootOpt = None) -> None:
    """Checkpoint a live run at the next step boundary."""
    _command(ctx, run, root, "save")


@app.command("set")
def set_live(
    ctx: typer.Context,
    run: RunArg,
    pairs: Annotated[list[str], typer.Argument(metavar="KEY=VALUE", help="lr_scale, log_every, flag_threshold, "
                                               "eval_every, save_every, nlirg.<param>, nlirg.weighting.")],
    root: RootOpt = None,
) -> None:
    """Change settings of a live run from the next step on.

    Each change is recorded in the run's event log."""
    from nlirg_tui.live_commands import LiveCommandError, parse_set_pairs

    try:
        args = parse_set_pairs(pairs)
    except LiveCommandError as exc:
        _die(str(exc))
    _command(ctx, run, root, "set", args)


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
    from trainer_core.data.cache import cache_root, list_entries
    from trainer_core.data.cache import clear as clear_entries

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


@app.command()
def serve(
    ctx: typer.Context,
    root: RootOpt = None,
    host: Annotated[str, typer.Option("--host", metavar="ADDR", help="Address to listen on (loopback only "
                                      "unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="N", help="TCP port.")] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", metavar="",
                                               help="Listen on an address other machines reach.")] = False,
) -> None:
    """Open the workbench in a browser: serve it on HOST:PORT behind a token printed at start.

    From a laptop: ssh -L 8000:localhost:8000 BOX, then open the printed URL. Each tab runs its own workbench;
    Ctrl+C ends them all (runs keep training)."""
    from nlirg_tui import serve as served

    try:
        served.serve(_runs_root(ctx, root).resolve(), host, port, allow_remote)
    except served.ServeError as exc:
        _die(str(exc))
    except OSError as exc:
        _die(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port")


@app.callback(invoke_without_command=True)
def home(ctx: typer.Context, root: RootOpt = None) -> None:
    """With no command, `nlirg` opens the workbench's Runs screen on --root (default ./runs)."""
    ctx.obj = {"root": root}
    if ctx.invoked_subcommand is None:
        from nlirg_tui.app import run_home

        run_home(root or DEFAULT_ROOT, DEMO_DEFAULTS)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
