"""
The loss curves of a training run, from the newest checkpoint's trainer_state.json (the Trainer's log history):
L1 (`lm_loss`), L2 (`rec_loss`) and the total, against the step, and L1 of each LM source (`lm_loss/<source>`)
when the run logged them (a multi-corpus stream). Writes a PNG and prints the logged values, with the tokens seen.

    .venv/bin/python training/plot_losses.py outputs/pretrain-cpu docs/results/pretrain-cpu-losses.png
"""

import argparse
import json
import math
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the run's output_dir (holding checkpoint-N folders)")
    parser.add_argument("output", help="PNG to write")
    args = parser.parse_args()

    checkpoints = sorted(Path(args.run_dir).glob("checkpoint-*/trainer_state.json"),
                         key=lambda p: int(p.parent.name.split("-")[1]))
    if not checkpoints:
        raise SystemExit(f"{args.run_dir} has no checkpoint-N/trainer_state.json; train with save_strategy: steps.")
    history = [h for h in json.loads(checkpoints[-1].read_text())["log_history"] if "loss" in h]
    sources = sorted({key for h in history for key in h if key.startswith("lm_loss/")})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    panels = [("losses", [("loss", "total"), ("lm_loss", "L1 (LM)"), ("rec_loss", "L2 (rec)")])]
    if sources:
        panels.append(("L1 per LM source", [(s, s.split("/", 1)[1]) for s in sources]))
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.5), squeeze=False)
    for axis, (title, curves) in zip(axes[0], panels):
        for key, label in curves:
            values = [h.get(key, math.nan) for h in history]
            if any(not math.isnan(v) for v in values):
                axis.plot(steps, values, label=label)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.set_title(f"{Path(args.run_dir).name}: {title}")
        axis.legend()
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=100)
    columns = ["total", "L1", "L2", *(s.split("/", 1)[1] for s in sources)]
    print(f"| step | tokens seen | {' | '.join(columns)} |\n|{'---|' * (len(columns) + 2)}")
    for h in history:
        values = [h["loss"], h.get("lm_loss", math.nan), h.get("rec_loss", math.nan), *(h.get(s, math.nan)
                                                                                        for s in sources)]
        tokens = h.get("num_input_tokens_seen")
        print(f"| {h['step']} | {'not logged' if tokens is None else f'{tokens:,}'} | "
              + " | ".join(f"{v:.3f}" for v in values) + " |")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
