"""
What each lever does to a recipe's joint training step, measured side by side in one run on the same batches.

Every row starts from the same initial weights, the same item bank and the same batches of the recipe (built as
`lmrec-hf train RECIPE` builds them), and times `--steps` optimizer steps (compute_loss, backward, clip, AdamW)
after `--warmup` untimed ones. "max |Δ loss|" compares the row's per-step losses with the adopted row's: a lever
that computes the same thing stays at float noise; one that changes the model (another vocabulary, bf16) says so.
Rows:

- plain L1: the LM head over every history position, then log-softmax (the code before issue 24);
- fused L1 (adopted): `linear_cross_entropy` over the labelled positions, in chunks, and the fused tanh GELU;
- gelu_new: GPT-2's unfused tanh GELU (the default before issue 24);
- 1 thread: torch.set_num_threads(1) instead of the machine's 2;
- compiled blocks: torch.compile(dynamic=True) on each GPT-2 block;
- compiled model: torch.compile on the whole joint model (what TrainingArguments' `torch_compile` does);
- bf16 autocast (with --bf16): torch.autocast("cpu", bfloat16) around the forward;
- collation in a worker: the step with its batch from a DataLoader worker (num_workers=1), against the main process;
- item bank refresh: the whole catalog tokenized at every refresh (before) or once (adopted), per step served;
- vocabulary 4,096: the recipe with a tokenizer of half the size (another model: its own batches and loss).

    .venv/bin/python benchmarks/step_levers.py [--recipe training/configs/scientific-best-cpu.yaml] [--steps 6]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
from transformers.activations import ACT2FN

from lmrec_hf.arguments import load_train_config
from lmrec_hf.encoding import encode_item_texts
from lmrec_hf.losses import RecObjective
from lmrec_hf.modeling_lmrec import causal_lm_loss
from lmrec_hf.runner import prepare_training


class PlainL1(RecObjective):
    """The objective with L1 through the LM head's full (B, T, V) logits, as before `linear_cross_entropy`."""

    def lm_loss(self, model, outputs, targets):
        terms = []
        if targets.get("labels") is not None:
            terms.append((outputs.logits, targets["labels"]))
        if targets.get("user_labels") is not None:
            terms.append((model.lm_head(outputs.user_hidden_states), targets["user_labels"]))
        return causal_lm_loss(terms) if terms else None


def build(recipe: str, extra: dict, out: str):
    overrides = {"output_dir": out, "max_steps": 1000, **extra}
    tokens = [token for key, value in overrides.items() for token in (f"--{key}", str(value))]
    model_args, data_args, objective, args = load_train_config(recipe, tokens)
    setup = prepare_training(model_args, data_args, objective, args)
    return setup, args, objective


def run_steps(trainer, model, batches, args, warmup: int, autocast: bool = False,
              loader=None) -> tuple[float, list[float]]:
    """Mean seconds per timed step and every step's loss, from `batches` (or from `loader`, its time included)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  eps=args.adam_epsilon, weight_decay=args.weight_decay)
    model.train()
    losses, times = [], []
    source = iter(loader) if loader is not None else iter(batches)
    for i in range(len(batches)):
        start = time.perf_counter()
        inputs = next(source)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = trainer.compute_loss(model, inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return sum(times) / len(times), losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="training/configs/scientific-best-cpu.yaml")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--bf16", action="store_true", help="add the bf16 autocast row (slow without bf16 units)")
    parser.add_argument("--skip", nargs="*", default=[], help="rows to leave out, by their first word")
    args_cli = parser.parse_args()
    n = args_cli.warmup + args_cli.steps

    with tempfile.TemporaryDirectory() as out:
        setup, args, objective = build(args_cli.recipe, {}, out)
    trainer, base = setup.trainer, setup.model
    initial = copy.deepcopy(base.state_dict())
    loader = trainer.get_train_dataloader()
    it = iter(loader)
    batches = [next(it) for _ in range(n)]
    if trainer.item_bank is not None:  # one bank for every row: all start from the same weights
        trainer.item_bank.on_step_begin(args, trainer.state, None, model=base)
    real = sum(int(b[m].sum()) for b in batches[args_cli.warmup:] for m in ("user_attention_mask",
                                                                              "item_attention_mask")) / args_cli.steps
    adopted_objective = trainer.objective

    def fresh():
        model = copy.deepcopy(base)
        model.load_state_dict(initial)
        return model

    rows = []  # (name, s/step, tokens/step, losses or None, note)

    def measure(name, model=None, objective=None, note="", **kw):
        if name.split()[0].lower() in args_cli.skip:
            return
        trainer.objective = objective or adopted_objective
        model = model if model is not None else fresh()
        seconds, losses = run_steps(trainer, model, batches, args, args_cli.warmup, **kw)
        trainer.objective = adopted_objective
        rows.append((name, seconds, real, losses, note))
        print(f"  {name}: {seconds:.3f} s/step", flush=True)

    measure("fused L1 (adopted)")
    measure("plain L1 (before)", objective=PlainL1(**adopted_objective.to_dict()))
    model = fresh()
    for block in model.transformer.h:
        block.mlp.act = ACT2FN["gelu_new"]
    measure("gelu_new (before)", model=model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    measure("1 thread (fused L1)")
    torch.set_num_threads(threads)
    model = fresh()
    for block in model.transformer.h:
        block.compile(dynamic=True)
    measure("compiled blocks (fused L1)", model=model, note="compiles in the warm-up steps")
    measure("compiled model (fused L1)", model=torch.compile(fresh(), dynamic=True),
            note="compiles in the warm-up steps")
    if args_cli.bf16:  # no bf16 units on an AVX2-only CPU: about 20x slower there, so opt-in
        measure("bf16 autocast (fused L1)", autocast=True, note="bf16 numerics")
    with_worker = torch.utils.data.DataLoader(trainer.train_dataset, batch_sampler=loader.batch_sampler,
                                              collate_fn=trainer.data_collator, num_workers=1)
    measure("collation in the main process (fused L1)", loader=loader, note="batch collated inside the step time")
    measure("collation in 1 worker (fused L1)", loader=with_worker, note="batch collated inside the step time")

    bank_rows = []
    if trainer.item_bank is not None:
        bank = trainer.item_bank
        base.eval()
        start = time.perf_counter()
        with torch.no_grad():
            encode_item_texts(base, bank.tokenizer, bank.item_texts, projection=None, max_length=bank.item_max_length,
                              progress=False)
        before = time.perf_counter() - start
        bank.bank = None
        start = time.perf_counter()
        bank.on_step_begin(args, trainer.state, None, model=base)
        once = time.perf_counter() - start  # includes the one-off tokenization
        bank.bank = None
        start = time.perf_counter()
        bank.on_step_begin(args, trainer.state, None, model=base)
        again = time.perf_counter() - start
        bank_rows = [("item bank refresh, tokenized each time (before)", before / bank.refresh_steps),
                     ("item bank refresh, tokenized once (adopted)", again / bank.refresh_steps)]
        print(f"  item bank: {before:.2f} s before, {once:.2f} s first, {again:.2f} s after", flush=True)

    if "vocabulary" not in args_cli.skip:
        with tempfile.TemporaryDirectory() as out:
            small, small_args, _ = build(args_cli.recipe, {"vocab_size": 4096}, out)
        it = iter(small.trainer.get_train_dataloader())
        small_batches = [next(it) for _ in range(n)]
        if small.trainer.item_bank is not None:
            small.trainer.item_bank.on_step_begin(small_args, small.trainer.state, None, model=small.model)
        small_real = sum(int(b[m].sum()) for b in small_batches[args_cli.warmup:]
                         for m in ("user_attention_mask", "item_attention_mask")) / args_cli.steps
        seconds, losses = run_steps(small.trainer, small.model, small_batches, small_args, args_cli.warmup)
        rows.append(("vocabulary 4,096 (fused L1)", seconds, small_real, None,
                     f"another tokenizer: {small_real:,.0f} tokens per step, loss {losses[0]:.3f} at step 1"))

    reference = rows[0]
    print(f"\ntorch {torch.__version__}, {threads} threads; recipe {args_cli.recipe}; {args_cli.steps} timed steps "
          f"after {args_cli.warmup}; {real:,.0f} real history and item tokens per step; loss at step 1 "
          f"{reference[3][0]:.4f}\n")
    print("| lever | s / step | real tokens / s | vs adopted | max abs. loss difference | note |")
    print("|---|---|---|---|---|---|")
    for name, seconds, tokens, losses, note in rows:
        diff = "" if losses is None else f"{max(abs(a - b) for a, b in zip(losses, reference[3])):.1e}"
        print(f"| {name} | {seconds:.3f} | {tokens / seconds:,.0f} | {reference[1] / seconds:.2f}x | {diff} | {note} |")
    for name, seconds in bank_rows:
        every = trainer.item_bank.refresh_steps
        print(f"| {name} | {seconds:.3f} | | | | seconds per training step (one refresh / {every}) |")


if __name__ == "__main__":
    main()
