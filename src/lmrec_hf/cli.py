"""The `lmrec-hf` command line. Thin: each subcommand calls the library and prints."""

import argparse
import sys


def _presets(args: argparse.Namespace) -> int:
    import torch

    from . import LMREC_PRESETS, LMRecConfig, LMRecForJointModeling

    print(f"Parameter counts at vocab_size={args.vocab_size:,}, n_positions={args.n_positions:,} "
          "(lm_head tied to the token embeddings, so counted once)")
    print("| preset | n_layer | n_embd | n_head | n_inner | λ | parameters | of which trunk | of which W_u, W_i |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in LMREC_PRESETS:
        overrides = {"vocab_size": args.vocab_size, "n_positions": args.n_positions}
        if args.n_inner is not None:
            overrides["n_inner"] = args.n_inner
        config = LMRecConfig.from_preset(name, **overrides)
        with torch.device("meta"):
            model = LMRecForJointModeling(config)
        total = sum(p.numel() for p in model.parameters())
        trunk = sum(p.numel() for p in model.transformer.parameters())
        print(f"| {name} | {config.n_layer} | {config.n_embd} | {config.n_head} | {config.n_inner} | "
              f"{config.rec_loss_weight:g} | {total:,} | {trunk:,} | {total - trunk:,} |")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmrec-hf", description="LMRec: language modeling for recommendation, on the Hugging Face stack."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    presets = commands.add_parser("presets", help="print the Table 9 presets with their parameter counts")
    presets.add_argument("--vocab-size", type=int, default=50258, help="vocabulary size (default: the paper's 50258)")
    presets.add_argument("--n-positions", type=int, default=2048, help="positions (default: the paper's 2048)")
    presets.add_argument("--n-inner", type=int, default=None, help="override every preset's feed-forward width")
    presets.set_defaults(func=_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
