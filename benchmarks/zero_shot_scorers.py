"""
Zero-shot scorers of a pretrained encoder on a held-out target, beside what needs no model at all: each user of a
split ranked against the whole catalogue (full ranking, ties against the model, history not masked) by
- LMRec's heads, <W_u z_u, W_i z_i> (the paper's scorer);
- item-to-item, the cosine of each item's feature to the user's last item, with z_i or W_i z_i;
- TF-IDF over the item texts' words, cosine to the last item, or to the last three items weighted 1, 0.5, 0.25;
- popularity (counts of the target's own training part) and a seeded random ranking.
Pick a scorer on the valid split, report it on test. Prints one markdown table per split:

    .venv/bin/python benchmarks/zero_shot_scorers.py --model outputs/pretrain-cpu/model \
        --data ../shared/data/amazon-scientific
"""

import argparse
import math
import re
from collections import Counter

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmrec_hf.data import load_data
from lmrec_hf.evaluation import (
    evaluate_item_to_item,
    evaluate_model,
    evaluate_popularity,
    evaluate_random,
    evaluate_scorer,
)


def tfidf_items(texts: list[str]) -> torch.Tensor:
    """Sparse (items, words) TF-IDF rows of unit length, words being lower-cased runs of letters and digits."""
    docs = [Counter(re.findall(r"[a-z0-9]+", text.lower())) for text in texts]
    frequency = Counter(word for doc in docs for word in doc)
    vocab = {word: i for i, word in enumerate(frequency)}
    rows, cols, values = [], [], []
    for r, doc in enumerate(docs):
        weights = {vocab[w]: c * math.log(len(docs) / frequency[w]) for w, c in doc.items()}
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        for c, v in weights.items():
            rows.append(r)
            cols.append(c)
            values.append(v / norm)
    return torch.sparse_coo_tensor([rows, cols], values, (len(texts), len(vocab))).coalesce()


def last_items_scorer(similarity: torch.Tensor, sequences, weights: tuple[float, ...]):
    """Scores = the weighted sum of the item-item similarity rows of the user's last items (newest first)."""
    def score(rows, positions):
        out = torch.zeros(len(rows), similarity.shape[1])
        for j, (r, p) in enumerate(zip(rows, positions)):
            for weight, item in zip(weights, reversed(sequences[r][:p])):
                out[j] += weight * similarity[item]
        return out
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="../shared/data/amazon-scientific")
    parser.add_argument("--splits", nargs="+", default=["valid", "test"])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-history-items", type=int, default=20)
    args = parser.parse_args()

    data = load_data(args.data)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tfidf = tfidf_items(data.item_texts)
    similarity = torch.sparse.mm(tfidf, tfidf.to_dense().T)  # (items, items) cosine
    for split in args.splits:
        rows = {
            "LMRec heads, <W_u z_u, W_i z_i>": evaluate_model(model, tokenizer, data, split, max_length=args.max_length,
                                                              max_history_items=args.max_history_items),
            "item-to-item, z_i cosine to the last item": evaluate_item_to_item(model, tokenizer, data, split,
                                                                               max_length=args.max_length),
            "item-to-item, W_i z_i cosine to the last item": evaluate_item_to_item(
                model, tokenizer, data, split, projection="item", max_length=args.max_length),
            "TF-IDF cosine to the last item": evaluate_scorer(last_items_scorer(similarity, data.sequences, (1.0,)),
                                                              data, split),
            "TF-IDF cosine to the last 3 items (1, 0.5, 0.25)": evaluate_scorer(
                last_items_scorer(similarity, data.sequences, (1.0, 0.5, 0.25)), data, split),
            "popularity": evaluate_popularity(data, split),
            "random (seed 0)": evaluate_random(data, split, seed=0),
        }
        users = next(iter(rows.values()))["users"]
        print(f"\n{data.name} {split}, {users:,} users, full ranking over {len(data.items):,} items, "
              f"model {args.model}\n")
        print("| scorer | Recall@10 | NDCG@10 | Recall@50 | NDCG@50 |\n|---|---|---|---|---|")
        for name, metrics in rows.items():
            print(f"| {name} | " + " | ".join(f"{metrics[k]:.4f}" for k in ("recall@10", "ndcg@10", "recall@50",
                                                                          "ndcg@50")) + " |")


if __name__ == "__main__":
    main()
