"""
Runs rows of the paper's experiment grid (training/grid.py) and appends one JSON record per run under
docs/results/runs/; `report` regenerates docs/results.md's generated part from the records (training/report.py).

    python training/reproduce.py list
    python training/reproduce.py run --data scientific --rows popularity id-transformer lmrec --seeds 42
    python training/reproduce.py run --data or --table table5 --seeds 42 43 44
    python training/reproduce.py report

Every row is scored on the test split twice: full ranking, and the target among 100 negatives drawn once (seed 0)
and saved in docs/results/negatives/. LMRec rows are also scored on the valid split (full ranking), to pick
settings on without the test split. `run --device cuda` trains and scores the same recipe, in fp32, on a GPU where
a task has one; its records name the GPU and are reported in tables of their own, never averaged with the CPU's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grid import DATASETS, ID_TRANSFORMER, ROWS, TABLES, resolve_row  # noqa: E402  (training/ holds scripts)
from report import CPU, RESULTS_MD, RUNS, _slug, load_records, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NEGATIVES = ROOT / "docs" / "results" / "negatives"
KS = (10, 50)


def sampled_negatives(data, key: str) -> np.ndarray:
    """The test split's 100 negatives per user, drawn once (seed 0) and kept in docs/results/negatives/."""
    from lmrec_hf.evaluation import draw_sampled_negatives, eval_targets

    path = NEGATIVES / f"{key}-test-seed0.npz"
    if path.exists():
        return np.load(path)["negatives"].astype(np.int64)
    _, _, targets = eval_targets(data, "test", None, 0)
    negatives = draw_sampled_negatives(len(data.items), targets.tolist(), 100, seed=0)
    NEGATIVES.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, negatives=negatives.astype(np.int32))
    return negatives


def _both_protocols(data, evaluate, negatives) -> dict:
    """The test split's metrics under full ranking and among the saved negatives, keyed by the protocol id of
    their evaluation record ("full-ranking", "sampled-100")."""
    from lmrec_hf.evaluation import evaluation_record

    metrics = {}
    for protocol, given in (("full", None), ("sampled", negatives)):
        scored = evaluate(protocol=protocol, **({"negatives": given} if given is not None else {}))
        record = evaluation_record(data, "test", scored, protocol=protocol, negatives=given)
        metrics[record["protocol_id"]] = record["lmrec"]
    return metrics


def machine_name(device: str) -> str:
    """What a record says it ran on: the CPU grid's `CPU`, or the GPU's name."""
    if device == "cpu":
        return CPU
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but torch sees no CUDA device here; drop --device to run on "
                         "the CPU.")
    return f"1x {torch.cuda.get_device_name(0)}, fp32"


def _data_path(spec: dict) -> str:
    """The data set's path for load_data and `--data`: the "online-retail" alias as it is, else under ROOT."""
    return spec["path"] if spec["path"] == "online-retail" else str(ROOT / spec["path"])


def _train_arguments(data_key: str, options: dict, seed: int, output_dir: Path, max_steps: int | None,
                     device: str):
    """The recipe's arguments with a row's options: (model, data, objective, training) from `load_train_config`.
    Nothing is evaluated inside training; the grid scores the checkpoint itself."""
    from lmrec_hf.arguments import load_train_config

    spec = DATASETS[data_key]
    recipe = str(ROOT / spec["recipe"])
    overrides = {"data": _data_path(spec), "seed": seed, "output_dir": str(output_dir), "write_catalog": False,
                 "disable_tqdm": True, "use_cpu": device == "cpu", "eval_split": ""}
    # "2x" (the budget SelfPretrain spends over its two stages), "4x": a multiple of the recipe's max_steps
    times = options.get("max_steps") if str(options.get("max_steps", "")).endswith("x") else None
    for key, value in options.items():
        if key == "agnostic":
            overrides[key] = [str(ROOT / path) for path in value]
        elif not (key == "max_steps" and times):
            overrides[key] = value
    if max_steps:
        overrides["max_steps"] = max_steps
    arguments = load_train_config(recipe, overrides)
    if times:
        overrides["max_steps"] = int(times[:-1]) * arguments[3].max_steps
        arguments = load_train_config(recipe, overrides)
    return arguments


def run_lmrec(data_key: str, options: dict, seed: int, output_dir: Path, max_steps: int | None, negatives,
              data, device: str = "cpu") -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmrec_hf.evaluation import evaluate_model
    from lmrec_hf.runner import train_from_args

    model_args, data_args, objective, training_args = _train_arguments(data_key, options, seed, output_dir,
                                                                       max_steps, device)
    result = train_from_args(model_args, data_args, objective, training_args)
    model_dir = output_dir / "model"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    limits = {"max_length": training_args.max_length, "max_history_items": training_args.max_history_items, "ks": KS}
    metrics = _both_protocols(data, lambda **kw: evaluate_model(model, tokenizer, data, "test", **limits, **kw),
                              negatives)
    # The valid split, full ranking only, to pick a setting on (Figure 4's learning rates) without the test split.
    # Its time is kept apart so that wall_time_s still means training and the test evaluations.
    start = time.time()
    valid = evaluate_model(model, tokenizer, data, "valid", protocol="full", **limits)
    return {"metrics": metrics, "valid_metrics": {"full-ranking": valid},
            "valid_time_s": round(time.time() - start, 1), "steps": result["steps"],
            "train_time_s": result["train_time_s"], "preset": model_args.preset, "parameters": model.num_parameters(),
            "learning_rate": training_args.learning_rate,
            "recipe": DATASETS[data_key]["recipe"], "overrides": options}


def run_row(data_key: str, row: str, seed: int, max_steps: int | None, work: Path, device: str = "cpu") -> dict:
    """Runs one grid row (an id, or its display name) for one seed and returns its record."""
    from lmrec_hf.data import load_data, resolve_data_path

    row = resolve_row(row)
    kind, options = ROWS[row].kind, ROWS[row].options
    spec = DATASETS[data_key]
    data = load_data(resolve_data_path(_data_path(spec)))
    negatives = sampled_negatives(data, data_key)
    from lmrec_hf.model_card import git_commit

    commit = git_commit()  # the code this run imported; a commit made while it runs is not it
    machine = machine_name(device)
    start = time.time()
    out = work / f"{data_key}-{_slug(row)}-seed{seed}"
    if kind == "popularity":
        from lmrec_hf.evaluation import evaluate_popularity

        record = {"metrics": _both_protocols(data, lambda **kw: evaluate_popularity(data, "test", ks=KS, **kw),
                                             negatives),
                  "parameters": 0}
    elif kind == "id_transformer":
        from transformers import TrainingArguments

        from lmrec_hf.baselines import evaluate_id_transformer, train_id_transformer

        settings = dict(ID_TRANSFORMER, **({"max_steps": max_steps} if max_steps else {}))
        args = TrainingArguments(output_dir=str(out), max_steps=settings["max_steps"],
                                 per_device_train_batch_size=settings["batch_size"],
                                 learning_rate=settings["learning_rate"], lr_scheduler_type="cosine",
                                 warmup_steps=0.02, weight_decay=0.0, logging_steps=100, save_strategy="no",
                                 report_to="none", use_cpu=device == "cpu", disable_tqdm=True, seed=seed,
                                 remove_unused_columns=False)
        model = train_id_transformer(data, args, settings["n_embd"], settings["n_layer"], settings["n_head"],
                                     settings["max_len"], settings["dropout"])
        scored = _both_protocols(data, lambda **kw: evaluate_id_transformer(model, data, "test", ks=KS, **kw),
                                 negatives)
        record = {"metrics": scored,
                  "parameters": sum(p.numel() for p in model.parameters()), "steps": settings["max_steps"],
                  "settings": settings, "implementation": "own: GPT-2 blocks over item ids (RecBole could not "
                                                            "share the environment)"}
    elif kind == "lmrec":
        record = run_lmrec(data_key, options, seed, out, max_steps, negatives, data, device)
    elif kind == "selfpretrain":
        from lmrec_hf.runner import train_from_args

        stage1 = _train_arguments(data_key, {"mode": "lm_only", "lm_batch_size": 32}, seed, out / "lm", max_steps,
                                  device)
        pretrain = train_from_args(*stage1)
        record = run_lmrec(data_key, {"mode": "rec_only", "lm_on_rec_histories": False,
                                      "init_from": str(out / "lm" / "model")}, seed, out / "rec", max_steps,
                           negatives, data, device)
        record["steps"] = {"lm_only": pretrain["steps"], "rec_only": record["steps"]}
    else:
        raise ValueError(f"unknown row kind {kind!r}")
    command = ["python", "training/reproduce.py", "run", "--data", data_key, "--rows", row]
    if device != "cpu":
        command += ["--device", device]
    command += ["--seeds", str(seed)]
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    return {"data": spec["name"], "data_key": data_key, "row": ROWS[row].name, "row_id": row, "kind": kind,
            "seed": seed, "split": "test", "mask_history": False,
            "wall_time_s": round(time.time() - start - record.get("valid_time_s", 0), 1),
            "git_commit": commit,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine, "device": device,
            "command": shlex.join(command), **record}


def save_record(record: dict, runs: Path = RUNS) -> Path:
    runs.mkdir(parents=True, exist_ok=True)
    steps = record.get("steps")
    budget = f"-steps{steps}" if isinstance(steps, int) else ""
    device = record.get("device", "cpu")
    where = "" if device == "cpu" else f"-{device}"  # a GPU record never replaces the CPU's
    path = runs / f"{record['data_key']}-{_slug(record['row'])}-seed{record['seed']}{budget}{where}.json"
    path.write_text(json.dumps(record, indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the rows and tables")
    run = commands.add_parser("run", help="run rows and append their records")
    run.add_argument("--data", required=True, choices=sorted(DATASETS))
    run.add_argument("--rows", nargs="*", default=None, help="row ids, or their display names (default: those of "
                                                             "--table); `list` shows them")
    run.add_argument("--table", default="table4", choices=sorted(TABLES))
    run.add_argument("--seeds", nargs="+", type=int, default=[42])
    run.add_argument("--max-steps", type=int, default=None, help="override the recipe's step budget")
    run.add_argument("--work-dir", default=str(ROOT / "outputs" / "reproduce"))
    run.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                     help="cuda: the same recipe in fp32 on a GPU; its records are reported apart from the CPU's")
    commands.add_parser("report", help="regenerate docs/results.md's generated part from the records")
    args = parser.parse_args(argv)
    if args.command == "list":
        for row_id, row in ROWS.items():
            print(f"{row_id}: {row.name} ({row.kind}{', ' if row.options else ''}"
                  + ", ".join(f"{k}={v}" for k, v in row.options.items()) + ")")
        print()
        for key, (title, rows, *only) in TABLES.items():
            print(f"{key}: {title}: {' '.join(rows)}" + (f" (only {', '.join(only[0])})" if only else ""))
        return 0
    if args.command == "report":
        records = load_records()
        write_report(records)
        import curve  # the time-to-quality section (issue 24), likewise
        import transfer  # the transfer section (issue 23) has records and a renderer of its own

        transfer.write_report()
        curve.write_report()
        print(f"Rewrote the generated parts of {RESULTS_MD} from {len(records)} grid records, "
              f"{len(transfer.load_records())} transfer records and {len(curve.load_records())} curve records")
        return 0
    rows = args.rows or TABLES[args.table][1]
    try:
        rows = [resolve_row(r) for r in rows]
    except KeyError as error:
        raise SystemExit(f"reproduce.py run: {error.args[0]} (`python training/reproduce.py list` shows them)"
                         ) from None
    machine_name(args.device)  # no CUDA device: say so before any data is read
    for seed in args.seeds:
        for row in rows:
            record = run_row(args.data, row, seed, args.max_steps, Path(args.work_dir), args.device)
            path = save_record(record)
            full = record["metrics"]["full-ranking"]
            print(f"{record['data']} | {row} | seed {seed} | full R@10 {full['recall@10']:.4f} N@10 "
                  f"{full['ndcg@10']:.4f} | sampled R@10 {record['metrics']['sampled-100']['recall@10']:.4f} | "
                  f"{record['wall_time_s']:.0f} s -> {path.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

