"""
What a CPU-recipe step costs on a data set: distinct item texts and item tokens per rec batch (real tokens, and
the padded tensor the model computes), and how many of a test user's items fit in the history window. Prints one
line each. `--item-max-length` and `--group-by-length` show what those options save.

    python benchmarks/batch_stats.py outputs/reproduce/scientific-lmrec-seed42/model ../shared/data/amazon-scientific
    python benchmarks/batch_stats.py MODEL DATA --item-max-length 32 --group-by-length
"""

import argparse

import numpy as np
from transformers import AutoTokenizer

from lmrec_hf.collators import JointBatchSampler, LMRecCollator
from lmrec_hf.data import load_data, split_sequences, train_pairs
from lmrec_hf.losses import RecObjective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("model_dir", help="a checkpoint whose tokenizer is used")
    parser.add_argument("data")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-history-items", type=int, default=20)
    parser.add_argument("--rec-batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--item-max-length", type=int, default=None, help="tokens per item (default: --max-length)")
    parser.add_argument("--group-by-length", action="store_true", help="batches from the length-grouping sampler")
    args = parser.parse_args()
    data = load_data(args.data)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    objective = RecObjective(num_negatives=4, negative_layout="shared", prefix_pairs=True, logq_correction=True,
                             lm_on_rec_histories=True)
    collator = LMRecCollator(tokenizer, data, objective, max_length=args.max_length,
                             max_history_items=args.max_history_items, seed=42, item_max_length=args.item_max_length)
    pairs = train_pairs(data, stride=args.max_history_items)
    user_rows, positions = pairs["user_row"][:], pairs["position"][:]
    lengths = collator.history_lengths(user_rows, positions) if args.group_by_length else None
    sampler = JointBatchSampler(len(pairs), 0, args.rec_batch_size, 0, seed=42, rec_lengths=lengths)
    stats = {"items": [], "item tokens": [], "item padded": [], "history tokens": [], "history padded": []}
    for keys, _ in zip(sampler, range(args.batches)):
        batch = collator([{"kind": "rec", "index": i, "user_row": user_rows[i], "position": positions[i]}
                          for _, i in keys])
        stats["items"].append(batch["item_input_ids"].shape[0])
        stats["item tokens"].append(int(batch["item_attention_mask"].sum()))
        stats["item padded"].append(batch["item_input_ids"].numel())
        stats["history tokens"].append(int(batch["user_attention_mask"].sum()))
        stats["history padded"].append(batch["user_input_ids"].numel())
    mean = {k: np.mean(v) for k, v in stats.items()}
    print(f"per rec batch of {args.rec_batch_size} histories (item_max_length {args.item_max_length}, grouped by "
          f"length: {args.group_by_length}, {args.batches} batches): {mean['items']:.0f} distinct items, "
          f"{mean['item tokens']:,.0f} item tokens ({mean['item padded']:,.0f} padded), "
          f"{mean['history tokens']:,.0f} history tokens ({mean['history padded']:,.0f} padded)")
    visible, total = [], []
    for _, seq in split_sequences(data, "test"):
        history = [data.item_texts[i] for i in seq[:-1][-args.max_history_items:]]
        used, kept = 1, 0
        for text in reversed(history):
            used += len(tokenizer(text).input_ids) + 2
            if used > args.max_length:
                break
            kept += 1
        visible.append(kept)
        total.append(len(history))
    print(f"test histories: {np.mean(total):.1f} items on average, {np.mean(visible):.1f} of them whole within "
          f"{args.max_length} tokens")


if __name__ == "__main__":
    main()
