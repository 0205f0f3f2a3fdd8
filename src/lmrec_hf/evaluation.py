"""Ranking evaluation: encode the item catalog once, score every user against every item, rank, and report."""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import RecData, eval_pairs, split_sequences
from .formatting_lmrec import format_history, format_item

logger = logging.getLogger(__name__)

DEFAULT_KS = (10, 50)


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """
    0-based rank of each row's target among all columns, with ties counted against the model: every other item
    scoring at least as high as the target ranks above it.

    Example:
    ```python
    >>> ranks_from_scores(torch.tensor([[0.5, 0.9, 0.5]]), torch.tensor([0]))
    tensor([2])
    ```
    """
    target_scores = scores.gather(1, targets.view(-1, 1))  # (B, 1)
    return (scores >= target_scores).sum(dim=1) - 1


def metrics_from_ranks(ranks: torch.Tensor | np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """Recall@k (hit rate, one target per user) and NDCG@k from 0-based ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    if ranks.numel() == 0:
        raise ValueError("metrics_from_ranks: no ranks given; the evaluation split has no users.")
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks)).mean().item()
    return out


def _batched_embed(model, tokenizer, texts: list[str], projection: str, batch_size: int, max_length: int,
                   desc: str) -> torch.Tensor:
    """Embeds texts in batches sorted by length (little padding), returned in the input order."""
    lengths = [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")
    out = torch.empty(len(texts), model.config.projection_dim)
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
            index = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in index], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt").to(device)
            out[torch.as_tensor(index)] = model.embed(enc["input_ids"], enc["attention_mask"],
                                                      projection=projection).float().cpu()
    return out


def encode_items(model, tokenizer, data: RecData, batch_size: int = 256, max_length: int = 128) -> torch.Tensor:
    """W_i z_i for every catalog item, row i = item index i."""
    return _batched_embed(model, tokenizer, [format_item(t) for t in data.item_texts], "item", batch_size,
                          max_length, "encoding items")


def evaluate_model(model, tokenizer, data: RecData, split: str = "test", ks=DEFAULT_KS, batch_size: int = 64,
                   max_length: int = 256, max_history_items: int = 50, max_users: int | None = None,
                   seed: int = 0) -> dict[str, float]:
    """
    Full-ranking leave-one-out metrics of an LMRec model: each user's history (items before the target) is
    scored against every catalog item by <W_u z_u, W_i z_i>; ties count against the model; history items are not
    masked.
    """
    model.eval()
    max_length = min(max_length, model.config.n_positions)  # a checkpoint trained on shorter inputs has no more
    pairs = eval_pairs(data, split)
    rows, positions = pairs["user_row"][:], pairs["position"][:]
    if max_users is not None and max_users < len(rows):
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_users, replace=False))
        rows, positions = [rows[i] for i in pick], [positions[i] for i in pick]
    sequences, texts = data.sequences, data.item_texts
    histories = [format_history([texts[i] for i in sequences[r][max(0, p - max_history_items):p]])
                 for r, p in zip(rows, positions)]
    targets = torch.tensor([sequences[r][p] for r, p in zip(rows, positions)])
    items = encode_items(model, tokenizer, data, max_length=min(max_length, 128))
    users = _batched_embed(model, tokenizer, histories, "user", batch_size, max_length, "encoding users")
    ranks = torch.cat([ranks_from_scores(users[i:i + 1024] @ items.T, targets[i:i + 1024])
                       for i in range(0, len(users), 1024)])
    return {**metrics_from_ranks(ranks, ks), "users": len(rows)}


def evaluate_popularity(data: RecData, split: str = "test", ks=DEFAULT_KS) -> dict[str, float]:
    """The popularity baseline on the same split: items ranked by how often they occur in the training part."""
    counts = np.zeros(len(data.items), dtype=np.float64)
    for _, seq in split_sequences(data, "train"):
        np.add.at(counts, seq, 1)
    pairs = eval_pairs(data, split)
    sequences = data.sequences
    targets = torch.tensor([sequences[r][p] for r, p in zip(pairs["user_row"][:], pairs["position"][:])])
    # Every user sees the same scores, so a target's rank is the number of other items counted at least as often.
    ranked = np.sort(counts)
    ranks = len(counts) - np.searchsorted(ranked, counts[targets.numpy()], side="left") - 1
    return {**metrics_from_ranks(torch.as_tensor(ranks), ks), "users": len(targets)}
