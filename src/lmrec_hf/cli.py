"""The `lmrec-hf` command line. Thin: each subcommand parses, calls the library, and prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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


def _prepare(args: argparse.Namespace) -> int:
    from .data import load_data, split_users
    from .data.records import check_output_folder

    check_output_folder(args.output)  # before the work, not after it
    options = {}
    if args.items:
        options.update(items=args.items, user_column=args.user_column, item_column=args.item_column,
                       timestamp_column=args.timestamp_column, text_column=args.text_column,
                       item_key_column=args.item_key_column, k_core_min=args.k_core, missing_text=args.missing_text)
    data = load_data(args.input, args.format, cache_dir=args.cache_dir, **options)
    if args.protocol == "user_split":
        data = split_users(data, seed=args.seed)
    data.save(args.output)
    stats = data.stats()
    print(f"{data.name}: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} interactions "
          f"({data.protocol}) -> {args.output}")
    for key, value in data.info.items():
        print(f"  {key}: {value}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .arguments import load_train_config
    from .runner import train_from_args

    model_args, data_args, objective, training_args = load_train_config(args.config, args.overrides)
    result = train_from_args(model_args, data_args, objective, training_args)
    if "wall_time_s" not in result:  # a non-main DDP process: the main one reports
        return 0
    print_result_table(result)
    model_dir = Path(training_args.output_dir) / "model"
    print(f"\nSaved a self-contained checkpoint to {model_dir}. Load it with:\n"
          f"  from transformers import AutoModel, pipeline\n"
          f"  model = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True)\n"
          f"  extractor = pipeline('feature-extraction', model={str(model_dir)!r}, trust_remote_code=True)")
    print(f"Metrics: {Path(training_args.output_dir) / 'metrics.json'}")
    return 0


def print_result_table(result: dict) -> None:
    data = result["data"]
    steps = f"{result['steps']} steps, " if "steps" in result else ""
    print(f"\n{data['name']}: {data['users']:,} users, {data['items']:,} items, {data['interactions']:,} interactions; "
          f"{steps}wall time {result['wall_time_s']:.0f} s")
    if "lmrec" not in result:
        return
    print(f"{result.get('split', 'test')} split, {result.get('protocol', '')}, "
          f"{result['lmrec']['users']:,} users")
    keys = [k for k in result["lmrec"] if "@" in k]
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name in ("lmrec", "popularity"):
        label = f"lmrec ({result['scorer']})" if name == "lmrec" and "scorer" in result else name
        print(f"| {label} | " + " | ".join(f"{result[name][k]:.4f}" for k in keys) + " |")


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from .checkpoints import check_checkpoint_dir
    from .data import load_data, resolve_data_path
    from .model_card import LMRecModelCardData
    from .runner import evaluate_checkpoint

    check_checkpoint_dir(args.model_dir)
    data = load_data(resolve_data_path(args.data), args.format, cache_dir=args.cache_dir)
    result, negatives = evaluate_checkpoint(
        args.model_dir, data, args.split, ks=args.ks, protocol=args.protocol, mask_history=args.mask_history,
        max_users=args.max_users, seed=args.seed, num_negatives=args.num_negatives,
        negatives=np.load(args.negatives_file) if args.negatives_file else None, max_length=args.max_length,
        max_history_items=args.max_history_items, scorer=args.scorer, data_path=str(args.data))
    print_result_table(result)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))
        print(f"Wrote {args.output}")
        if negatives is not None and not args.negatives_file:
            saved = Path(args.output).with_suffix(".negatives.npy")
            np.save(saved, negatives)
            print(f"Wrote the sampled negatives to {saved}; pass --negatives-file {saved} to rank the same candidates")
    if args.update_card:
        card_data = LMRecModelCardData.from_model_dir(args.model_dir)
        card_data.add_evaluation(result)
        readme = card_data.save(args.model_dir)
        print(f"Added the result to {Path(args.model_dir) / 'lmrec_card.json'}"
              + (f" and re-rendered {readme}" if readme else "; README.md was not written by lmrec-hf, so it is kept"))
    return 0


def _extract(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .checkpoints import check_checkpoint_dir
    from .extraction import FeatureWriter, extract_features, history_rows, item_rows

    jobs = [(kind, source, target) for kind, source, target in
            (("user", args.histories, args.users_output), ("item", args.items, args.items_output)) if source or target]
    if not jobs:
        raise ValueError("nothing to extract: pass --histories with --users-output, and/or --items with "
                         "--items-output.")
    for kind, source, target in jobs:
        if not source or not target:
            raise ValueError(f"{kind} features need both --{'histories' if kind == 'user' else 'items'} and "
                             f"--{kind}s-output.")
    if Path(args.model).exists():
        check_checkpoint_dir(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    if args.device:
        model = model.to(args.device)
    for kind, source, target in jobs:
        writer = FeatureWriter(target, kind)
        rows = (history_rows(source, args.split, args.max_history_items) if kind == "user" else item_rows(source))
        outputs = tuple("z" if o == "z" else kind for o in args.outputs)
        try:
            for chunk in extract_features(model, tokenizer, rows, kind, outputs, batch_size=args.batch_size,
                                          max_length=args.max_length):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        print(f"Wrote {writer.rows:,} {kind} rows ({', '.join(args.outputs)}) to {writer.close()}")
    return 0


FINETUNE_RECIPE = str(Path(__file__).resolve().parents[2] / "training" / "configs" / "finetune-cpu.yaml")


def _finetune(args: argparse.Namespace) -> int:
    """`finetune MODEL --data TARGET [--lora] [--config RECIPE] [--key value ...]`: `train` from the encoder."""
    overrides = ["--init_from", args.model, "--data", args.data, *args.overrides]
    if args.output_dir:
        overrides += ["--output_dir", args.output_dir]
    if args.lora and "--lora_r" not in args.overrides:
        overrides += ["--lora_r", "8"]
    from .transfer import check_encoder_checkpoint

    check_encoder_checkpoint(args.model)
    return _train(argparse.Namespace(config=args.config, overrides=overrides))


def _probe(args: argparse.Namespace) -> int:
    from .data import load_data, resolve_data_path, target_regime
    from .transfer import ProbeArguments, check_encoder_checkpoint, run_probe

    check_encoder_checkpoint(args.model)  # before the data loads
    probe = ProbeArguments(loss=args.loss, num_negatives=args.num_negatives, epochs=args.epochs,
                           patience=args.patience, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           weight_decay=args.weight_decay, seed=args.seed, init=args.init,
                           user_feature=args.user_feature)
    data = target_regime(load_data(resolve_data_path(args.data), args.format, cache_dir=args.cache_dir), args.cold,
                         args.train_share, seed=args.seed)
    result = run_probe(args.model, data, args.output_dir, probe, max_length=args.max_length,
                       max_history_items=args.max_history_items, features_cache=args.features_cache, ks=args.ks,
                       data_path=str(args.data))
    print_result_table(result)
    if args.cold:
        for group in ("warm", "cold"):
            print(f"{group} users ({result[group]['users']:,}): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in result[group].items() if "@" in k))
    print(f"Linear probe: {result['trainable_parameters']:,} trainable parameters, {result['epochs']} epochs "
          f"(best {result['best_epoch']}), {result['epoch_time_s']:.3f} s per epoch, features encoded in "
          f"{result['extraction_time_s']:.0f} s")
    model_dir = Path(args.output_dir) / "model"
    print(f"Saved the encoder with the probe's heads to {model_dir}; metrics: {Path(args.output_dir) / 'metrics.json'}")
    return 0


def share(text: str) -> float:
    """An argparse type: a fraction in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share of the training users in (0, 1], got {text!r}")
    return value


def _card(args: argparse.Namespace) -> int:
    from .checkpoints import check_checkpoint_dir
    from .model_card import LMRecModelCardData, render_model_card, validate_model_card

    check_checkpoint_dir(args.model_dir)
    card_data = LMRecModelCardData.from_model_dir(args.model_dir)
    for path in args.eval_results:
        card_data.add_evaluation(json.loads(Path(path).read_text()))
    from transformers import AutoConfig

    card = render_model_card(card_data, AutoConfig.from_pretrained(args.model_dir, trust_remote_code=True))
    validate_model_card(card)
    if args.print:
        print(card)
        return 0
    readme = card_data.save(args.model_dir)
    print(f"Wrote {readme}" if readme else f"{Path(args.model_dir) / 'README.md'} was not written by lmrec-hf; kept it "
          "and saved only lmrec_card.json. Pass --print to see the card.")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub import HubPushError, push_adapter, push_to_hub

    if (Path(args.model_dir) / "adapter_config.json").exists():
        try:
            url = push_adapter(args.model_dir, args.repo_id, args.base_repo_id, private=args.private,
                               revision=args.revision, token=args.token, commit_message=args.message)
        except HubPushError as error:
            print(f"lmrec-hf push: error: {error}", file=sys.stderr)
            return 1
        print(f"Pushed the adapter {args.model_dir} to {args.repo_id}: {url}\nLoad it on its base with:\n"
              f"  from peft import AutoPeftModel\n"
              f"  model = AutoPeftModel.from_pretrained({args.repo_id!r}, trust_remote_code=True)")
        return 0
    if args.base_repo_id:
        print(f"lmrec-hf push: error: --base-repo-id names the base of a LoRA adapter, but {args.model_dir} is a "
              "full checkpoint (no adapter_config.json). Drop --base-repo-id, or pass OUTPUT_DIR/adapter.",
              file=sys.stderr)
        return 1
    try:
        url = push_to_hub(args.model_dir, args.repo_id, private=args.private, revision=args.revision,
                          token=args.token, data=args.data, eval_results=args.eval_results,
                          with_catalog=not args.no_catalog, commit_message=args.message)
    except HubPushError as error:
        print(f"lmrec-hf push: error: {error}", file=sys.stderr)
        return 1
    print(f"Pushed {args.model_dir} to {args.repo_id}: {url}\nLoad it with:\n"
          f"  AutoModel.from_pretrained({args.repo_id!r}, trust_remote_code=True"
          + (f", revision={args.revision!r}" if args.revision else "") + ")")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmrec-hf", description="LMRec: language modeling for recommendation, on the Hugging Face stack."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    presets = commands.add_parser("presets", help="print the Table 9 presets with their parameter counts")
    presets.add_argument("--vocab-size", type=int, default=50258, help="vocabulary size (default: the paper's 50258)")
    presets.add_argument("--n-positions", type=int, default=2048, help="positions (default: the paper's 2048)")
    presets.add_argument("--n-inner", type=int, default=None, help="override every preset's feed-forward width")
    presets.set_defaults(func=_presets)

    prepare = commands.add_parser("prepare", help="turn raw logs into a prepared data folder")
    prepare.add_argument("input", help="Online Retail data.csv(.gz) or its folder, a UniSRec folder, an agnostic "
                                       "corpus folder, or an interactions table (with --items)")
    prepare.add_argument("--output", "-o", required=True, help="prepared folder to write")
    prepare.add_argument("--format", default="auto",
                         choices=["auto", "unisrec", "online-retail", "interactions", "agnostic"])
    prepare.add_argument("--protocol", default="leave_one_out", choices=["leave_one_out", "user_split"])
    prepare.add_argument("--seed", type=int, default=42, help="seed of the user split")
    prepare.add_argument("--items", help="item-text table for an interactions table")
    prepare.add_argument("--user-column", default="user_id")
    prepare.add_argument("--item-column", default="item_id")
    prepare.add_argument("--timestamp-column", default="timestamp")
    prepare.add_argument("--text-column", default="text")
    prepare.add_argument("--item-key-column", default=None, help="item id column of the item table "
                                                                 "(default: --item-column)")
    prepare.add_argument("--k-core", type=positive_int, default=5, help="drop users and items with fewer "
                                                                        "interactions, repeatedly (1 keeps all)")
    prepare.add_argument("--missing-text", default="drop", choices=["drop", "error"])
    prepare.add_argument("--cache-dir", default=None)
    prepare.set_defaults(func=_prepare)

    train = commands.add_parser("train", help="train LMRec from a YAML config with --key value overrides")
    train.add_argument("config", nargs="?", help="YAML recipe, e.g. training/configs/demo.yaml")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs that override the config")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="full-ranking metrics of a checkpoint, beside popularity")
    evaluate.add_argument("model_dir")
    evaluate.add_argument("--data", required=True, help="data folder or file ('online-retail' finds Online Retail)")
    evaluate.add_argument("--format", default="auto")
    evaluate.add_argument("--split", default="test", choices=["valid", "test"])
    evaluate.add_argument("--max-users", type=positive_int, default=None, help="score a seeded sample of users")
    evaluate.add_argument("--max-length", type=positive_int, default=256, help="tokens per history (capped at the "
                                                                      "model's n_positions)")
    evaluate.add_argument("--max-history-items", type=positive_int, default=50)
    evaluate.add_argument("--protocol", default="full", choices=["full", "sampled"],
                          help="full ranking, or the target among 100 sampled negatives (drawn once from --seed)")
    evaluate.add_argument("--negatives-file", help="a .npy of sampled negatives saved by an earlier run")
    evaluate.add_argument("--num-negatives", type=positive_int, default=100,
                          help="negatives per user for --protocol sampled")
    evaluate.add_argument("--mask-history", action="store_true", help="drop each user's earlier items from its "
                                                                       "ranking (off by default; always recorded)")
    evaluate.add_argument("--ks", type=positive_int, nargs="+", default=[5, 10, 20, 50])
    evaluate.add_argument("--scorer", default=None, choices=["user-item", "item-to-item", "last-item"],
                          help="<W_u z_u, W_i z_i> (the paper's); the cosine of z_i to the user's last item (needs "
                               "no user tower: a pretrained encoder's zero-shot ranking); or <W_u z_i(last), W_i z_i>. "
                               "Default: the checkpoint's own (last-item for a `probe --user-feature last-item` "
                               "checkpoint, else user-item)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--output", help="write the JSON record here")
    evaluate.add_argument("--cache-dir", default=None)
    evaluate.add_argument("--no-card", dest="update_card", action="store_false",
                          help="do not add the result to the model folder's card (lmrec_card.json, README.md)")
    evaluate.set_defaults(func=_evaluate)

    extract = commands.add_parser("extract", help="user and item features of a checkpoint, streamed to parquet or "
                                                  "safetensors")
    extract.add_argument("model", help="checkpoint folder or Hub repo id")
    extract.add_argument("--histories", help="a prepared data folder, or a JSONL/CSV/parquet file with user_id and "
                                             "history (a list of item texts, oldest first, or one formatted text)")
    extract.add_argument("--items", help="a prepared data folder (its catalogue), or a JSONL/CSV/parquet file with "
                                         "item_id and text")
    extract.add_argument("--users-output", help="where user features go: a .parquet (streamed) or .safetensors file")
    extract.add_argument("--items-output", help="where item features go: a .parquet or .safetensors file")
    extract.add_argument("--outputs", nargs="+", default=["z", "projection"], choices=["z", "projection"],
                         help="z (the EOS feature), projection (W_u z for users, W_i z for items), or both")
    extract.add_argument("--split", default="all", choices=["all", "valid", "test"],
                         help="from a prepared folder: whole sequences, or the histories before each valid or test "
                              "target")
    extract.add_argument("--max-history-items", type=positive_int, default=50)
    extract.add_argument("--max-length", type=positive_int, default=None, help="tokens per text (default: the "
                                                                               "model's n_positions, items 128)")
    extract.add_argument("--batch-size", type=positive_int, default=64)
    extract.add_argument("--device", default=None, help="e.g. cuda; default cpu")
    extract.set_defaults(func=_extract)

    finetune = commands.add_parser("finetune", help="finetune a pretrained encoder on a target: every weight, or "
                                                    "LoRA adapters with --lora")
    finetune.add_argument("model", help="the pretrained encoder's checkpoint folder")
    finetune.add_argument("--data", required=True, help="the target's data folder")
    finetune.add_argument("--lora", action="store_true", help="LoRA adapters (rank 8 unless --lora_r) on the frozen "
                                                              "trunk's attention, plus new heads; saves "
                                                              "OUTPUT_DIR/adapter and the merged OUTPUT_DIR/model")
    finetune.add_argument("--config", default=FINETUNE_RECIPE, help="the recipe (default "
                                                                    "training/configs/finetune-cpu.yaml)")
    finetune.add_argument("--output-dir", "-o", default=None)
    finetune.set_defaults(func=_finetune)  # any other --key value pair overrides the recipe, as for `train`

    probe = commands.add_parser("probe", help="LMRec^TL's linear probe: new user and item heads on a frozen encoder's "
                                              "features of a target task")
    probe.add_argument("model", help="the pretrained encoder's checkpoint folder")
    probe.add_argument("--data", required=True, help="the target's data folder")
    probe.add_argument("--output-dir", "-o", required=True, help="where the probed checkpoint (OUTPUT_DIR/model), "
                                                                 "metrics.json and the feature cache go")
    probe.add_argument("--format", default="auto")
    probe.add_argument("--loss", default="softmax", choices=["softmax", "bce"],
                       help="softmax over the whole catalogue, or the paper's BCE against sampled negatives")
    probe.add_argument("--num-negatives", type=positive_int, default=4, help="negatives per positive for --loss bce")
    probe.add_argument("--epochs", type=positive_int, default=30)
    probe.add_argument("--patience", type=positive_int, default=3,
                       help="epochs without a better valid Recall@10 before stopping")
    probe.add_argument("--batch-size", type=positive_int, default=256)
    probe.add_argument("--learning-rate", type=float, default=1e-3)
    probe.add_argument("--weight-decay", type=float, default=0.0)
    probe.add_argument("--init", default="random", choices=["random", "layernorm"],
                       help="the new heads' start: random (the paper's probe), or diag(1 / gamma) of the trunk's "
                            "final LayerNorm, so training starts near the frozen features' cosine (a candidate on "
                            "valid as epoch 0); it wants a far lower --learning-rate, e.g. 3e-6 on Scientific")
    probe.add_argument("--user-feature", default="history", choices=["history", "last-item"],
                       help="z at the history's EOS (the paper's user feature), or z_i of the user's last item, "
                            "encoded as an item; the saved config records which (lmrec_transfer.user_feature)")
    probe.add_argument("--max-length", type=positive_int, default=128, help="tokens per history")
    probe.add_argument("--max-history-items", type=positive_int, default=20)
    probe.add_argument("--train-share", type=share, default=1.0,
                       help="scarce data: train on a seeded share of the training users (all are evaluated)")
    probe.add_argument("--cold", type=float, default=0.0, metavar="FRACTION",
                       help="cold start: hold a seeded (seed 0) fraction in (0, 1) of the items out of all training, "
                            "and score cold and warm users apart")
    probe.add_argument("--features-cache", default=None, help="a .safetensors file for the frozen features, shared "
                                                              "between runs (default: in OUTPUT_DIR)")
    probe.add_argument("--ks", type=positive_int, nargs="+", default=[10, 50])
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--cache-dir", default=None)
    probe.set_defaults(func=_probe)

    card = commands.add_parser("card", help="render (and check) the model card of a checkpoint folder")
    card.add_argument("model_dir")
    card.add_argument("--eval-results", nargs="*", default=[], help="evaluation records to add (JSON)")
    card.add_argument("--print", action="store_true", help="print the card instead of writing README.md")
    card.set_defaults(func=_card)

    push = commands.add_parser("push", help="upload a checkpoint, its card and its item catalog to the Hub")
    push.add_argument("model_dir")
    push.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub (HF_ENDPOINT picks the Hub)")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", default=None, help="branch to commit to (created from main if missing)")
    push.add_argument("--token", default=None, help="default: HF_TOKEN or the token saved by `hf auth login`")
    push.add_argument("--data", default=None, help="build the catalog from this data when the folder has none")
    push.add_argument("--no-catalog", action="store_true", help="push without catalog/ (the Space needs one)")
    push.add_argument("--eval-results", nargs="*", default=[], help="evaluation records to add to the card")
    push.add_argument("--message", default=None, help="commit message")
    push.add_argument("--base-repo-id", default=None, help="for a LoRA adapter folder: the Hub repo of its base, "
                                                           "named in the pushed adapter's config")
    push.set_defaults(func=_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    start = 1 if argv[:1] in (["-v"], ["--verbose"]) else 0
    if argv[start:start + 1] == ["train"] and not {"-h", "--help"} & set(argv):
        # `train [CONFIG] [--key value ...]`: everything after the config is an override, which argparse's
        # positional-then-remainder handling cannot express when the config is left out.
        rest = argv[start + 1:]
        config = rest.pop(0) if rest and not rest[0].startswith("--") else None
        args = argparse.Namespace(command="train", func=_train, config=config, overrides=rest,
                                  verbose=start == 1)
    else:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "finetune":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "finetune":
            args.overrides = extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"lmrec-hf {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
