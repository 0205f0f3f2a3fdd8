"""
The loss curves of a training run, from the newest checkpoint's trainer_state.json (the Trainer's log history):
L1 (`lm_loss`), L2 (`rec_loss`) and the total, against the step. Writes a PNG and prints the logged values.

    .venv/bin/python training/plot_losses.py outputs/pretrain-cpu docs/results/pretrain-cpu-losses.png
"""

import argparse
import json
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for key, label in (("loss", "total"), ("lm_loss", "L1 (LM)"), ("rec_loss", "L2 (rec)")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            axis.plot(steps, values, label=label)
    axis.set_xlabel("step")
    axis.set_ylabel("training loss")
    axis.set_title(Path(args.run_dir).name)
    axis.legend()
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=100)
    print("| step | total | L1 | L2 |\n|---|---|---|---|")
    for h in history:
        print(f"| {h['step']} | {h['loss']:.3f} | {h.get('lm_loss', float('nan')):.3f} | "
              f"{h.get('rec_loss', float('nan')):.3f} |")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
