"""Generation speed of `nlirg eval` against a plain `model.generate` loop, side by side in one process.

    python -m bench.eval_generate [--model builtin:smollm2-135m] [--prompts 16] [--batch 8] [--new-tokens 64]
                                  [--threads N]

Both answer the same held-out demo prompts (builtin:demo-heldout) greedily with the same stop tokens and length
bound: `ours` is `trainer_core.evaluate.generate.greedy_answers` (length-sorted batches, left padding, KV cache),
`loop` calls `model.generate` on one prompt at a time. Generated tokens/s counts every token up to and including
the stop token. The two are interleaved (loop, ours, loop, ours) and the ratio uses the mean of each; the answers
must agree (`same answers`), or the comparison would not be fair. The last line is one JSON object, as in every
bench.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from trainer_core.evaluate.eval_data import read_domain_set
from trainer_core.evaluate.generate import greedy_answers
from trainer_core.evaluate.inference import load_for_inference
from trainer_core.evaluate.targets import resolve_target
from trainer_core.train.prompts import encode_prompt, stop_token_ids


def plain_loop(model, tokenizer, prompts, new_tokens: int) -> tuple[list[str], int, float]:
    """One `model.generate` call per prompt: what a script without batching does."""
    stops = stop_token_ids(tokenizer)
    texts, tokens = [], 0
    start = time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([encode_prompt(tokenizer, prompt, 1024)])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
        end = next((i for i, t in enumerate(out) if t in stops), None)
        tokens += end + 1 if end is not None else len(out)
        texts.append(tokenizer.decode(out[:end], skip_special_tokens=True).strip())
    return texts, tokens, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default). On an oversubscribed machine 1 avoids OpenMP barrier "
                         "stalls that slow both sides by an order of magnitude")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, _ = load_for_inference(resolve_target(args.model), torch.device("cpu"), "fp32")
    prompts = [item.prompt for item in read_domain_set(["builtin:demo-heldout"]).items[:args.prompts]]
    greedy_answers(model, tokenizer, prompts[:2], 4, 2)  # warm-up: first-call allocations out of the timing
    loop_rates, ours_rates, same = [], [], True
    for _ in range(args.rounds):
        texts, tokens, seconds = plain_loop(model, tokenizer, prompts, args.new_tokens)
        loop_rates.append(tokens / seconds)
        run = greedy_answers(model, tokenizer, prompts, args.new_tokens, args.batch)
        ours_rates.append(run.tokens_per_s)
        same = same and texts == [a.text for a in run.answers]
    loop_rate, ours_rate = sum(loop_rates) / len(loop_rates), sum(ours_rates) / len(ours_rates)
    print(f"model {args.model}, {len(prompts)} prompts, up to {args.new_tokens} new tokens, batch {args.batch}, "
          f"{torch.get_num_threads()} threads, {args.rounds} rounds")
    print(f"loop (model.generate, one prompt at a time): {loop_rate:8.1f} generated tokens/s  "
          f"(rounds: {', '.join(f'{r:.1f}' for r in loop_rates)})")
    print(f"ours (nlirg eval, batched):                  {ours_rate:8.1f} generated tokens/s  "
          f"(rounds: {', '.join(f'{r:.1f}' for r in ours_rates)})")
    print(f"speedup {ours_rate / loop_rate:.2f}x (target >= 3x at batch 8 on CPU); same answers: {same}")
    print(json.dumps({"bench": "eval_generate", "model": args.model, "prompts": len(prompts), "batch": args.batch,
                      "new_tokens": args.new_tokens, "threads": torch.get_num_threads(), "rounds": args.rounds,
                      "loop_tokens_per_s": round(loop_rate, 1), "ours_tokens_per_s": round(ours_rate, 1),
                      "speedup": round(ours_rate / loop_rate, 2), "same_answers": same}))


if __name__ == "__main__":
    main()
