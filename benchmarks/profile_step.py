"""
Where one joint training step of a recipe spends its time, on the recipe's own data, tokenizer and batches.

It builds the run as `lmrec-hf train RECIPE` does (`prepare_training`), without training, then times on the same
batches: the whole optimizer step as the trainer takes it, and each part of it alone (forward and backward apart)
by re-running that part on inputs detached from the rest. The parts: the trunk over the user histories, over the
item texts and over the LM rows; the LM head with L1; the heads with L2 (the item bank's catalog included); the
item bank's refresh, spread over the steps it serves; the data collation; gradient clipping and AdamW. A table of
the heaviest torch operators of the whole step follows (torch.profiler). Run it on an idle machine:

    .venv/bin/python benchmarks/profile_step.py [--recipe training/configs/scientific-best-cpu.yaml] [--steps 8]

`--before` profiles the step as it was before issue 24's levers, on this code: L1 through the LM head's full logits
(`step_levers.PlainL1`), GPT-2's unfused `gelu_new`, and the item bank's catalog tokenized at every refresh.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from types import SimpleNamespace

import torch

from lmrec_hf.arguments import load_train_config
from lmrec_hf.encoding import encode_item_texts
from lmrec_hf.runner import prepare_training


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fwd_bwd(forward) -> tuple[float, float]:
    """Seconds of `forward()` (which returns a scalar loss or a tensor) and of its backward."""
    start = time.perf_counter()
    out = forward()
    mid = time.perf_counter()
    loss = out if out.dim() == 0 else out.float().pow(2).mean()
    loss.backward()
    return mid - start, time.perf_counter() - mid


def parts_of_step(trainer, model, inputs: dict) -> dict[str, tuple[float, float]]:
    """(forward s, backward s) of each part of one joint step, each run alone on `inputs`."""
    parts = {}
    trunk = model.transformer
    if "user_input_ids" in inputs:
        users = dict(input_ids=inputs["user_input_ids"], attention_mask=inputs["user_attention_mask"],
                     return_pooler=False)
        items = dict(input_ids=inputs["item_input_ids"], attention_mask=inputs["item_attention_mask"])
        parts["trunk: user histories"] = _fwd_bwd(lambda: trunk(**users).last_hidden_state)
        parts["trunk: item texts"] = _fwd_bwd(lambda: trunk(**items).pooler_output)
        with torch.no_grad():
            hidden = trunk(**users).last_hidden_state
            z_i = trunk(**items).pooler_output
        if inputs.get("user_labels") is not None:
            h = hidden.detach().requires_grad_()
            outputs = SimpleNamespace(user_hidden_states=h, logits=None)
            parts["LM head + L1 (histories)"] = _fwd_bwd(
                lambda: trainer.objective.lm_loss(model, outputs, {"user_labels": inputs["user_labels"]}))
        rows = torch.arange(hidden.shape[0]).unsqueeze(1)
        positions = inputs.get("user_positions")
        z_u = hidden[rows, positions.clamp(min=0)] if positions is not None else hidden[:, -1]
        bank = trainer.item_bank.bank if trainer.item_bank is not None else None
        z_u, z_i = z_u.detach().requires_grad_(), z_i.detach().requires_grad_()

        def rec():
            return trainer.objective.rec_loss(model, model.user_projection(z_u), model.item_projection(z_i),
                                              inputs["rec_labels"], positions, inputs.get("item_log_q"),
                                              inputs.get("item_ids"), bank)

        parts["W_u, W_i + L2 (with the bank)"] = _fwd_bwd(rec)
    if "input_ids" in inputs:
        lm = dict(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], return_pooler=False)
        parts["trunk: LM rows"] = _fwd_bwd(lambda: trunk(**lm).last_hidden_state)
        with torch.no_grad():
            hidden = trunk(**lm).last_hidden_state
        h = hidden.detach().requires_grad_()
        parts["LM head + L1 (LM rows)"] = _fwd_bwd(
            lambda: trainer.objective.lm_loss(model, SimpleNamespace(logits=model.lm_head(h)),
                                              {"labels": inputs["labels"]}))
    model.zero_grad(set_to_none=True)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="training/configs/scientific-best-cpu.yaml")
    parser.add_argument("--steps", type=int, default=8, help="timed steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ops", type=int, default=12, help="rows of the operator table (0: none)")
    parser.add_argument("--before", action="store_true", help="the step before issue 24's levers (see above)")
    args, extra = parser.parse_known_args()

    with tempfile.TemporaryDirectory() as out:
        overrides = {"output_dir": out, "max_steps": 1000, **dict(zip(extra[::2], extra[1::2]))}
        model_args, data_args, objective, train_args = load_train_config(args.recipe, [
            token for key, value in overrides.items() for token in (f"--{key.lstrip('-')}", str(value))])
        setup = prepare_training(model_args, data_args, objective, train_args)
    trainer, model = setup.trainer, setup.model
    if args.before:
        from step_levers import PlainL1
        from transformers.activations import ACT2FN

        trainer.objective = PlainL1(**trainer.objective.to_dict())
        for block in model.transformer.h:
            block.mlp.act = ACT2FN["gelu_new"]
    trainer.create_optimizer_and_scheduler(num_training_steps=train_args.max_steps)
    optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
    model.train()

    batches, collate = [], []
    loader = iter(trainer.get_train_dataloader())
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        batches.append(next(loader))
        collate.append(time.perf_counter() - start)

    bank_s = 0.0
    if trainer.item_bank is not None:
        bank = trainer.item_bank
        bank.bank = None
        bank.on_step_begin(train_args, trainer.state, None, model=model)  # the first refresh tokenizes the catalog
        bank.bank = None
        bank_s = _seconds(lambda: bank.on_step_begin(train_args, trainer.state, None, model=model))
        if args.before:
            model.eval()
            bank_s = _seconds(lambda: encode_item_texts(model, bank.tokenizer, bank.item_texts, projection=None,
                                                        max_length=bank.item_max_length, progress=False))
            model.train()
    refresh = objective.item_bank_refresh_steps or 1

    def full_step(inputs):
        loss = trainer.compute_loss(model, inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    def optimizer_step():
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for inputs in batches[: args.warmup]:
        full_step(inputs)
    step_s, opt_s, part_s = [], [], {}
    for inputs in batches[args.warmup:]:
        step_s.append(_seconds(lambda inputs=inputs: full_step(inputs)))
        trainer.compute_loss(model, inputs).backward()
        opt_s.append(_seconds(optimizer_step))
        for name, (f, b) in parts_of_step(trainer, model, inputs).items():
            part_s.setdefault(name, []).append((f, b))

    timed = batches[args.warmup:]
    tokens = {name: sum(int(b[mask].sum()) for b in timed) / len(timed)
              for name, mask in (("histories", "user_attention_mask"), ("items", "item_attention_mask"),
                                 ("LM rows", "attention_mask")) if mask in timed[0]}
    padded = {name: sum(b[mask].numel() for b in timed) / len(timed)
              for name, mask in (("histories", "user_attention_mask"), ("items", "item_attention_mask"),
                                 ("LM rows", "attention_mask")) if mask in timed[0]}
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    step = mean(step_s)
    when = " (before issue 24)" if args.before else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; recipe {args.recipe} {' '.join(extra)}"
          f"{when}; {args.steps} timed steps after {args.warmup}; preset {model_args.preset}, "
          f"vocab {model.config.vocab_size:,}, {model.num_parameters():,} parameters")
    print("tokens per step, real (padded): " + ", ".join(f"{k} {tokens[k]:,.0f} ({padded[k]:,.0f})" for k in tokens))
    print(f"whole step (compute_loss, backward, clip, AdamW): {step:.3f} s, "
          f"{sum(tokens.values()) / step:,.0f} real tokens/s; collation {mean(collate[args.warmup:]):.3f} s "
          f"per batch (main process); item bank refresh {bank_s:.2f} s every {refresh} steps")
    rows = [(name, mean([f for f, _ in v]), mean([b for _, b in v])) for name, v in part_s.items()]
    rows.append(("item bank refresh (per step)", bank_s / refresh, 0.0))
    rows.append(("data collation", mean(collate[args.warmup:]), 0.0))
    rows.append(("clip + AdamW", mean(opt_s), 0.0))
    total = sum(f + b for _, f, b in rows)
    print("\n| part | forward s | backward s | total s | share of the parts |")
    print("|---|---|---|---|---|")
    for name, f, b in sorted(rows, key=lambda r: -(r[1] + r[2])):
        print(f"| {name} | {f:.3f} | {b:.3f} | {f + b:.3f} | {(f + b) / total:.0%} |")
    print(f"| sum of the parts | | | {total:.3f} | the whole step plus collation and the bank: "
          f"{step + mean(collate[args.warmup:]) + bank_s / refresh:.3f} s |")

    if args.ops:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for inputs in timed[: min(3, len(timed))]:
                full_step(inputs)
        print(f"\nHeaviest operators over {min(3, len(timed))} whole steps (self CPU time):\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops, max_name_column_width=48))


if __name__ == "__main__":
    main()
