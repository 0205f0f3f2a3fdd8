"""Extraction speed of `lmrec-hf extract`'s path (chunks batched by length) against a naive loop that sends one
history at a time through the feature-extraction pipeline, on the same checkpoint and inputs; and the memory of a
streamed extraction of many synthetic histories to parquet (resident memory after each chunk, and the peak).
Prints markdown tables; run on an idle machine:

    .venv/bin/python benchmarks/extract_speed.py --model outputs/demo/model --data online-retail [--rows 2000]
        [--batch-size 16 64] [--stream-rows 1000000] [--rows 0: the memory run alone]
        [--untrained-preset 1.7m: a small untrained model with --model's tokenizer, for a fast memory run]
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmrec_hf import LMRecConfig, LMRecFeatureExtractionPipeline, LMRecForJointModeling
from lmrec_hf.data import load_data, resolve_data_path
from lmrec_hf.extraction import FeatureWriter, extract_features
from lmrec_hf.formatting_lmrec import format_history


def _resident_mib() -> float:
    """Resident memory now (not the peak), from /proc; the peak comes from getrusage."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rate(run, count) -> tuple[float, float]:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return count / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/demo/model")
    parser.add_argument("--data", default="online-retail")
    parser.add_argument("--rows", type=int, default=2000, help="users (and items) timed in each arm")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64], help="extract's batch size(s) to time")
    parser.add_argument("--untrained-preset", default=None,
                        help="time an untrained model of this preset (with --model's tokenizer) instead: a fast model "
                             "for the memory run on many rows, whose memory pattern is the pipeline's, not the size's")
    parser.add_argument("--stream-rows", type=int, default=0, help="synthetic histories streamed to parquet for the "
                                                                    "peak-memory row (0: skip)")
    args = parser.parse_args()

    data = load_data(resolve_data_path(args.data))
    texts = data.item_texts
    rng = np.random.default_rng(0)
    users = [format_history([texts[i] for i in seq[-50:]]) for seq in data.sequences]
    users = [users[i] for i in rng.choice(len(users), size=min(args.rows, len(users)), replace=False)]
    items = [texts[i] for i in rng.choice(len(texts), size=min(args.rows, len(texts)), replace=False)]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if args.untrained_preset:
        torch.manual_seed(0)
        config = LMRecConfig.from_preset(args.untrained_preset, vocab_size=len(tokenizer), n_positions=128,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        model = LMRecForJointModeling(config).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    extractor = LMRecFeatureExtractionPipeline(model=model, tokenizer=tokenizer)  # what the task name routes to

    name = (f"untrained {args.untrained_preset} ({model.num_parameters():,} parameters)" if args.untrained_preset
            else args.model)
    print(f"{name} on {data.name}: {len(users):,} histories, {len(items):,} item texts")
    print("| rows | batch | naive loop (pipeline, one at a time) | extract (batched by length) | speed-up |")
    print("|---|---|---|---|---|")
    for kind, rows in (("user", users), ("item", items)) if args.rows else ():
        def naive_loop(rows=rows, kind=kind):
            return [extractor([r], projection=kind) for r in rows]

        def batched(rows=rows, kind=kind, batch_size=64):
            pairs = [(str(i), r) for i, r in enumerate(rows)]
            return list(extract_features(model, tokenizer, pairs, kind, (kind,), batch_size=batch_size,
                                         progress=False))

        naive, _ = _rate(naive_loop, len(rows))
        for batch_size in args.batch_size:
            fast, _ = _rate(lambda size=batch_size: batched(batch_size=size), len(rows))
            print(f"| {kind}s | {batch_size} | {naive:,.0f}/s | {fast:,.0f}/s | {fast / naive:.1f}x |")

    if args.stream_rows:
        def synthetic():
            for i in range(args.stream_rows):
                picks = rng.integers(0, len(texts), size=int(rng.integers(1, 21)))
                yield str(i), format_history([texts[j] for j in picks])

        before, marks = _resident_mib(), []
        with tempfile.TemporaryDirectory() as folder:
            writer = FeatureWriter(Path(folder) / "users.parquet", "user")
            start = time.perf_counter()
            for chunk in extract_features(model, tokenizer, synthetic(), "user", ("z", "user"),
                                          batch_size=args.batch_size[0], progress=False):
                writer.write(chunk)
                marks.append((writer.rows, _resident_mib(), time.perf_counter() - start))
            writer.close()
            size = (Path(folder) / "users.parquet").stat().st_size / 2**20
            seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nStreamed {args.stream_rows:,} synthetic histories (1-20 items) to parquet ({size:,.0f} MiB) in "
              f"{seconds:.0f} s ({args.stream_rows / seconds:,.0f}/s). Resident memory {before:,.0f} MiB before; "
              f"peak RSS of the whole process {peak:,.0f} MiB.\n")
        print("| rows written | resident MiB | seconds |\n|---|---|---|")
        shown = {round(len(marks) * f) - 1 for f in (0, 0.01, 0.1, 0.25, 0.5, 0.75, 1.0)} | {0}
        for index in sorted(i for i in shown if 0 <= i < len(marks)):
            rows, resident, at = marks[index]
            print(f"| {rows:,} | {resident:,.0f} | {at:,.0f} |")


if __name__ == "__main__":
    main()
