"""Peak memory and time of one LoRA training step at a 151,936-token vocabulary: the fused LM head + cross-entropy
against the plain path and Hugging Face, side by side in one process.

    python -m bench.memory            # Qwen2-shaped model (hidden 512, 2 layers), one 2,048-token row, 1,536 targets
    python -m bench.memory --quick    # the same model and vocabulary, a 512-token row with 384 targets

Three variants of one step (loss, backward, AdamW) on the same model and row, alternating in one process over
`--repeats` rounds after one unmeasured warm-up round:

- `fused`: the trainer's loss step as it runs (fused, chunked LM head + cross-entropy, NLIRG weights);
- `plain`: the same loss step with the LM head through autograd (chunked in the forward only, every chunk's
  logits kept for backward): the trainer's fallback, and what it did before the fused head;
- `hf`: Hugging Face's `model(input_ids, labels=...)`.

Peak growth is what one step adds at its high-water mark. On a GPU it is the allocator's peak of allocated
memory. On the CPU it is the resident-set high-water mark (reset through /proc/self/clear_refs where the kernel
allows it, else sampled every millisecond) minus the resident set before the step; so that it measures the
step and not what earlier steps left in the C heap, blocks of 1 MiB and more are always mmap'd and handed back
when freed (glibc's threshold is pinned with mallopt; it otherwise rises after each free) and the heap is
trimmed before each step. Ratios are the medians of each round's own ratio; `*_range` gives their spread.

`check` runs the fused step in float32 against a float64 reference (full logits, log-softmax) on the first 128
positions of the row: `max_loss_diff` is the largest per-token loss difference, `max_grad_diff` the largest LoRA
gradient difference relative to the largest reference gradient entry. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import threading
import time
from collections.abc import Callable
from unittest import mock

import psutil
import torch

from bench.qwen2_shape import QWEN2_VOCAB, one_row, qwen2_shaped

CHECK_LENGTH, CHECK_TARGETS = 128, 96
VARIANTS = ("fused", "plain", "hf")
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def lora_model(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The Qwen2-shaped model with a LoRA adapter whose B matrices are non-zero (a mid-training adapter)."""
    from trainer_core.config import LoraConfig
    from trainer_core.train.model.load import apply_lora

    model = apply_lora(qwen2_shaped(), LoraConfig(r=16, alpha=32, dropout=0.0))
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    return model.to(dtype)


def make_batch(length: int, targets: int):
    from trainer_core.train.data.batch import Batch

    input_ids, labels = one_row(length, targets)
    return Batch(input_ids, labels, torch.ones_like(input_ids), torch.arange(length)[None], [0])


def hf_loss(model, batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss


def our_loss(model, batch) -> torch.Tensor:
    from trainer_core.config import NlirgParams
    from trainer_core.train.loss.step import loss_step

    out = loss_step(model, batch, NlirgParams())
    return out.weighted_sum / out.nonzero.clamp(min=1)


def plain_loss(model, batch) -> torch.Tensor:
    """Our loss step with the fused head switched off: the plain chunked path the trainer falls back to."""
    from trainer_core.train.loss import step

    with mock.patch.object(step, "_why_not_fused", lambda head: "bench.memory asks for the plain path"):
        return our_loss(model, batch)


LOSSES: dict[str, Callable] = {"fused": our_loss, "plain": plain_loss, "hf": hf_loss}


def pin_malloc(threshold: int = 1 << 20) -> Callable[[], None]:
    """Make freed blocks of `threshold` bytes or more go back to the kernel (glibc); returns the heap trimmer (a
    no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, threshold)
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):
        return lambda: None


class PeakRss:
    """Resident-set high-water mark from now on: the kernel's VmHWM after a reset, else a 1 ms sampler."""

    def __init__(self) -> None:
        self.base = psutil.Process().memory_info().rss
        self._sampled = self.base
        self._stop = threading.Event()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current resident set
            self._thread = None
        except OSError:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(0.001):
            self._sampled = max(self._sampled, proc.memory_info().rss)

    def growth(self) -> int:
        if self._thread is None:
            with open("/proc/self/status") as fh:
                hwm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM"))
        else:
            self._stop.set()
            self._thread.join()
            hwm = self._sampled
        return hwm - self.base


class PeakCuda:
    """Allocated GPU memory's high-water mark from now on (the allocator's own counter)."""

    def __init__(self) -> None:
        torch.cuda.synchronize()  # host sync: the counters must cover every queued kernel
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()

    def growth(self) -> int:
        torch.cuda.synchronize()  # host sync: as above
        return torch.cuda.max_memory_allocated() - self.base


def one_step(variant: str, model, batch, opt, trim: Callable[[], None]) -> tuple[int, float]:
    """(peak growth in bytes, seconds) of one step of `variant`."""
    cuda = batch.input_ids.is_cuda
    trim()
    peak = PeakCuda() if cuda else PeakRss()
    t0 = time.perf_counter()
    LOSSES[variant](model, batch).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    growth = peak.growth()  # synchronizes on a GPU, so the time below covers the kernels
    return growth, time.perf_counter() - t0


def run_rounds(length: int, targets: int, repeats: int, device: torch.device) -> dict[str, list[tuple[int, float]]]:
    """`repeats` measured rounds of every variant after one warm-up round; the order rotates each round."""
    trim = pin_malloc()
    model = lora_model().to(device)
    batch = make_batch(length, targets).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    runs: dict[str, list[tuple[int, float]]] = {v: [] for v in VARIANTS}
    for r in range(repeats + 1):
        order = VARIANTS[r % 3:] + VARIANTS[: r % 3]  # none always goes first
        for variant in order:
            growth, seconds = one_step(variant, model, batch, opt, trim)
            if r:
                runs[variant].append((growth, seconds))
                print(f"round {r} {variant:5s} peak growth {growth / 2**30:6.3f} GiB   step {seconds:6.2f} s",
                      flush=True)
    return runs


def reference_losses(model, batch) -> torch.Tensor:
    """float64 per-token cross-entropy from the full logits: the plain definition, nothing chunked or fused."""
    logits = model(input_ids=batch.input_ids).logits[0, :-1]
    labels = batch.labels[0, 1:]
    keep = labels != -100
    return -torch.log_softmax(logits[keep], dim=-1).gather(1, labels[keep, None])[:, 0]


def run_check(device: torch.device) -> dict:
    """The fused step in float32 against the float64 reference on a slice of the row: losses and LoRA gradients."""
    from trainer_core.config import NlirgParams
    from trainer_core.train.loss.step import loss_step
    from trainer_core.train.loss.weights import nlirg_weights

    batch = make_batch(CHECK_LENGTH, CHECK_TARGETS).to(device)
    ours, ref = lora_model().to(device), lora_model(torch.float64).to(device)
    out = loss_step(ours, batch, NlirgParams())
    out.weighted_sum.backward()
    ref_losses = reference_losses(ref, batch)
    (ref_losses * nlirg_weights(ref_losses).double()).sum().backward()
    grads = {n: p.grad for n, p in ours.named_parameters() if p.grad is not None}
    ref_grads = {n: p.grad for n, p in ref.named_parameters() if p.grad is not None}
    grad_diff = max(((grads[n].double() - g).abs().max() / g.abs().max()).item() for n, g in ref_grads.items())
    loss_diff = (out.tokens.losses.double() - ref_losses).abs().max().item()
    return {"max_loss_diff": loss_diff, "max_grad_diff": grad_diff}


def ratios(num: list[float], den: list[float]) -> tuple[float, list[float]]:
    """Median and [min, max] of the per-round ratios num/den."""
    each = [n / d for n, d in zip(num, den, strict=True)]
    return round(statistics.median(each), 4), [round(min(each), 4), round(max(each), 4)]


def summary(runs: dict[str, list[tuple[int, float]]]) -> dict:
    """The ratios (fused vs plain and vs HF: peak growth ours/theirs, speed theirs/ours) with their spread."""
    peak = {v: [g for g, _ in rs] for v, rs in runs.items()}
    secs = {v: [s for _, s in rs] for v, rs in runs.items()}
    out: dict = {}
    for other in ("hf", "plain"):
        out[f"peak_ratio_vs_{other}"], out[f"peak_ratio_vs_{other}_range"] = ratios(peak["fused"], peak[other])
        out[f"speed_ratio_vs_{other}"], out[f"speed_ratio_vs_{other}_range"] = ratios(secs[other], secs["fused"])
    for v in VARIANTS:
        out[f"peak_growth_{v}"] = int(statistics.median(peak[v]))
        out[f"step_s_{v}"] = round(statistics.median(secs[v]), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 512-token row (384 targets), same vocabulary")
    ap.add_argument("--repeats", type=int, default=3, help="measured rounds of fused/plain/hf")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda (default: cuda when available); on a GPU peak growth is allocated memory")
    args = ap.parse_args()
    length, targets = (512, 384) if args.quick else (2048, 1536)
    device = torch.device(args.device)
    result = summary(run_rounds(length, targets, args.repeats, device))
    result.update(run_check(device))
    result.update({"vocab": QWEN2_VOCAB, "tokens": length, "targets": targets, "repeats": args.repeats,
                   "device": args.device})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
