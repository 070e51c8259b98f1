"""DeepSpeed: the config files filled from the run config, the launcher command, and real 2-rank runs on the CPU
(gloo) through the real `deepspeed` launcher: ZeRO-2 and ZeRO-3 against one device, resume, stop and a dead rank.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY, make_config, nlirg_cli, step_losses, train_in_process, write_alpaca
from tests.live_helpers import LONG, live_env, private_runtime_dir, wait_for, wait_for_step
from trainer_core.config import ConfigError
from trainer_core.config.deepspeed import resolve_deepspeed_config, template_path
from trainer_core.live.chat import read_history
from trainer_core.live.client import LiveClient
from trainer_core.live.events import read_events
from trainer_core.live.launch import deepspeed_command, launch_command, prepare_run, start_detached
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import read_json

needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="the deepspeed extra is not installed (pip install -e .[deepspeed])")
DS = ["distributed.backend=deepspeed", "distributed.num_procs=2"]
# The same global batch: 1 rank x 4 samples against 2 ranks x 2 samples; accumulation and clipping both active.
COMMON = [*TINY, "training.grad_accum=2", "training.max_grad_norm=0.05", "lora.dropout=0", "data.eval_fraction=0.2",
          "telemetry.flag_threshold=0.01", "training.save_every=0"]
ONE_RANK = ["training.batch_size=4"]
TWO_RANKS = ["training.batch_size=2", *DS]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_alpaca(tmp_path / "train.jsonl", n=24)


def ds_env(tmp_path: Path) -> dict[str, str]:
    # One thread per rank: two ranks on two cores, not four threads fighting over them. (DeepSpeed's CPU ranks
    # JIT-build a small C++ op; the trainer keeps it in this venv's own folder: live/jit_cache.py.)
    return live_env(private_runtime_dir(), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def new_run(tmp_path: Path, overrides: list[str], name: str) -> Path:
    cfg = make_config([*overrides, f"output.root={tmp_path / 'runs'}", f"output.name={name}"])
    return prepare_run(cfg, name)


def launch(run_dir: Path, env: dict[str, str], *trainer_args: str) -> subprocess.CompletedProcess:
    cmd = launch_command(run_dir)
    if trainer_args:
        cmd = deepspeed_command(make_config_from(run_dir), ["--run-dir", str(run_dir), *trainer_args])
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)


def make_config_from(run_dir: Path):
    from trainer_core.config import build_config

    return build_config(run_dir / "config.yaml")


def steps(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"]


def rank_info(run_dir: Path, rank: int) -> dict:
    return read_json(run_dir / "ranks" / f"rank-{rank}.json") or {}


def assert_same_steps(two: list[dict], one: list[dict]) -> None:
    assert [e["step"] for e in two] == [e["step"] for e in one]
    for a, b in zip(two, one, strict=True):
        assert a["zone_counts"] == b["zone_counts"], f"step {a['step']}: zone counts not summed over ranks"
        assert a["target_tokens"] == b["target_tokens"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5), f"step {a['step']} loss"
        assert a["weighted_loss"] == pytest.approx(b["weighted_loss"], rel=1e-5), f"step {a['step']} weighted loss"
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3), f"step {a['step']} grad norm"


# ----------------------------------------------------------------------------------------------- config files
def test_shipped_configs_fill_every_auto_from_the_run_config(data: Path) -> None:
    cfg = make_config([*TINY, f"data.train={data}", *DS, "training.grad_accum=3", "training.lr=0.01",
                       "distributed.zero_stage=3", "distributed.optimizer=deepspeed"])
    ds = resolve_deepspeed_config(cfg, 2, "bf16")
    assert ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["gradient_accumulation_steps"] == 3
    assert ds["train_batch_size"] == 2 * 3 * 2
    assert ds["gradient_clipping"] == cfg.training.max_grad_norm
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert ds["optimizer"]["params"]["lr"] == 0.01
    assert ds["zero_optimization"]["stage"] == 3
    assert "auto" not in json.dumps(ds)
    assert json.loads(template_path(2).read_text())["zero_optimization"]["stage"] == 2


def test_torch_optimizer_drops_the_json_optimizer_and_allows_offload(data: Path) -> None:
    cfg = make_config([*TINY, f"data.train={data}", *DS, "distributed.offload=true", "distributed.zero_stage=3"])
    ds = resolve_deepspeed_config(cfg, 2, "fp32")
    assert "optimizer" not in ds
    assert ds["zero_force_ds_cpu_optimizer"] is False
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"


def test_a_conflicting_user_json_is_an_error_naming_each_key(data: Path, tmp_path: Path) -> None:
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": "auto",
                                "bf16": {"enabled": True}, "scheduler": {"type": "WarmupLR"},
                                "optimizer": {"type": "Lamb", "params": {"lr": 0.5}}}))
    with pytest.raises(ConfigError) as err:
        make_config([*TINY, f"data.train={data}", *DS, "model.dtype=fp32", f"distributed.deepspeed_config={user}",
                     "training.token_batch=8"])
    text = "\n".join(err.value.problems)
    for needle in ("train_micro_batch_size_per_gpu is 8 but training.batch_size is 2", "bf16.enabled is true",
                   "\"scheduler\" section", "optimizer.params.lr is 0.5 but training.lr", "optimizer.type is Lamb",
                   "training.token_batch"):
        assert needle in text
    assert all(p.startswith(("distributed.deepspeed_config", "training.token_batch")) for p in err.value.problems)


def test_nlirg_train_refuses_a_conflict_with_one_line_and_exit_2(data: Path, tmp_path: Path) -> None:
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"gradient_accumulation_steps": 4}))
    sets = [*TINY, f"data.train={data}", *DS, f"distributed.deepspeed_config={user}", f"output.root={tmp_path}"]
    out = nlirg_cli("train", *[a for s in sets for a in ("--set", s)], "--max-steps", "2", cwd=tmp_path)
    assert out.returncode == 2
    assert "gradient_accumulation_steps is 4 but training.grad_accum is 1" in out.stderr
    assert not list(tmp_path.glob("*-2*/config.yaml")), "nothing may be launched"


def test_launcher_command_line(data: Path, tmp_path: Path) -> None:
    cfg = make_config([*TINY, f"data.train={data}", *DS])
    cmd = deepspeed_command(cfg, ["--run-dir", "R"])
    assert Path(cmd[0]).name == "deepspeed"
    assert cmd[cmd.index("--num_gpus") + 1] == "2"
    assert cmd[-5:] == ["--no_local_rank", "--module", "trainer_core", "--run-dir", "R"]
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=4\nnode2 slots=4\n")
    cfg = make_config([*TINY, f"data.train={data}", "distributed.backend=deepspeed", f"distributed.hostfile={hostfile}",
                       "distributed.include=node1:0,1@node2:0,1"])
    cmd = deepspeed_command(cfg, ["--run-dir", "R"])
    assert cmd[cmd.index("--hostfile") + 1] == str(hostfile)
    assert cmd[cmd.index("--include") + 1] == "node1:0,1@node2:0,1"
    assert "--num_gpus" not in cmd and "--master_port" not in cmd


def test_jit_ops_build_in_this_environments_folder_unless_the_user_names_one() -> None:
    from trainer_core.live.jit_cache import jit_cache_dir, use_jit_cache, with_jit_cache

    own = str(Path(sys.prefix) / "torch_extensions")  # this venv is writable
    assert str(jit_cache_dir()) == own
    assert with_jit_cache({"PATH": "/bin"}) == {"PATH": "/bin", "TORCH_EXTENSIONS_DIR": own}
    assert with_jit_cache({"TORCH_EXTENSIONS_DIR": "/mine"})["TORCH_EXTENSIONS_DIR"] == "/mine"
    rank_env: dict[str, str] = {"TORCH_EXTENSIONS_DIR": ""}  # empty is replaced too (torch: the current folder)
    use_jit_cache(rank_env)  # what a rank does first (trainer_core.__main__), whoever launched it
    assert rank_env == {"TORCH_EXTENSIONS_DIR": own}


# ----------------------------------------------------------------------------------------------- real runs
@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_zero2_two_ranks_match_one_device(data: Path, tmp_path: Path) -> None:
    # Three steps: the two runs differ by float32 rounding (~1e-7 at step 1: other batch shapes, another reduction
    # order), and each update at this LR with clipping multiplies that by 10-100; by step 4 the grad norms differed
    # by 5e-4 (plain head) to 8e-3 (fused head), past the 1e-3 a summing bug would be told from.
    lora = ["lora.enabled=true", "lora.r=4", "training.lr=0.03"]
    ref_dir = tmp_path / "one"
    train_in_process(ref_dir, [*COMMON, *lora, *ONE_RANK, f"data.train={data}", "training.max_steps=3"])
    run_dir = new_run(tmp_path, [*COMMON, *lora, *TWO_RANKS, f"data.train={data}", "training.max_steps=3"], "zero2")
    out = launch(run_dir, ds_env(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    summary, ref = read_json(run_dir / "summary.json"), read_json(ref_dir / "summary.json")
    assert summary["status"] == "completed" and summary["world_size"] == 2 and ref["world_size"] == 1
    two, one = steps(run_dir), steps(ref_dir)
    assert_same_steps(two, one)
    summed = [sum(e["zone_counts"][zone] for e in two) for zone in range(4)]
    assert summary["zone_counts"] == ref["zone_counts"] == summed
    assert all(len(e["rank_memory"]) == 2 and all(m["rss"] > 0 for m in e["rank_memory"]) for e in two)
    evals = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "eval"]
    assert evals and evals[-1]["eval_loss"] == pytest.approx(read_json(ref_dir / "summary.json")["eval"]["eval_loss"],
                                                             rel=1e-5)
    # Flagged samples come from both ranks: every sample the one-device run flagged, rank 1's share included.
    flagged = {json.loads(line)["sample_id"] for line in (run_dir / "flagged.jsonl").read_text().splitlines()}
    assert flagged == {json.loads(line)["sample_id"] for line in (ref_dir / "flagged.jsonl").read_text().splitlines()}
    # Rank 1 wrote only its own log and status: one event stream, one step event per step.
    seqs = [e["seq"] for e in read_events(run_dir / "events.jsonl")]
    assert seqs == list(range(len(seqs)))
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == ["rank-0.json", "rank-1.json", "rank-1.log"]
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()
    assert (run_dir / "checkpoints" / "step-3" / "deepspeed").is_dir()


def zero3_sharding_everything(tmp_path: Path) -> Path:
    """ZeRO-3 that really shards even the tiny model's small tensors (the shipped file keeps tensors under 1e5
    elements whole on every rank), as a user's own JSON."""
    user = json.loads(template_path(3).read_text())
    user["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    (tmp_path / "zero3.json").write_text(json.dumps(user))
    return tmp_path / "zero3.json"


def generations(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "eval" and e.get("kind") == "generation"]


def answered(event: dict) -> tuple:
    """A generation event's step, example answers and scores (not its speed)."""
    from trainer_core.evaluate.metrics import GENERATION_EVENT_KEYS

    return event["step"], event["examples"], [event[key] for key in GENERATION_EVENT_KEYS]


@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_zero3_full_model_export_and_resume(data: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from trainer_core.config import build_config, save_config

    # The generation probe (eval.generate_every) answers on every rank: ZeRO-3 gathers the weights in each forward.
    probe = [f"eval.domain={write_alpaca(tmp_path / 'domain.jsonl', n=3)}", "eval.generate_every=2",
             "eval.max_samples=3", "eval.max_new_tokens=5", "eval.batch_size=2", "training.eval_at_start=false"]
    base = [*COMMON, "lora.enabled=false", f"data.train={data}", "training.max_steps=4", "training.save_every=2",
            "training.save_total_limit=0", "data.eval_fraction=0", *probe]
    ref_dir = tmp_path / "one"
    train_in_process(ref_dir, [*base, *ONE_RANK])
    zero3 = f"distributed.deepspeed_config={zero3_sharding_everything(tmp_path)}"
    run_dir = new_run(tmp_path, [*base, *TWO_RANKS, zero3], "zero3")
    env = ds_env(tmp_path)
    out = launch(run_dir, env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ZeRO stage 3" in (run_dir / "trainer.log").read_text()
    assert_same_steps(steps(run_dir), steps(ref_dir))
    # Greedy answers from the sharded model are the one-device model's, at the same steps.
    assert [e["step"] for e in generations(run_dir)] == [2, 4]
    assert [answered(e) for e in generations(run_dir)] == [answered(e) for e in generations(ref_dir)]

    # The final export gathers the shards into a plain Hugging Face folder equal to the one-device result.
    exported, expected = load_file(str(run_dir / "final" / "model.safetensors")), \
        load_file(str(ref_dir / "final" / "model.safetensors"))
    assert exported.keys() == expected.keys()
    for key, tensor in expected.items():
        assert exported[key].shape == tensor.shape, key
        torch.testing.assert_close(exported[key].float(), tensor.float(), rtol=1e-4, atol=1e-5)

    # --resume from the step-2 checkpoint (DeepSpeed's own save/load) with other betas and weight decay, as
    # `nlirg train --resume RUN --set ...` writes them: step 3 repeats exactly, and from there the run trains with
    # the new values (the resume rule) as a one-device run resumed the same way does.
    changed = ["training.betas=[0.5, 0.9]", "training.weight_decay=0.5"]
    again = tmp_path / "again"
    shutil.copytree(run_dir, again, ignore=shutil.ignore_patterns("final", "step-4"))
    (again / "events.jsonl").unlink()
    save_config(build_config(again / "config.yaml", changed), again / "config.yaml")
    out = launch(again, env, "--resume", str(again / "checkpoints" / "step-2"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ref_again = tmp_path / "one-again"
    train_in_process(ref_again, [*base, *ONE_RANK, *changed], resume=ref_dir / "checkpoints" / "step-2")
    assert step_losses(again)[0] == pytest.approx(step_losses(run_dir)[2], rel=1e-5)
    assert step_losses(again) == pytest.approx(step_losses(ref_again), rel=1e-5)
    resumed = load_file(str(again / "final" / "model.safetensors"))
    for key, tensor in load_file(str(ref_again / "final" / "model.safetensors")).items():
        torch.testing.assert_close(resumed[key].float(), tensor.float(), rtol=1e-4, atol=1e-5)
    moved = max((resumed[k].float() - exported[k].float()).abs().max().item() for k in exported)
    assert moved > 1e-3, "the new betas and weight decay changed nothing"


def model_folder(path: Path, hidden: int, layers: int) -> Path:
    """A random Qwen2-shaped model saved in bf16 as hub checkpoints are (the trainer loads float32 weights from it),
    with the tiny builtin's tokenizer (1,024 ids)."""
    import torch
    from transformers import AutoTokenizer

    from bench.qwen2_shape import qwen2_shaped
    from trainer_core.train.model.builtin import resolve_model_path

    qwen2_shaped(vocab=1024, hidden=hidden, layers=layers, dtype=torch.bfloat16).save_pretrained(path)
    AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny")).save_pretrained(path)
    return path


def rank_peaks(run_dir: Path) -> list[int]:
    """Each rank's peak resident set over the whole run (the last step event's per-rank reading)."""
    return [m["peak"] for m in steps(run_dir)[-1]["rank_memory"]]


def model_with_a_nan_in_its_last_shard(path: Path) -> Path:
    """A small untied Qwen2-shaped model whose input-embedding row for token 1039 is NaN: the tiny tokenizer's
    1,024 ids never look that row up, so training is finite, but a checkpoint would hold the NaN. The row is the
    last of the tensor: ZeRO-3 cuts a flattened tensor in rank order, so it lies in rank 1's shard alone."""
    import torch
    from transformers import AutoTokenizer

    from bench.qwen2_shape import qwen2_shaped
    from trainer_core.train.model.builtin import resolve_model_path

    model = qwen2_shaped(vocab=1040, hidden=64, layers=1, tied=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[-1] = float("nan")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny")).save_pretrained(path)
    return path


@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_zero3_a_nan_in_one_ranks_shard_stops_the_save_on_every_rank(data: Path, tmp_path: Path) -> None:
    """Each rank checks the shard it holds (not ZeRO-3's empty placeholders) and the ranks agree on the verdict:
    rank 0, whose own shard is finite, refuses the checkpoint and the final model too, and no rank waits on a
    save another skipped."""
    model = model_with_a_nan_in_its_last_shard(tmp_path / "model")
    run_dir = new_run(tmp_path, [*COMMON, f"model.path={model}", f"data.train={data}", "training.max_steps=1",
                                 "data.eval_fraction=0", *TWO_RANKS,
                                 f"distributed.deepspeed_config={zero3_sharding_everything(tmp_path)}"], "nan")
    out = launch(run_dir, ds_env(tmp_path))
    assert out.returncode != 0, "a run whose final model could not be written has failed"
    assert [e["loss"] for e in steps(run_dir)], "training itself was finite"
    errors = [e["message"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "error"]
    for what in ("checkpoint at step 1", "final model"):
        assert any(m.startswith(f"{what} not written") and "model.embed_tokens.weight" in m for m in errors), errors
    assert not list(run_dir.glob("checkpoints/step-*")) and not (run_dir / "final").exists()
    assert "not written" in (run_dir / "ranks" / "rank-1.log").read_text()  # rank 1 refused it as well


@pytest.mark.deepspeed
@pytest.mark.slow
@pytest.mark.timeout(1500)
@needs_deepspeed
def test_zero3_builds_the_model_sharded(data: Path, tmp_path: Path) -> None:
    """ZeRO-3 builds the model inside zero.Init: no rank ever holds all of it, so every rank's peak stays clearly
    below the whole-model-first path; LoRA on the sharded base trains exactly as on one device."""
    model = model_folder(tmp_path / "model", hidden=1024, layers=16)  # ~195M parameters, 780 MB in float32
    model_bytes = 2 * (model / "model.safetensors").stat().st_size  # in float32, as the ranks hold it
    # Release gathered layers right after use (the shipped file keeps them while memory allows) and keep the
    # gradient bucket small (the shipped 5e7 elements are 200 MB of float32), so a rank's training peak is its
    # shard plus about one layer and the model build is what decides the peak.
    user = json.loads(template_path(3).read_text())
    user["zero_optimization"].update(stage3_param_persistence_threshold=0, stage3_max_live_parameters=2e7,
                                     stage3_max_reuse_distance=0, stage3_prefetch_bucket_size=1.3e7,
                                     reduce_bucket_size=5e5)
    (tmp_path / "zero3.json").write_text(json.dumps(user))
    base = [*COMMON, f"model.path={model}", "lora.enabled=true", "lora.r=4", f"data.train={data}",
            "training.max_steps=2", "data.eval_fraction=0", "data.max_length=48"]
    ds = [*TWO_RANKS, f"distributed.deepspeed_config={tmp_path / 'zero3.json'}"]
    sharded = new_run(tmp_path, [*base, *ds], "sharded")
    whole = new_run(tmp_path, [*base, *ds, "distributed.zero3_sharded_init=false", "training.max_steps=1"], "whole")
    # glibc keeps freed heap blocks under its mmap threshold (up to 32 MiB) in the process, so the resident set
    # would show memory that was gathered and released; blocks of 64 KiB and up go to mmap and back to the OS.
    env = {**ds_env(tmp_path), "MALLOC_MMAP_THRESHOLD_": "65536"}
    for run_dir in (sharded, whole):
        out = launch(run_dir, env)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "building the model sharded over 2 ranks" in (sharded / "trainer.log").read_text()
    assert "building the model sharded" not in (whole / "trainer.log").read_text()
    ref_dir = tmp_path / "one"
    train_in_process(ref_dir, [*base, *ONE_RANK])
    assert_same_steps(steps(sharded), steps(ref_dir))
    for rank, (lean, full) in enumerate(zip(rank_peaks(sharded), rank_peaks(whole), strict=True)):
        assert lean < full - model_bytes / 4, f"rank {rank}: sharded peak {lean >> 20} MiB, whole {full >> 20} MiB"


def exit_code(pid: int) -> tuple[int] | None:
    """(exit code,) once our child `pid` has ended (reaped here), else None."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return (os.waitstatus_to_exitcode(status),) if done else None


@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_save_and_stop_over_the_socket_end_both_ranks_cleanly(data: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = new_run(tmp_path, [*TINY, *DS, f"data.train={data}", f"training.max_steps={LONG}",
                                 "data.eval_fraction=0"], "stop")
    # Started as `nlirg train --detach` and the TUI start it, from an environment that names no extensions folder.
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    launcher = start_detached(run_dir, env=ds_env(tmp_path))
    try:
        wait_for_step(run_dir, 2)
        # Every rank got this venv's own JIT extensions folder, not ~/.cache/torch_extensions that all share.
        for rank in (0, 1):
            environ = Path(f"/proc/{rank_info(run_dir, rank)['pid']}/environ").read_bytes().split(b"\0")
            assert f"TORCH_EXTENSIONS_DIR={Path(sys.prefix) / 'torch_extensions'}".encode() in environ, rank
        client = LiveClient.for_run(run_dir)
        # Rank 1 follows every command through a collective at the same step boundary: a rank that skipped
        # one would leave the other waiting, and the run would never reach the stop.
        # A chat request while paused: answered with synced generation, which waits for every rank's forward.
        acks = [client.command("pause"), client.command("set", {"lr_scale": 0.5, "nlirg.loss_deadline": 14.0}),
                client.command("generate", {"prompt": "What is 1 plus 1?", "max_new_tokens": 4}),
                client.command("resume")]
        saved = client.command("save")
        stopped = client.command("stop")
        assert all(a["ok"] for a in [*acks, saved, stopped]), [*acks, saved, stopped]
        assert wait_for(lambda: exit_code(launcher), "the launcher to exit", timeout=300) == (0,)
    finally:
        if pid_alive(launcher):
            os.killpg(launcher, signal.SIGKILL)
    ranks = [rank_info(run_dir, r) for r in (0, 1)]
    assert not any(pid_alive(info["pid"]) for info in ranks), "no rank may outlive the stop"
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "stopped" and summary["world_size"] == 2
    assert summary["steps"] == stopped["applied_at_step"]
    assert ranks[1]["status"] == "stopped"
    # Both ranks saved at the same steps: every checkpoint holds both ranks' ZeRO shards and RNG.
    for step in {saved["applied_at_step"], stopped["applied_at_step"]}:
        ckpt = run_dir / "checkpoints" / f"step-{step}"
        assert {p.name for p in ckpt.glob("rng-rank*.pt")} == {"rng-rank0.pt", "rng-rank1.pt"}
        assert len(list((ckpt / "deepspeed").glob("zero_pp_rank_*_optim_states.pt"))) == 2
    events = read_events(run_dir / "events.jsonl")
    assert [e["name"] for e in events if e["type"] == "command"] == ["pause", "set", "generate", "resume", "save",
                                                                     "stop"]
    assert [e["model"] for e in events if e["type"] == "chat" and e["done"]] == ["tuned"]  # full fine-tuning
    assert len(read_history(run_dir)) == 1  # rank 0 alone writes chat.jsonl
    assert events[-1]["type"] == "end"


@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_a_killed_rank_fails_the_run_and_ends_the_others(data: Path, tmp_path: Path) -> None:
    run_dir = new_run(tmp_path, [*TINY, *DS, f"data.train={data}", f"training.max_steps={LONG}",
                                 "data.eval_fraction=0"], "kill")
    proc = subprocess.Popen(launch_command(run_dir), env=ds_env(tmp_path), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_step(run_dir, 2)
        victim = rank_info(run_dir, 1)["pid"]
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=300) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not pid_alive(rank_info(run_dir, 0)["pid"]), "rank 0 must end when rank 1 dies"
    trainer = read_json(run_dir / "trainer.json")
    assert trainer["status"] == "failed"
    assert f"rank 1 (pid {victim}) died" in trainer["error"] and "SIGKILL" in trainer["error"]
    end = read_events(run_dir / "events.jsonl")[-1]
    assert end["type"] == "end" and end["status"] == "failed" and "rank 1" in end["reason"]
    wait_for(lambda: not pid_alive(victim), "the killed rank to be reaped")
