"""
Downstream transfer of a pretrained LMRec encoder to a target task (LMRec^TL, issue 23): the paper's linear probe on
frozen, cached features, and the checks on the checkpoints a transfer starts from. LoRA and the full finetune train
through `lmrec-hf finetune` (`lmrec_hf.adapters`, `runner.train_from_args`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import check_checkpoint_dir, read_config
from .checks import check_choice
from .data import RecData, cold_items, eval_pairs, history_items, train_pairs
from .encoding import embed_texts, encode_item_texts
from .evaluation import DEFAULT_KS, evaluate_popularity, evaluate_scorer, evaluation_record
from .formatting_lmrec import format_history, item_token_limit

logger = logging.getLogger(__name__)

PROBE_LOSSES = ("softmax", "bce")
# How the probe's new heads start: "random" (nn.Linear's init, the paper's probe) or "layernorm": W_u' = W_i' =
# diag(1 / gamma), gamma the trunk's final LayerNorm weight. That undoes the LayerNorm's per-dimension scale, so every
# item vector has nearly the same norm and training starts near the cosine of the frozen features (issue 22's
# item-to-item scorer, when the user's history is its last item).
PROBE_INITS = ("random", "layernorm")
# The probe's user feature: z at the history's EOS (the paper's z_u), or z_i of the user's last history item, encoded as
# an item (issue 22's item-to-item scorer reads the same vector).
USER_FEATURES = ("history", "last-item")
# Weights every LMRec trunk has, whether saved alone (`LMRecModel`) or under a joint model's `transformer.` prefix.
TRUNK_WEIGHTS = ("wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "ln_f.weight")
FEATURES_FILE = "probe_features.safetensors"


def weight_names(model_dir: Path) -> list[str]:
    """The tensor names of a checkpoint's safetensors weights, read from their headers (nothing is loaded)."""
    from safetensors import safe_open

    names = []
    for path in sorted(model_dir.glob("model*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            names.extend(weights.keys())
    return names


def check_encoder_checkpoint(path: str | Path) -> Path:
    """
    The folder, if it holds an LMRec trunk to transfer (a joint checkpoint or a trunk saved alone); else a ValueError
    that names what the folder holds and what to pass. A LoRA adapter folder, a heads-only file or another model type
    is refused before any weight loads.

    Example:
    ```python
    >>> check_encoder_checkpoint("outputs/pretrain-cpu/model")
    PosixPath('outputs/pretrain-cpu/model')
    ```
    """
    path = Path(path)
    if (path / "adapter_config.json").exists():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        raise ValueError(f"{path} is a LoRA adapter, not an encoder with a trunk. A probe or an adapter starts from "
                         f"the full encoder: pass its base ({base!r}), or the merged export (OUTPUT_DIR/model).")
    path = check_checkpoint_dir(path)
    model_type = read_config(path / "config.json").get("model_type")
    if model_type != "lmrec":
        raise ValueError(f"{path} holds a {model_type!r} model, not an LMRec encoder (model_type 'lmrec'). Pass a "
                         "checkpoint saved by `lmrec-hf train`, e.g. outputs/pretrain-cpu/model.")
    names = weight_names(path)
    if not names:
        raise ValueError(f"{path} has a config.json but no model*.safetensors weights, so there is no trunk to "
                         "transfer. Copy the checkpoint again with its weights.")
    trunk = {name.removeprefix("transformer.") for name in names}
    missing = [name for name in TRUNK_WEIGHTS if name not in trunk]
    if missing:
        raise ValueError(f"{path} has no LMRec trunk: its weights lack {missing} (it holds {sorted(names)[:6]}...). "
                         "A probe or an adapter needs the encoder itself: pass the folder `lmrec-hf train` saved "
                         "(OUTPUT_DIR/model), not heads or an adapter.")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_fingerprint(model_dir: str | Path) -> str:
    """"sha256:" and the hash of a checkpoint's weight files: which encoder a feature cache or a record came from,
    wherever the folder lies."""
    weights = sorted(Path(model_dir).glob("model*.safetensors"))
    if not weights:
        raise ValueError(f"{model_dir} holds no model*.safetensors; expected a folder `save_pretrained` wrote.")
    return "sha256:" + "+".join(file_sha256(w) for w in weights)


def _all_users_train(data: RecData) -> RecData:
    """The data with every training user marked to train: the features cover them all, whatever the share, so one
    cache serves every scarce-data run."""
    if "trains" not in data.users.column_names:
        return data
    return RecData(name=data.name, users=data.users.remove_columns(["trains"]), items=data.items,
                   protocol=data.protocol, ordered=data.ordered, info=data.info)


@dataclass
class ProbeFeatures:
    """Frozen features of a target: z_u for every (user row, position) a probe trains or is scored on, z_i for every
    item (row i = item i)."""

    users: torch.Tensor  # (U, d)
    rows: torch.Tensor  # (U,)
    positions: torch.Tensor  # (U,)
    items: torch.Tensor  # (M, d)
    meta: dict = field(default_factory=dict)
    _index: dict | None = field(default=None, init=False, repr=False, compare=False)

    def lookup(self, rows, positions) -> torch.Tensor:
        """Indices into `users` of these (row, position) pairs (the index is built on the first call)."""
        if self._index is None:
            self._index = {(r, p): i for i, (r, p) in enumerate(zip(self.rows.tolist(), self.positions.tolist()))}
        try:
            return torch.tensor([self._index[(r, p)] for r, p in zip(rows, positions)])
        except KeyError as error:
            raise ValueError(f"no cached feature for (user row, position) {error.args[0]}: the cache was built for "
                             "other data. Delete it, or pass a new --features-cache.") from error

    def last_item_users(self, sequences) -> ProbeFeatures:
        """The same keys with z_u replaced by z_i of each user's last history item (the item before `position`)."""
        last = torch.tensor([sequences[r][p - 1] for r, p in zip(self.rows.tolist(), self.positions.tolist())])
        return ProbeFeatures(users=self.items[last], rows=self.rows, positions=self.positions, items=self.items,
                             meta={**self.meta, "user_feature": "last-item"})

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        tmp = path.with_name(path.name + ".tmp")
        save_file({"users": self.users.contiguous(), "rows": self.rows, "positions": self.positions,
                   "items": self.items.contiguous()}, str(tmp), metadata={"lmrec_probe": json.dumps(self.meta)})
        tmp.replace(path)  # a crash mid-write never leaves a half cache behind

    @classmethod
    def load(cls, path: Path) -> ProbeFeatures:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("lmrec_probe", "{}"))
            return cls(**{key: handle.get_tensor(key) for key in ("users", "rows", "positions", "items")}, meta=meta)


def probe_features(model, tokenizer, data: RecData, model_id: str, max_length: int = 128,
                   max_history_items: int | None = 20, batch_size: int = 64, cache: Path | None = None,
                   user_feature: str = "history") -> ProbeFeatures:
    """
    z for every training prefix (of every training user, whatever `train_share` keeps), every valid and test history,
    and every item, encoded once by the frozen encoder. With `user_feature="last-item"` no history is encoded: each
    prefix's z_u is z_i of its last item. With `cache`, features saved there for the same encoder (`model_id`), data,
    lengths and user feature are read back instead of encoded; other features are never reused.
    """
    meta = {"model": model_id, "data": data.name, **data.stats(), "max_length": max_length,
            "max_history_items": max_history_items, "cold_items": len(cold_items(data)),
            "cold_seed": data.info.get("cold_seed")}
    if user_feature == "last-item":  # history features (the default) keep the meta their caches were saved with
        meta["user_feature"] = user_feature
    if cache is not None and cache.exists():
        features = ProbeFeatures.load(cache)
        if features.meta == meta:
            logger.info("Probe features read from %s", cache)
            return features
        logger.info("Probe features at %s were made for %s; encoding afresh for %s", cache, features.meta, meta)
    full = _all_users_train(data)
    pairs = [train_pairs(full)] + [eval_pairs(full, split) for split in ("valid", "test")]
    keys = sorted({(r, p) for part in pairs for r, p in zip(part["user_row"][:], part["position"][:])})
    texts = data.item_texts
    model.eval()
    max_length = min(max_length, model.config.n_positions)
    items = encode_item_texts(model, tokenizer, texts, None,
                              max_length=item_token_limit(model.config, min(max_length, 128)))
    rows, positions = torch.tensor([r for r, _ in keys]), torch.tensor([p for _, p in keys])
    if user_feature == "last-item":
        features = ProbeFeatures(users=items[:0], rows=rows, positions=positions, items=items,
                                 meta=meta).last_item_users(data.sequences)
    else:
        histories = [format_history([texts[i] for i in history_items(data, r, p, max_history_items)])
                     for r, p in keys]
        users = embed_texts(model, tokenizer, histories, None, batch_size, max_length, "encoding histories")
        features = ProbeFeatures(users=users, rows=rows, positions=positions, items=items, meta=meta)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        features.save(cache)
    return features


class ProbeHeads(nn.Module):
    """The probe's new W_u', W_i' (d x p each, no bias), separate from the pretraining heads; the only trained
    weights."""

    def __init__(self, n_embd: int, projection_dim: int):
        super().__init__()
        self.user_projection = nn.Linear(n_embd, projection_dim, bias=False)
        self.item_projection = nn.Linear(n_embd, projection_dim, bias=False)

    def scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user_projection(users) @ self.item_projection(items).T  # (B, M)

    @torch.no_grad()
    def start_from_layernorm(self, weight: torch.Tensor) -> None:
        """Both heads to diag(1 / weight), `weight` the trunk's final LayerNorm gamma. Needs d x d heads."""
        n_out, n_in = self.item_projection.weight.shape
        if n_out != n_in or weight.shape != (n_in,):
            raise ValueError(f"a probe started from the final LayerNorm needs square heads (projection_dim = n_embd) "
                             f"and a LayerNorm weight of {n_in}, got heads {n_out} x {n_in} and a weight of "
                             f"{tuple(weight.shape)}. Pass --init random.")
        small = (weight.abs() < 1e-3).nonzero().flatten().tolist()
        if small:
            raise ValueError(f"the final LayerNorm's weight is near zero at dimensions {small[:8]}, so its inverse is "
                             "unbounded. Pass --init random.")
        start = torch.diag(1.0 / weight.detach().float())
        self.user_projection.weight.copy_(start)
        self.item_projection.weight.copy_(start)


@dataclass
class ProbeArguments:
    loss: str = "softmax"  # softmax over the whole catalogue, or the paper's BCE against sampled negatives
    num_negatives: int = 4  # for bce: uniform negatives per positive
    epochs: int = 30
    patience: int = 3  # epochs without a better valid Recall@10 before stopping
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    init: str = "random"  # PROBE_INITS; a layernorm start is itself a candidate ("epoch 0"), picked on valid too
    user_feature: str = "history"  # USER_FEATURES

    def __post_init__(self):
        check_choice("loss", self.loss, PROBE_LOSSES, "ProbeArguments", "softmax over the catalogue, or bce "
                     "against sampled negatives (the paper's L2)")
        check_choice("init", self.init, PROBE_INITS, "ProbeArguments", "random heads (the paper's probe), or heads "
                     "started at the inverse of the trunk's final LayerNorm scale")
        check_choice("user_feature", self.user_feature, USER_FEATURES, "ProbeArguments", "z at the history's EOS "
                     "(the paper's), or z_i of the last history item")
        for name in ("num_negatives", "epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProbeArguments: `{name}` must be a positive integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"ProbeArguments: `learning_rate` must be positive, got {self.learning_rate!r}.")


def _probe_loss(heads: ProbeHeads, users, targets, items, args: ProbeArguments, generator, warm,
                cold_mask) -> torch.Tensor:
    """The probe's loss over the warm items only: held-out cold items (`cold_mask`, None when there are none) are
    neither candidates nor negatives."""
    if args.loss == "softmax":
        scores = heads.scores(users, items)
        if cold_mask is not None:
            scores = scores.masked_fill(cold_mask, float("-inf"))
        return F.cross_entropy(scores, targets)
    negatives = warm[torch.randint(len(warm), (len(targets), args.num_negatives), generator=generator)]
    candidates = torch.cat([targets.view(-1, 1), negatives], dim=1)  # (B, 1 + K)
    user_vectors = heads.user_projection(users)  # (B, p)
    item_vectors = heads.item_projection(items[candidates])  # (B, 1 + K, p)
    logits = torch.einsum("bp,bkp->bk", user_vectors, item_vectors)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels)


def train_probe(features: ProbeFeatures, data: RecData, args: ProbeArguments, ks=DEFAULT_KS,
                projection_dim: int | None = None, layernorm_weight: torch.Tensor | None = None
                ) -> tuple[ProbeHeads, dict]:
    """
    Trains new heads on the frozen features of `data`'s training pairs (the users `train_share` keeps), picks the
    epoch by valid Recall@10 (full ranking; a layernorm start counts as epoch 0), and returns the heads with the facts:
    valid and test metrics, epochs, seconds per epoch (training only, evaluation not counted) and trainable
    parameters. `layernorm_weight` (the trunk's final LayerNorm gamma) is needed for `args.init == "layernorm"`.
    """
    if args.init == "layernorm" and layernorm_weight is None:
        raise ValueError("train_probe: init 'layernorm' starts the heads from the trunk's final LayerNorm, but no "
                         "`layernorm_weight` was given. Pass model.transformer.ln_f.weight, or init 'random'.")
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    pairs = train_pairs(data)
    rows, positions = pairs["user_row"][:], pairs["position"][:]
    sequences = data.sequences
    train_users = features.users[features.lookup(rows, positions)]  # (N, d)
    targets = torch.tensor([sequences[r][p] for r, p in zip(rows, positions)])
    items = features.items
    cold = cold_items(data)
    warm = torch.tensor([i for i in range(len(items)) if i not in cold])
    cold_mask = None
    if cold:
        cold_mask = torch.zeros(len(items), dtype=torch.bool)
        cold_mask[sorted(cold)] = True
    heads = ProbeHeads(items.shape[1], projection_dim or items.shape[1])
    if args.init == "layernorm":
        heads.start_from_layernorm(layernorm_weight)
    optimizer = torch.optim.AdamW(heads.parameters(), lr=args.learning_rate, betas=(0.9, 0.98), eps=1e-6,
                                  weight_decay=args.weight_decay)

    def evaluate(split: str, group: str = "all") -> dict:
        with torch.no_grad():
            item_vectors = heads.item_projection(items)
            return evaluate_scorer(lambda r, p: heads.user_projection(features.users[features.lookup(r, p)])
                                   @ item_vectors.T, data, split, ks=ks, targets=group)

    best, best_state, best_epoch, epoch_times, history = -1.0, None, 0, [], []
    if args.init != "random":  # a scorer already: its start is a candidate, so the probe never ends below it on valid
        heads.eval()
        best_valid = evaluate("valid")
        best = best_valid.get("recall@10", best_valid[f"recall@{ks[0]}"])
        best_state = {k: v.clone() for k, v in heads.state_dict().items()}
        history.append({"epoch": 0, "loss": None, "valid_recall@10": best_valid.get("recall@10")})
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        heads.train()
        for batch in torch.randperm(len(targets), generator=generator).split(args.batch_size):
            loss = _probe_loss(heads, train_users[batch], targets[batch], items, args, generator, warm,
                               cold_mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch_times.append(time.perf_counter() - start)
        heads.eval()
        valid = evaluate("valid")
        history.append({"epoch": epoch, "loss": round(loss.item(), 5), "valid_recall@10": valid.get("recall@10")})
        logger.info("probe epoch %d: loss %.4f, valid %s", epoch, loss.item(), valid)
        score = valid.get("recall@10", valid[f"recall@{ks[0]}"])
        if score > best:
            best, best_epoch, best_valid = score, epoch, valid
            best_state = {k: v.clone() for k, v in heads.state_dict().items()}
        elif epoch - best_epoch >= args.patience:
            break
    heads.load_state_dict(best_state)
    heads.eval()
    facts = {"valid": best_valid, "test": evaluate("test"), "epochs": len(epoch_times), "best_epoch": best_epoch,
             "epoch_time_s": round(float(np.mean(epoch_times)), 4), "train_time_s": round(sum(epoch_times), 2),
             "training_pairs": len(targets), "trainable_parameters": sum(p.numel() for p in heads.parameters()),
             "history": history}
    if cold:  # the test users whose target is a held-out cold item, and the others, apart
        facts.update(cold=evaluate("test", "cold"), warm=evaluate("test", "warm"))
    return heads, facts


def run_probe(model_dir: str | Path, data: RecData, output_dir: str | Path, args: ProbeArguments | None = None,
              max_length: int = 128, max_history_items: int | None = 20, features_cache: str | Path | None = None,
              ks=DEFAULT_KS, data_path: str | None = None) -> dict:
    """
    LMRec^TL's linear probe: freezes the encoder at `model_dir`, encodes the target's histories and items once
    (cached), trains new W_u', W_i' on the target's training split, and saves `output_dir/model`: the encoder with the
    new heads in place of the pretraining ones, which loads through `AutoModel`, `AutoModelForCausalLM` and the
    feature-extraction pipeline like any checkpoint. Returns the evaluation record, also written to
    `output_dir/metrics.json`.

    Example:
    ```python
    >>> record = run_probe("outputs/pretrain-cpu/model", load_data("../shared/data/amazon-scientific"), "outputs/probe")
    >>> record["lmrec"]["recall@10"], record["trainable_parameters"]
    ```
    """
    from transformers import AutoTokenizer

    from .model_card import git_commit
    from .modeling_lmrec import LMRecForJointModeling

    start, commit = time.time(), git_commit()
    args = args or ProbeArguments()
    model_dir = check_encoder_checkpoint(model_dir)
    output_dir = Path(output_dir)
    if (output_dir / "model").exists():
        raise ValueError(f"{output_dir / 'model'} already exists; a probe never overwrites a checkpoint. Pass a new "
                         "--output-dir, or move the old one away.")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = LMRecForJointModeling.from_pretrained(model_dir).eval()
    model_id = encoder_fingerprint(model_dir)
    cache = Path(features_cache) if features_cache else output_dir / FEATURES_FILE
    extract_start = time.time()
    features = probe_features(model, tokenizer, data, model_id, max_length, max_history_items, cache=cache,
                              user_feature=args.user_feature)
    extraction_time = time.time() - extract_start
    heads, facts = train_probe(features, data, args, ks=ks, projection_dim=model.config.projection_dim,
                               layernorm_weight=model.transformer.ln_f.weight)

    model.user_projection.load_state_dict(heads.user_projection.state_dict())
    model.item_projection.load_state_dict(heads.item_projection.state_dict())
    model.config.lmrec_transfer = {"method": "linear-probe", "base_model": str(model_dir), "target": data.name,
                                   "loss": args.loss, "user_feature": args.user_feature}
    model.save_pretrained(str(output_dir / "model"))
    tokenizer.save_pretrained(str(output_dir / "model"))

    share = data.info.get("train_share", 1.0)
    record = evaluation_record(
        data, "test", facts.pop("test"), evaluate_popularity(data, "test", ks=ks), data_path=data_path,
        method="linear-probe", base_model=str(model_dir), probe={**vars(args)}, max_length=max_length,
        max_history_items=max_history_items, train_share=share, training_users=data.info.get("training_users"),
        extraction_time_s=round(extraction_time, 1), seed=args.seed, **facts)
    record["git_commit"] = commit
    record["wall_time_s"] = round(time.time() - start, 1)
    (output_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    return record
