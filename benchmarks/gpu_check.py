"""
One short check of the GPU path, printed as tables (and written as JSON with --output):

1. SDPA against eager attention on the 125m preset: the EOS user features in fp32 and under bf16 autocast.
2. The 125m joint step (LM rows + rec users + their items, forward, backward, AdamW) under bf16 autocast:
   seconds per step, tokens per second, peak GPU memory.
3. Real runs through `lmrec-hf train` (LMRecTrainer, bf16=True) on the Online Retail split: the demo recipe at its
   own 7m size and at 125m, each evaluated on every test user with full ranking. --recipe, --presets and --seeds
   pick another recipe (`make demo`'s is training/configs/demo-bank.yaml), other sizes and several seeds.

    python benchmarks/gpu_check.py --data ../shared/data/online-retail/OR --output gpu_check.json
    python benchmarks/gpu_check.py --recipe training/configs/demo-bank.yaml --presets 7m --seeds 42 43 44
    python benchmarks/gpu_check.py --quick --device cpu   # a seconds-long smoke run of the same code paths
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lmrec_hf import LMRecConfig, LMRecForJointModeling

ROOT = Path(__file__).resolve().parent.parent


def _batch(vocab: int, rows: int, length: int, device, seed: int):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (rows, length), generator=generator)
    lengths = torch.randint(length // 4, length + 1, (rows,), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, 1)
    ids[torch.arange(rows), lengths - 1] = 0  # EOS at each row's end
    return ids.to(device), mask.to(device)


def attention_check(preset: str, device, length: int) -> list[dict]:
    config = LMRecConfig.from_preset(preset, vocab_size=50258, n_positions=length)
    torch.manual_seed(0)
    sdpa = LMRecForJointModeling(LMRecConfig.from_preset(preset, vocab_size=50258, n_positions=length,
                                                         attn_implementation="sdpa")).to(device).eval()
    eager = LMRecForJointModeling(LMRecConfig.from_preset(preset, vocab_size=50258, n_positions=length,
                                                          attn_implementation="eager")).to(device).eval()
    eager.load_state_dict(sdpa.state_dict())
    ids, mask = _batch(config.vocab_size, 16, length, device, seed=1)
    rows = []
    for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            a = sdpa.embed(ids, mask, projection="user").float()
            b = eager.embed(ids, mask, projection="user").float()
        rows.append({"check": f"SDPA vs eager, {preset}, {name}", "max_abs_diff": (a - b).abs().max().item(),
                     "max_abs_feature": b.abs().max().item(),
                     "cosine_min": torch.nn.functional.cosine_similarity(a, b, dim=-1).min().item(),
                     "sdpa_used": sdpa.config._attn_implementation})
    return rows


def step_benchmark(preset: str, device, steps: int, rec_users: int, lm_rows: int, length: int) -> dict:
    torch.manual_seed(0)
    config = LMRecConfig.from_preset(preset, vocab_size=50258, n_positions=length)
    model = LMRecForJointModeling(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.98), eps=1e-6, fused=device.type == "cuda")
    items_per_user = 5  # the positive and 4 negatives
    lm_ids, lm_mask = _batch(config.vocab_size, lm_rows, length, device, seed=2)
    user_ids, user_mask = _batch(config.vocab_size, rec_users, length // 2, device, seed=3)
    item_ids, item_mask = _batch(config.vocab_size, rec_users * items_per_user, 32, device, seed=4)
    rec_labels = torch.zeros(rec_users, items_per_user, device=device)
    rec_labels[:, 0] = 1
    inputs = dict(input_ids=lm_ids, attention_mask=lm_mask, labels=lm_ids.masked_fill(lm_mask == 0, -100),
                  user_input_ids=user_ids, user_attention_mask=user_mask, item_input_ids=item_ids,
                  item_attention_mask=item_mask, rec_labels=rec_labels)
    tokens = int(lm_mask.sum() + user_mask.sum() + item_mask.sum())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses = []

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**inputs, rec_loss_weight=3e-3).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"check": f"joint step, {preset}, bf16 autocast", "parameters": model.num_parameters(),
            "lm_rows": lm_rows, "rec_users": rec_users, "items": rec_users * items_per_user,
            "tokens_per_step": tokens, "s_per_step": seconds, "tokens_per_s": tokens / seconds,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "first_loss": losses[0], "last_loss": losses[-1]}


def real_run(data: str, preset: str, overrides: list[str], output_dir: str,
             recipe: str = "training/configs/demo.yaml") -> dict:
    from lmrec_hf.arguments import load_train_config
    from lmrec_hf.runner import train_from_args

    args = ["--data", data, "--preset", preset, "--output_dir", output_dir, "--disable_tqdm", "true", *overrides]
    model_args, data_args, objective, training_args = load_train_config(str(ROOT / recipe), args)
    result = train_from_args(model_args, data_args, objective, training_args)
    return {"check": f"{recipe} on {result['data']['name']}, {preset}, seed {training_args.seed}",
            "recipe": recipe, "overrides": overrides, "steps": result["steps"],
            "train_time_s": result["train_time_s"], "wall_time_s": result["wall_time_s"],
            **{f"lmrec_{k}": v for k, v in result.get("lmrec", {}).items()},
            **{f"popularity_{k}": v for k, v in result.get("popularity", {}).items() if k == "recall@10"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/online-retail/OR"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU smoke run of the script")
    parser.add_argument("--output", default=None)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--recipe", default="training/configs/demo.yaml", help="the real runs' recipe (repo-relative)")
    parser.add_argument("--presets", nargs="+", default=["7m", "125m"],
                        help="the real runs' sizes (125m at learning rate 5e-4, the others at the recipe's)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="one real run per size and seed")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
               "torch": torch.__version__}
    import transformers

    results["transformers"] = transformers.__version__
    preset = "1.7m" if args.quick else "125m"
    results["attention"] = attention_check(preset, device, 64 if args.quick else 512)
    results["step"] = step_benchmark(preset, device, 2 if args.quick else 10, 8 if args.quick else 64,
                                     4 if args.quick else 16, 64 if args.quick else 512)
    print(json.dumps(results, indent=1), flush=True)
    if not args.skip_real:
        gpu = [] if device.type == "cpu" else ["--use_cpu", "false", "--bf16", "true", "--dataloader_num_workers",
                                               "4"]
        quick = ["--max_steps", "3", "--eval_max_users", "200"] if args.quick else []
        results["real"] = []
        for preset in args.presets:
            rate = ["--learning_rate", "5e-4"] if preset == "125m" else []
            preset = "1.7m" if args.quick and preset == "125m" else preset
            for seed in args.seeds:
                results["real"].append(real_run(args.data, preset, gpu + quick + rate + ["--seed", str(seed)],
                                                f"/tmp/gpu-check/demo-{preset}-{seed}", args.recipe))
        print(json.dumps(results["real"], indent=1), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
