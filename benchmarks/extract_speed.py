"""Extraction speed of `lmrec-hf extract`'s path (chunks batched by length) against a naive loop that sends one
history at a time through the feature-extraction pipeline, on the same checkpoint and inputs; and the peak memory
of a streamed extraction of many synthetic histories to parquet. Prints markdown tables; run on an idle machine:

    .venv/bin/python benchmarks/extract_speed.py --model outputs/demo/model --data online-retail [--rows 2000]
        [--stream-rows 1000000]
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmrec_hf import LMRecFeatureExtractionPipeline
from lmrec_hf.data import load_data, resolve_data_path
from lmrec_hf.extraction import FeatureWriter, extract_features
from lmrec_hf.formatting_lmrec import format_history


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
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--stream-rows", type=int, default=0, help="synthetic histories streamed to parquet for the "
                                                                    "peak-memory row (0: skip)")
    args = parser.parse_args()

    data = load_data(resolve_data_path(args.data))
    texts = data.item_texts
    rng = np.random.default_rng(0)
    users = [format_history([texts[i] for i in seq[-50:]]) for seq in data.sequences]
    users = [users[i] for i in rng.choice(len(users), size=min(args.rows, len(users)), replace=False)]
    items = [texts[i] for i in rng.choice(len(texts), size=min(args.rows, len(texts)), replace=False)]
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    extractor = LMRecFeatureExtractionPipeline(model=model, tokenizer=tokenizer)  # what the task name routes to

    print(f"{args.model} on {data.name}: {len(users):,} histories, {len(items):,} item texts, batch {args.batch_size}")
    print("| rows | naive loop (pipeline, one at a time) | extract (batched by length) | speed-up |")
    print("|---|---|---|---|")
    for kind, rows in (("user", users), ("item", items)):
        def naive_loop(rows=rows, kind=kind):
            return [extractor([r], projection=kind) for r in rows]

        def batched(rows=rows, kind=kind):
            pairs = [(str(i), r) for i, r in enumerate(rows)]
            return list(extract_features(model, tokenizer, pairs, kind, (kind,), batch_size=args.batch_size,
                                         progress=False))

        naive, _ = _rate(naive_loop, len(rows))
        fast, _ = _rate(batched, len(rows))
        print(f"| {kind}s | {naive:,.0f}/s | {fast:,.0f}/s | {fast / naive:.1f}x |")

    if args.stream_rows:
        def synthetic():
            for i in range(args.stream_rows):
                picks = rng.integers(0, len(texts), size=int(rng.integers(1, 21)))
                yield str(i), format_history([texts[j] for j in picks])

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with tempfile.TemporaryDirectory() as folder:
            writer = FeatureWriter(Path(folder) / "users.parquet", "user")
            start, marks = time.perf_counter(), []
            for chunk in extract_features(model, tokenizer, synthetic(), "user", ("z", "user"),
                                          batch_size=args.batch_size, progress=False):
                writer.write(chunk)
                if writer.rows in (args.stream_rows // 10, args.stream_rows // 2) or len(marks) == 0:
                    marks.append((writer.rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
            writer.close()
            seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nStreamed {args.stream_rows:,} synthetic histories (1-20 items) to parquet in {seconds:.0f} s "
              f"({args.stream_rows / seconds:,.0f}/s). Peak RSS: {before:,.0f} MiB before, "
              + ", ".join(f"{m:,.0f} MiB after {r:,} rows" for r, m in marks) + f", {peak:,.0f} MiB at the end.")


if __name__ == "__main__":
    main()
