"""
What a CPU-recipe step costs on a data set: distinct item texts and item tokens per rec batch, and how many of a
test user's items fit in the history window. Prints one line each.

    python benchmarks/batch_stats.py outputs/reproduce/scientific-lmrec-seed42/model ../shared/data/amazon-scientific
"""

import argparse

import numpy as np
from transformers import AutoTokenizer

from lmrec_hf.collators import LMRecCollator
from lmrec_hf.data import load_data, split_sequences, train_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("model_dir", help="a checkpoint whose tokenizer is used")
    parser.add_argument("data")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-history-items", type=int, default=20)
    parser.add_argument("--rec-batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    data = load_data(args.data)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    collator = LMRecCollator(tokenizer, data, max_length=args.max_length, max_history_items=args.max_history_items,
                             num_negatives=4, negatives="shared", seed=42, prefix_pairs=True, logq_correction=True,
                             lm_on_users=True)
    pairs = train_pairs(data, stride=args.max_history_items)
    rng = np.random.default_rng(0)
    items, tokens, user_tokens = [], [], []
    for _ in range(args.batches):
        rows = rng.choice(len(pairs), args.rec_batch_size, replace=False)
        batch = collator([{"kind": "rec", "index": int(i), "user_row": pairs[int(i)]["user_row"],
                           "position": pairs[int(i)]["position"]} for i in rows])
        items.append(batch["item_input_ids"].shape[0])
        tokens.append(int(batch["item_attention_mask"].sum()))
        user_tokens.append(int(batch["user_attention_mask"].sum()))
    print(f"per rec batch of {args.rec_batch_size} histories: {np.mean(items):.0f} distinct items, "
          f"{np.mean(tokens):,.0f} item tokens, {np.mean(user_tokens):,.0f} history tokens")
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
