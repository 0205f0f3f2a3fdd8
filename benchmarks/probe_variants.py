"""
What limits the linear probe on Scientific (issue 23): the same trainer (`train_probe`, seed 0) on variants of the
frozen features cached by `training/transfer.py` (or `lmrec-hf probe --features-cache`). Valid and test Recall@10,
full ranking. `eos` and `last-item` are what `lmrec-hf probe` trains (`--user-feature history` / `last-item`); the
centred and standardised variants are not, since the probed checkpoint applies its heads to raw z.

- `eos`: the paper's probe, z at the history's EOS;
- `eos-centred`: z_u and z_i each centred on their mean and scaled to a norm of 4 (a common direction dominates
  raw z: norm about 13 against a per-dimension spread of 0.17);
- `eos-standardised`: z_u and z_i each z-scored per dimension (their own mean and spread), so no direction
  dominates and every dimension starts on the same scale;
- `last-item`: the user feature is z_i of the last history item instead of the history's EOS (`lmrec-hf probe
  --user-feature last-item`).

    python benchmarks/probe_variants.py --features outputs/features/probe-tl-scientific.safetensors
    python benchmarks/probe_variants.py --features ... --variants eos eos-standardised --learning-rate 1e-2 --epochs 30
    python benchmarks/probe_variants.py --features ... --variants eos last-item --init layernorm \
        --model outputs/pretrain-cpu/model

`--init layernorm` starts the heads at diag(1 / gamma) of the encoder's final LayerNorm (`lmrec-hf probe --init
layernorm`, read from --model); its start counts as epoch 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from lmrec_hf.data import load_data, resolve_data_path
from lmrec_hf.transfer import ProbeArguments, ProbeFeatures, train_probe

VARIANTS = ("eos", "eos-centred", "eos-standardised", "last-item")


def variant(features: ProbeFeatures, name: str, sequences) -> ProbeFeatures:
    users, items = features.users, features.items
    if name == "eos-centred":
        users = torch.nn.functional.normalize(users - users.mean(0), dim=1) * 4
        items = torch.nn.functional.normalize(items - items.mean(0), dim=1) * 4
    elif name == "eos-standardised":
        users = (users - users.mean(0)) / users.std(0).clamp_min(1e-6)
        items = (items - items.mean(0)) / items.std(0).clamp_min(1e-6)
    elif name == "last-item":  # what `lmrec-hf probe --user-feature last-item` trains on
        return features.last_item_users(sequences)
    return ProbeFeatures(users=users, rows=features.rows, positions=features.positions, items=items,
                         meta=features.meta)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True)
    parser.add_argument("--data", default="../shared/data/amazon-scientific")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=ProbeArguments.learning_rate)
    parser.add_argument("--patience", type=int, default=ProbeArguments.patience)
    parser.add_argument("--init", default=ProbeArguments.init, choices=["random", "layernorm"])
    parser.add_argument("--model", default=None, help="the encoder the features came from (for --init layernorm)")
    args = parser.parse_args(argv)
    if args.init == "layernorm" and not args.model:
        parser.error("--init layernorm reads the final LayerNorm of the encoder the features came from: pass --model.")
    gamma = None
    if args.model:
        from lmrec_hf.modeling_lmrec import LMRecForJointModeling

        gamma = LMRecForJointModeling.from_pretrained(args.model).transformer.ln_f.weight.detach()
    data = load_data(resolve_data_path(args.data))
    features = ProbeFeatures.load(Path(args.features))
    z = features.users
    print(f"raw z_u: mean norm {z.norm(dim=1).mean():.2f}, mean per-dimension std {z.std(0).mean():.3f}")
    print(f"learning rate {args.learning_rate:g}, at most {args.epochs} epochs, patience {args.patience}, "
          f"heads started {args.init}")
    print("| features | start valid R@10 | valid R@10 | test R@10 | best epoch | seconds |\n|---|---|---|---|---|---|")
    for name in args.variants:
        start = time.time()
        _, facts = train_probe(variant(features, name, data.sequences), data, ProbeArguments(
            epochs=args.epochs, learning_rate=args.learning_rate, patience=args.patience, init=args.init),
            layernorm_weight=gamma)
        first = facts["history"][0]
        start_valid = f"{first['valid_recall@10']:.4f}" if first["epoch"] == 0 else ""  # a random start is no scorer
        print(f"| {name} | {start_valid} | {facts['valid']['recall@10']:.4f} | {facts['test']['recall@10']:.4f} | "
              f"{facts['best_epoch']} | {time.time() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
