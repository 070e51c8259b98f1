"""Training throughput, side by side in one process: NLIRG vs plain CE in our trainer, vs a bare
loop (HF forward with its own CE loss + AdamW, no telemetry), and vs `transformers.Trainer`.

    python -m bench.train_speed            # builtin:smollm2-135m, LoRA, batch 4 x 256 tokens
    python -m bench.train_speed --quick    # builtin:tiny, a few seconds
    python -m bench.train_speed --model "$(python -m bench.real_shapes --shape smollm2-135m --build-only)"

Ours and the bare loop are interleaved step by step (A B C C B A ...) so machine noise hits all of
them alike; the HF Trainer runs in two blocks that sandwich a block of ours. The first `--warmup` steps
of each are dropped. Every rate and ratio is of the median step (tokens/s of each variant's median step; the
mean is printed beside it): one step that other processes held up must not decide a ratio. The logged step's
part (its sync, the step event, flagged samples) is timed apart for ours. The last line is one JSON object with
the ratios (higher is better for us).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainer_core.config import build_config
from trainer_core.live.events import EventLog, read_events
from trainer_core.train.data.batch import collate, epoch_order
from trainer_core.train.loop import Trainer


def build_trainer(root: Path, name: str, overrides: list[str]) -> Trainer:
    run = root / name
    run.mkdir()
    cfg = build_config(None, overrides)
    trainer = Trainer(cfg, run, EventLog(run / "events.jsonl"))
    trainer.setup()
    return trainer


def timed_step(trainer: Trainer, log_s: list[float] | None = None) -> tuple[float, int]:
    """One optimizer step plus its logged-step telemetry sync; returns (seconds, input tokens). The time of the
    logged step's part (sync, event, flagged samples) is appended to `log_s`."""
    before = trainer.totals.input_tokens
    t0 = time.perf_counter()
    trainer.train_step()
    trainer.step += 1
    trainer.interval.steps += 1
    t1 = time.perf_counter()
    trainer._log_step()  # the one host sync of a logged step (log_every=1: the worst case)
    t2 = time.perf_counter()
    if log_s is not None:
        log_s.append(t2 - t1)
    return t2 - t0, trainer.totals.input_tokens - before


def step_rate(steps: list[tuple[float, int]]) -> float:
    """Tokens/s of the median step: the one statistic every number and ratio here comes from (a mean would let a
    single step that other processes held up decide a ratio between variants whose typical steps are equal)."""
    return statistics.median(tokens / seconds for seconds, tokens in steps)


def ordered_samples(trainer: Trainer) -> list:
    """The samples in the trainer's first-epoch order, so every variant trains the very same batches."""
    return [trainer.samples[i] for i in epoch_order(len(trainer.samples), trainer.cfg.training.seed, 0)]


class BareLoop:
    """Plain CE the usual way: model(input_ids, labels=...).loss, backward, clip, AdamW. No telemetry."""

    def __init__(self, reference: Trainer):
        self.ref = reference
        self.model = reference.model
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=reference.cfg.training.lr)
        self.pos = 0
        self.ordered = ordered_samples(reference)

    def step(self) -> tuple[float, int]:
        bs = self.ref.cfg.training.batch_size
        samples = [self.ordered[(self.pos + i) % len(self.ordered)] for i in range(bs)]
        self.pos += bs
        batch = collate(samples, self.ref.tokenizer.pad_token_id).to(self.ref.device)
        tokens = sum(len(s.input_ids) for s in samples)
        t0 = time.perf_counter()
        out = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.ref.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, tokens


def hf_trainer_tokens_per_s(reference: Trainer, steps: int, warmup: int, out_dir: Path) -> float:
    """transformers.Trainer on the same model, samples, batch size and LR, with its plain loss."""
    from transformers import Trainer as HFTrainer
    from transformers import TrainerCallback, TrainingArguments

    samples = ordered_samples(reference)
    pad = reference.tokenizer.pad_token_id
    times: list[float] = []
    tokens: list[int] = []

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            return samples[i]

    def collator(rows):
        b = collate(rows, pad)
        tokens.append(int(b.attention_mask.sum()))  # called in the order the batches are consumed
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}

    class InOrder(HFTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    class Clock(TrainerCallback):
        """Step-end to step-end, so the Trainer's data loading counts as ours does (collate is in our step)."""

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            times.append(now - self.t0)
            self.t0 = now

    args = TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=reference.cfg.training.batch_size, max_steps=steps,
        learning_rate=reference.cfg.training.lr, logging_strategy="no", save_strategy="no", report_to=[],
        use_cpu=reference.device.type == "cpu", dataloader_num_workers=0, remove_unused_columns=False,
        optim="adamw_torch", max_grad_norm=1.0, disable_tqdm=True, seed=reference.cfg.training.seed,
    )
    InOrder(model=reference.model, args=args, train_dataset=Rows(), data_collator=collator,
            callbacks=[Clock()]).train()
    tokens = tokens[: len(times)]  # a look-ahead batch may have been collated but not trained
    return step_rate(list(zip(times, tokens, strict=True))[warmup:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="builtin:tiny, few steps")
    ap.add_argument("--steps", type=int, default=None, help="measured steps per variant")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers.Trainer comparison")
    ap.add_argument("--model", default="builtin:smollm2-135m", help="the model without --quick (a folder, e.g. "
                    "SmolLM2-135M's shape with random weights: python -m bench.real_shapes --build-only)")
    args = ap.parse_args()
    steps = args.steps or (12 if args.quick else 6)
    if args.quick:
        common = ["model.path=builtin:tiny", "lora.enabled=false", "training.batch_size=8", "data.max_length=256"]
    else:
        common = [f"model.path={args.model}", "lora.enabled=true", "training.batch_size=4",
                  "data.max_length=256"]
    common += ["data.train=builtin:demo", "training.max_steps=100000", "training.eval_at_start=false",
               "training.log_every=1", "training.lr=1e-4"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ours = build_trainer(root, "nlirg", [*common, "nlirg.weighting=nlirg"])
        plain = build_trainer(root, "plain", [*common, "nlirg.weighting=plain"])
        bare = BareLoop(build_trainer(root, "bare", common))
        hf_owner = None if args.no_hf else build_trainer(root, "hf", [*common, "nlirg.weighting=plain"])
        n = steps + args.warmup
        hf_rates = []
        if hf_owner is not None:  # HF before and after the interleaved block: drift hits both sides alike
            hf_rates.append(hf_trainer_tokens_per_s(hf_owner, n, args.warmup, root / "hf_a"))
        runs: dict[str, list[tuple[float, int]]] = {"nlirg": [], "plain": [], "bare": []}
        log_s: dict[str, list[float]] = {"nlirg": [], "plain": []}
        for i in range(n):
            order = [("nlirg", lambda: timed_step(ours, log_s["nlirg"])),
                     ("plain", lambda: timed_step(plain, log_s["plain"])), ("bare", bare.step)]
            for name, fn in order if i % 2 == 0 else order[::-1]:  # neither goes first every time
                runs[name].append(fn())
        if hf_owner is not None:
            hf_rates.append(hf_trainer_tokens_per_s(hf_owner, n, args.warmup, root / "hf_b"))
        rate = {k: step_rate(v[args.warmup:]) for k, v in runs.items()}
        for k, v in runs.items():
            median = statistics.median(s for s, _ in v[args.warmup:])
            mean_rate = sum(t for _, t in v[args.warmup:]) / sum(s for s, _ in v[args.warmup:])
            part = statistics.median(log_s[k][args.warmup:]) * 1e3 if k in log_s else None
            logged = f"   logged-step part {part:.1f} ms" if part is not None else ""
            print(f"{k:6s} {rate[k]:9.1f} tokens/s (median step)   median step {median:.3f}s   "
                  f"mean {mean_rate:.1f} tokens/s{logged}")
        measured = [e for e in read_events(root / "nlirg" / "events.jsonl") if e["type"] == "step"][args.warmup:]
        result = {
            "model": common[0].split("=")[1], "steps": steps, "device": str(ours.device),
            "tokens_per_s": rate["nlirg"],
            "mfu": statistics.median(e["mfu"] for e in measured) if measured and measured[0]["mfu"] is not None
            else None,
            "model_tflops": statistics.median(e["model_tflops"] for e in measured) if measured else None,
            "statistic": "median step",
            "nlirg_vs_plain": rate["nlirg"] / rate["plain"],
            "nlirg_log_step_ms": statistics.median(log_s["nlirg"][args.warmup:]) * 1e3,
            "plain_log_step_ms": statistics.median(log_s["plain"][args.warmup:]) * 1e3,
            "nlirg_vs_bare_ce": rate["nlirg"] / rate["bare"],
            "telemetry_and_loop_cost": 1 - rate["plain"] / rate["bare"],
            "peak_memory_bytes": ours._write_summary("bench")["peak_memory_bytes"],
        }
        if hf_rates:
            hf_rate = sum(hf_rates) / len(hf_rates)
            print(f"hf     {hf_rate:9.1f} tokens/s (transformers.Trainer, plain CE; runs {hf_rates[0]:.1f}, "
                  f"{hf_rates[1]:.1f})")
            result["ours_plain_vs_hf_trainer"] = rate["plain"] / hf_rate
            result["ours_nlirg_vs_hf_trainer"] = rate["nlirg"] / hf_rate
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
