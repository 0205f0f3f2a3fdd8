"""
Combine (issue 23, the paper's task-agnostic user features) on two "services" built from one data set. Our public data
shares no user ids across corpora, so each Scientific user's history is split in two by the item's top-level
category: "lab & health" (additive manufacturing, test & measurement, lab, professional medical, occupational health,
food service, science education, filtration, robotics) and "industrial" (every other category, items without one
included). These are two halves of one catalogue, not two real services.

For each test user whose earlier items fall in both services, the target's own service gives the task-specific
history and the other service the task-agnostic one. Rows, all on those users and the whole catalogue (full ranking):
task-specific only, agnostic only, Combine (mean of the two W_u z, the paper's A/B test), and the concatenated history
in time order (Table 7's "both histories as one text", i.e. the user's whole history).

    python benchmarks/combine_services.py --model outputs/transfer/finetune-share1-seed42/model
"""

from __future__ import annotations

import argparse
import re
import sys

import torch

from lmrec_hf.data import load_data, resolve_data_path
from lmrec_hf.encoding import embed_texts
from lmrec_hf.evaluation import encode_items, eval_targets, metrics_from_ranks, rank_targets
from lmrec_hf.formatting_lmrec import format_history, item_token_limit

LAB_AND_HEALTH = {"Additive", "Test,", "Lab", "Professional", "Occupational", "Food", "Science", "Filtration",
                  "Robotics"}


def service_of(text: str) -> str:
    """'lab & health' or 'industrial', from the first word of the item's category path (its second sentence)."""
    parts = text.split(". ")
    match = re.match(r"Industrial & Scientific (\S+)", parts[1]) if len(parts) > 1 else None
    return "lab & health" if match and match.group(1) in LAB_AND_HEALTH else "industrial"


def main(argv=None) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="../shared/data/amazon-scientific")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-history-items", type=int, default=20)
    args = parser.parse_args(argv)

    data = load_data(resolve_data_path(args.data))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    texts = data.item_texts
    services = [service_of(t) for t in texts]
    rows, positions, targets = eval_targets(data, args.split)
    kept, own, other, whole = [], [], [], []
    for i, (row, position) in enumerate(zip(rows, positions)):
        history = data.sequences[row][:position]
        service = services[targets[i].item()]
        mine = [item for item in history if services[item] == service]
        theirs = [item for item in history if services[item] != service]
        if mine and theirs:
            kept.append(i)
            cut = slice(-args.max_history_items, None)
            own.append(format_history([texts[j] for j in mine[cut]]))
            other.append(format_history([texts[j] for j in theirs[cut]]))
            whole.append(format_history([texts[j] for j in history[cut]]))
    counts = {s: services.count(s) for s in sorted(set(services))}
    print(f"{data.name}: services {counts}; {len(kept):,} of {len(rows):,} {args.split} users have earlier items in "
          "both services")
    max_length = min(args.max_length, model.config.n_positions)
    items = encode_items(model, tokenizer, data, max_length=item_token_limit(model.config, min(max_length, 128)))
    encode = lambda histories: embed_texts(model, tokenizer, histories, "user", 64, max_length)  # noqa: E731
    own_vectors, other_vectors, whole_vectors = encode(own), encode(other), encode(whole)
    chosen = targets[kept]
    table = {"task-specific only": own_vectors, "task-agnostic only": other_vectors,
             "Combine (mean of the two)": (own_vectors + other_vectors) / 2,
             "both as one history (concatenated in time order)": whole_vectors}
    print("| user feature | recall@10 | ndcg@10 | recall@50 | ndcg@50 |\n|---|---|---|---|---|")
    for name, users in table.items():
        with torch.no_grad():
            ranks = rank_targets(users @ items.T, chosen)
        metrics = metrics_from_ranks(ranks, (10, 50))
        print(f"| {name} | " + " | ".join(f"{metrics[k]:.4f}" for k in ("recall@10", "ndcg@10", "recall@50",
                                                                          "ndcg@50")) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
