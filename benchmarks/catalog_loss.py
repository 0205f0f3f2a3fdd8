"""
The rec loss of trained checkpoints on training batches, two ways: the softmax over the batch's own items (no logQ
correction), and the softmax over the whole catalog, every item encoded by the checkpoint's final weights. A model
trained with `item_bank_loss: fresh_over_bank` saw its positive always freshly encoded and most negatives from an
older bank; if its catalog loss here is far above the rec loss it logged in training, it learned to tell fresh rows
from old ones rather than to rank.

    python benchmarks/catalog_loss.py ../shared/data/amazon-scientific \
        outputs/reproduce/scientific-lmrec-items-cut-to-32-tokens-grouped-by-length-1500-steps-learning-rate-1e-3-seed42/model
"""

import argparse
import dataclasses

import torch
from transformers import AutoTokenizer

from lmrec_hf import LMRecForJointModeling
from lmrec_hf.collators import JointDataset, LMRecCollator
from lmrec_hf.data import load_data, resolve_data_path, train_pairs
from lmrec_hf.evaluation import encode_item_texts
from lmrec_hf.losses import LOSS_INPUTS, RecObjective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("data", help="a data folder, or online-retail")
    parser.add_argument("model_dirs", nargs="+", help="checkpoints to score")
    parser.add_argument("--batches", type=int, default=8, help="training batches drawn (seed 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="rec pairs per batch, as the CPU recipes")
    parser.add_argument("--max-length", type=int, default=256, help="the history window, in tokens")
    parser.add_argument("--max-history-items", type=int, default=20, help="items kept per history")
    args = parser.parse_args()
    data = load_data(resolve_data_path(args.data))
    pairs = JointDataset(train_pairs(data, stride=args.max_history_items), None)
    print(f"{len(data.item_texts):,} items; {args.batches} batches of {args.batch_size} training histories, a user "
          "feature at every item boundary (prefix pairs), softmax rec loss")
    # item_bank_refresh_steps only makes the batches carry their catalog rows; the bank is encoded here, once
    batch_only = RecObjective(rec_loss_type="softmax", negative_layout="shared", prefix_pairs=True,
                              item_bank_refresh_steps=1)
    over_catalog = dataclasses.replace(batch_only, item_bank_loss="fresh_over_bank")
    print("| checkpoint | over the batch's items | over the whole catalog |")
    print("|---|---|---|")
    for model_dir in args.model_dirs:
        model = LMRecForJointModeling.from_pretrained(model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        item_max_length = getattr(model.config, "item_max_length", None) or args.max_length
        collator = LMRecCollator(tokenizer, data, batch_only, max_length=args.max_length,
                                 max_history_items=args.max_history_items, seed=42, item_max_length=item_max_length)
        generator = torch.Generator().manual_seed(0)
        batch_losses, catalog_losses = [], []
        with torch.no_grad():
            bank = encode_item_texts(model, tokenizer, data.item_texts, projection=None, max_length=item_max_length,
                                     progress=False)
            for _ in range(args.batches):
                keys = torch.randint(len(pairs), (args.batch_size,), generator=generator).tolist()
                batch = collator([pairs[("rec", k)] for k in keys])
                targets = {name: batch.pop(name) for name in LOSS_INPUTS if name in batch}
                out = model(**batch)
                scored = (model, out.user_embeds, out.item_embeds, targets["rec_labels"], batch["user_positions"])
                batch_losses.append(batch_only.rec_loss(*scored).item())
                # the batch's rows "fresh" and the bank's are the same weights' encodings: one softmax over the catalog
                catalog_losses.append(over_catalog.rec_loss(*scored, item_ids=targets["item_ids"],
                                                            item_bank=bank).item())
        print(f"| {model_dir} | {sum(batch_losses) / len(batch_losses):.3f} | "
              f"{sum(catalog_losses) / len(catalog_losses):.3f} |")


if __name__ == "__main__":
    main()
