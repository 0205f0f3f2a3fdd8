"""
How each checkpoint's tokenizer splits one data set's own text: mean tokens per item text and per training history
(before the history window cuts it), and the share of histories longer than the window. The tokenizer is trained
on a sample of the LM stream, so rows whose stream mixes in other corpora split the task's text differently.

    python benchmarks/token_counts.py online-retail outputs/reproduce/or-lmrec-100-task-seed42/model \
        outputs/reproduce/or-lmrec-0-task-seed42/model
"""

import argparse

import numpy as np
from transformers import AutoTokenizer

from lmrec_hf.data import lm_texts, load_data, resolve_data_path
from lmrec_hf.formatting_lmrec import format_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("data", help="a data folder, or online-retail")
    parser.add_argument("model_dirs", nargs="+", help="checkpoints whose tokenizers are compared")
    parser.add_argument("--histories", type=int, default=2000, help="training histories sampled (seed 0)")
    parser.add_argument("--max-length", type=int, default=256, help="the history window, in tokens")
    args = parser.parse_args()
    data = load_data(resolve_data_path(args.data))
    histories = lm_texts(data, "train")["text"]
    pick = np.random.default_rng(0).choice(len(histories), size=min(args.histories, len(histories)), replace=False)
    histories = [histories[i] for i in pick]
    items = [format_item(text) for text in data.item_texts]
    print(f"{len(items)} item texts, {len(histories)} training histories")
    print("| checkpoint | vocabulary | tokens per item | tokens per history | histories over the window |")
    print("|---|---|---|---|---|")
    for model_dir in args.model_dirs:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        item_lengths = [len(ids) for ids in tokenizer(items)["input_ids"]]
        history_lengths = np.array([len(ids) for ids in tokenizer(histories)["input_ids"]])
        print(f"| {model_dir} | {len(tokenizer):,} | {np.mean(item_lengths):.1f} | {history_lengths.mean():.1f} | "
              f"{(history_lengths > args.max_length).mean():.1%} |")


if __name__ == "__main__":
    main()
