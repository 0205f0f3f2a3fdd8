"""Train tokens/s of LMRec's joint step (LM batch + rec batch) against transformers' GPT2LMHeadModel LM step.

Both see the same token tensors at the same sizes. The joint step's tokens are the LM batch plus the rec batch's
user histories and item texts. Model FLOP utilisation (MFU) is each step's model FLOPs per second (`step_flops`:
forward and backward of the trunk's matmuls and attention, and of the LM head where it is applied) over this CPU's
fp32 matmul peak, measured first on a 2048 x 2048 matmul. Prints a markdown table; run on an idle machine:

    .venv/bin/python benchmarks/train_throughput.py [--steps 10] [--presets 1.7m 7m 20m]
"""

import argparse
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lmrec_hf import LMRecConfig, LMRecForJointModeling


def _batch(vocab, rows, length, generator):
    ids = torch.randint(2, vocab, (rows, length), generator=generator)
    ids[:, -1] = 0  # EOS ends every row
    return ids


def step_flops(config, streams: list[tuple[int, int, bool]]) -> float:
    """
    Model FLOPs of one training step (forward + backward = 3x forward) over `streams` of (rows, length, through the LM
    head): per token 2 FLOPs per trunk matmul weight, plus attention's QK^T and AV (2 x 2 x length x d per layer,
    causal masking not discounted), plus 2 x d x vocab for the LM head where it applies.
    """
    d, layers, inner = config.n_embd, config.n_layer, config.n_inner or 4 * config.n_embd
    trunk_weights = layers * (4 * d * d + 2 * d * inner)  # QKV + attention out, MLP in + out
    total = 0.0
    for rows, length, lm_head in streams:
        per_token = 2 * trunk_weights + 4 * layers * length * d + (2 * d * config.vocab_size if lm_head else 0)
        total += rows * length * per_token
    return 3 * total


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """This CPU's fp32 matmul FLOP/s: the best of `repeats` size x size matmuls."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b, 1) for _ in range(repeats))
    return 2 * size ** 3 / best


def _timed(step, steps):
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["1.7m", "7m", "20m"])
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--lm-batch", type=int, default=16)
    parser.add_argument("--rec-batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256, help="tokens per LM row and per user history")
    parser.add_argument("--item-length", type=int, default=16)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    lm_ids = _batch(args.vocab_size, args.lm_batch, args.length, g)
    user_ids = _batch(args.vocab_size, args.rec_batch, args.length, g)
    n_items = args.rec_batch * (1 + args.negatives)
    item_ids = _batch(args.vocab_size, n_items, args.item_length, g)
    rec_labels = torch.zeros(args.rec_batch, 1 + args.negatives)
    rec_labels[:, 0] = 1
    joint_tokens = lm_ids.numel() + user_ids.numel() + item_ids.numel()
    gpt2_ids = torch.cat([lm_ids, user_ids])  # the LM baseline gets the LM rows and the histories
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocab {args.vocab_size:,}, "
          f"LM batch {args.lm_batch}x{args.length}, rec batch {args.rec_batch}x{args.length} + "
          f"{n_items} items x {args.item_length}, fp32, sdpa, {args.steps} timed steps")
    peak = matmul_peak()
    print(f"fp32 matmul peak (2048 x 2048, best of 5): {peak / 1e9:,.1f} GFLOP/s")
    print("| preset | params | LMRec joint step tokens/s | LMRec MFU | GPT2LMHeadModel LM step tokens/s | GPT-2 MFU | "
          "ratio |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets:
        config = LMRecConfig.from_preset(preset, vocab_size=args.vocab_size, n_positions=args.length,
                                         attn_implementation="sdpa")
        torch.manual_seed(0)
        model = LMRecForJointModeling(config).train()
        gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=args.vocab_size, n_positions=args.length, n_embd=config.n_embd,
                                          n_layer=config.n_layer, n_head=config.n_head, n_inner=config.n_inner,
                                          activation_function=config.activation_function,
                                          attn_implementation="sdpa")).train()
        opt_a = torch.optim.AdamW(model.parameters(), lr=1e-4)
        opt_b = torch.optim.AdamW(gpt2.parameters(), lr=1e-4)

        def joint_step(model=model, opt_a=opt_a):
            out = model(input_ids=lm_ids, labels=lm_ids, user_input_ids=user_ids, item_input_ids=item_ids,
                        rec_labels=rec_labels)
            out.loss.backward()
            opt_a.step()
            opt_a.zero_grad()

        def gpt2_step(gpt2=gpt2, opt_b=opt_b):
            gpt2(input_ids=gpt2_ids, labels=gpt2_ids).loss.backward()
            opt_b.step()
            opt_b.zero_grad()

        joint_s, base_s = _timed(joint_step, args.steps), _timed(gpt2_step, args.steps)
        joint, base = joint_tokens / joint_s, gpt2_ids.numel() / base_s
        joint_mfu = step_flops(config, [(args.lm_batch, args.length, True), (args.rec_batch, args.length, False),
                                        (n_items, args.item_length, False)]) / joint_s / peak
        base_mfu = step_flops(config, [(gpt2_ids.shape[0], args.length, True)]) / base_s / peak
        print(f"| {preset} | {model.num_parameters() / 1e6:.2f}M | {joint:,.0f} | {joint_mfu:.0%} | {base:,.0f} | "
              f"{base_mfu:.0%} | {joint / base:.2f} |")


if __name__ == "__main__":
    main()
