"""Train tokens/s of LMRec's joint step (LM batch + rec batch) against transformers' GPT2LMHeadModel LM step.

Both see the same token tensors at the same sizes. The joint step's tokens are the LM batch plus the rec batch's
user histories and item texts. Prints a markdown table; run on an idle machine:

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
    print("| preset | params | LMRec joint step tokens/s | GPT2LMHeadModel LM step tokens/s | ratio |")
    print("|---|---|---|---|---|")
    for preset in args.presets:
        config = LMRecConfig.from_preset(preset, vocab_size=args.vocab_size, n_positions=args.length,
                                         attn_implementation="sdpa")
        torch.manual_seed(0)
        model = LMRecForJointModeling(config).train()
        gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=args.vocab_size, n_positions=args.length, n_embd=config.n_embd,
                                          n_layer=config.n_layer, n_head=config.n_head, n_inner=config.n_inner,
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

        joint = joint_tokens / _timed(joint_step, args.steps)
        base = gpt2_ids.numel() / _timed(gpt2_step, args.steps)
        print(f"| {preset} | {model.num_parameters() / 1e6:.2f}M | {joint:,.0f} | {base:,.0f} | {joint / base:.2f} |")


if __name__ == "__main__":
    main()
