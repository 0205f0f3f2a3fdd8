"""Ranking evaluation: encode the item catalog once, score every user against every item, rank, and report."""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import RecData, eval_pairs, split_sequences
from .formatting_lmrec import format_history, format_item, item_token_limit, tokenize_items

logger = logging.getLogger(__name__)

DEFAULT_KS = (10, 50)
ALL_KS = (5, 10, 20, 50)
PROTOCOLS = ("full", "sampled")


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
    """Recall@k (hit rate, one target per user), NDCG@k and MRR@k from 0-based ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    if ranks.numel() == 0:
        raise ValueError("metrics_from_ranks: no ranks given; the evaluation split has no users.")
    out = {}
    zero = torch.zeros_like(ranks)
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2.0), zero).mean().item()
        out[f"mrr@{k}"] = torch.where(hit, 1.0 / (ranks + 1.0), zero).mean().item()
    return out


def draw_sampled_negatives(n_items: int, targets: list[int], num_negatives: int = 100,
                           seed: int = 0) -> np.ndarray:
    """
    The in-house protocol's candidates: for each user, `num_negatives` distinct items drawn uniformly without the
    target, once, from `seed`. Save them beside the results (`evaluate_model` returns them) so a rerun ranks the
    same candidates.
    """
    if num_negatives > n_items - 1:
        raise ValueError(f"Cannot draw {num_negatives} negatives from a catalog of {n_items} items; at most "
                         f"{n_items - 1} exist besides the target.")
    rng = np.random.default_rng(seed)
    out = np.empty((len(targets), num_negatives), dtype=np.int64)
    for row, target in enumerate(targets):
        draws = rng.choice(n_items - 1, size=num_negatives, replace=False)
        out[row] = draws + (draws >= target)
    return out


def rank_targets(scores: torch.Tensor, targets: torch.Tensor, histories: list[list[int]] | None = None,
                 candidates: np.ndarray | None = None) -> torch.Tensor:
    """
    Ranks of the targets in a (users, items) score matrix. `histories` masks each user's earlier items (not its
    target); `candidates` restricts each user to its target plus those sampled items.
    """
    scores = scores.clone()
    if histories is not None:
        for row, (history, target) in enumerate(zip(histories, targets.tolist())):
            seen = [i for i in set(history) if i != target]
            if seen:
                scores[row, seen] = float("-inf")
    if candidates is not None:
        columns = torch.cat([targets.view(-1, 1), torch.as_tensor(candidates)], dim=1)  # target first
        return ranks_from_scores(scores.gather(1, columns), torch.zeros(len(targets), dtype=torch.long))
    return ranks_from_scores(scores, targets)


def embed_texts(model, tokenizer, texts: list[str], projection: str | None, batch_size: int = 64,
                max_length: int = 256, desc: str = "encoding", cut: str = "left",
                progress: bool = True) -> torch.Tensor:
    """
    `model.embed` over many texts, in batches sorted by length (little padding), returned in the input order: W_u z
    (`projection="user"`), W_i z (`"item"`) or z (`None`). Only these vectors are kept, never hidden states.
    `cut="left"` truncates like a history (the end stays), `"right"` like an item (the title stays, EOS kept).
    """
    if cut not in ("left", "right"):
        raise ValueError(f"embed_texts: cut must be 'left' or 'right', got {cut!r}.")
    lengths = [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")
    width = model.config.n_embd if projection is None else model.config.projection_dim
    out = torch.empty(len(texts), width)
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False, disable=not progress):
            index = order[start:start + batch_size]
            chunk = [texts[i] for i in index]
            enc = (tokenize_items(tokenizer, chunk, max_length) if cut == "right" else
                   tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt"))
            enc = enc.to(device)
            out[torch.as_tensor(index)] = model.embed(enc["input_ids"], enc["attention_mask"],
                                                      projection=projection).float().cpu()
    return out


def encode_item_texts(model, tokenizer, item_texts: list[str], projection: str | None = "item", batch_size: int = 256,
                      max_length: int | None = None, progress: bool = True) -> torch.Tensor:
    """
    One vector per item text, row i = text i: W_i z (`projection="item"`) or z (`None`). Each text is formatted as an
    item and cut from the right to `max_length` tokens; `None` means the checkpoint's `item_max_length`, else 128.
    """
    return embed_texts(model, tokenizer, [format_item(t) for t in item_texts], projection, batch_size,
                       max_length or item_token_limit(model.config), "encoding items", cut="right", progress=progress)


def encode_items(model, tokenizer, data: RecData, batch_size: int = 256, max_length: int | None = None) -> torch.Tensor:
    """
    W_i z_i for every catalog item, row i = item index i. Items are cut from the right to `max_length` tokens;
    `None` means the checkpoint's `item_max_length`, else 128.
    """
    return encode_item_texts(model, tokenizer, data.item_texts, "item", batch_size, max_length)


def _eval_targets(data: RecData, split: str, max_users: int | None, seed: int):
    pairs = eval_pairs(data, split)
    rows, positions = pairs["user_row"][:], pairs["position"][:]
    if max_users is not None and max_users < len(rows):
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_users, replace=False))
        rows, positions = [rows[i] for i in pick], [positions[i] for i in pick]
    sequences = data.sequences
    targets = torch.tensor([sequences[r][p] for r, p in zip(rows, positions)])
    return rows, positions, targets


def evaluate_model(model, tokenizer, data: RecData, split: str = "test", ks=DEFAULT_KS, batch_size: int = 64,
                   max_length: int = 256, max_history_items: int = 50, max_users: int | None = None,
                   seed: int = 0, protocol: str = "full", mask_history: bool = False,
                   negatives: np.ndarray | None = None, num_negatives: int = 100) -> dict[str, float]:
    """
    Leave-one-out metrics of an LMRec model: each user's history (items before the target) is scored against the
    catalog by <W_u z_u, W_i z_i>, ties counted against the model. `protocol="full"` ranks every item;
    `"sampled"` ranks the target among `negatives` (users x `num_negatives`, see `draw_sampled_negatives`; drawn
    from `seed` when not given). `mask_history` removes each user's earlier items from its ranking (off by default).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    model.eval()
    max_length = min(max_length, model.config.n_positions)  # a checkpoint trained on shorter inputs has no more
    rows, positions, targets = _eval_targets(data, split, max_users, seed)
    sequences, texts = data.sequences, data.item_texts
    histories = [format_history([texts[i] for i in sequences[r][max(0, p - max_history_items):p]])
                 for r, p in zip(rows, positions)]
    items = encode_items(model, tokenizer, data, max_length=item_token_limit(model.config, min(max_length, 128)))
    users = embed_texts(model, tokenizer, histories, "user", batch_size, max_length, "encoding users")
    return _rank_all(lambda start, stop: users[start:stop] @ items.T, data, rows, positions, targets, ks,
                     protocol, mask_history, negatives, seed, num_negatives)


def evaluate_scorer(score_users, data: RecData, split: str = "test", ks=DEFAULT_KS, max_users: int | None = None,
                    seed: int = 0, protocol: str = "full", mask_history: bool = False,
                    negatives: np.ndarray | None = None, num_negatives: int = 100) -> dict[str, float]:
    """
    The same protocol for any model: `score_users(rows, positions)` returns (len(rows), n_items) scores for the
    users whose histories are their items before `position` (at most 1,024 users per call). Used by baselines
    such as the ID transformer.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    rows, positions, targets = _eval_targets(data, split, max_users, seed)
    return _rank_all(lambda start, stop: score_users(rows[start:stop], positions[start:stop]), data, rows, positions,
                     targets, ks, protocol, mask_history, negatives, seed, num_negatives)


def _rank_all(score_block, data, rows, positions, targets, ks, protocol, mask_history, negatives, seed,
              num_negatives: int = 100) -> dict:
    """Ranks users in blocks of 1,024 (a users x items score block at a time) and reports the metrics."""
    if protocol == "sampled" and negatives is None:
        negatives = draw_sampled_negatives(len(data.items), targets.tolist(), num_negatives, seed=seed)
    if negatives is not None and len(negatives) != len(targets):
        raise ValueError(f"negatives has {len(negatives)} rows for {len(targets)} evaluated users; draw them for "
                         "the same split and users (the same max_users and seed).")
    sequences = data.sequences
    ranks = []
    for start in range(0, len(targets), 1024):
        stop = start + 1024
        histories = ([sequences[r][:p] for r, p in zip(rows[start:stop], positions[start:stop])]
                     if mask_history else None)
        candidates = negatives[start:stop] if protocol == "sampled" else None
        ranks.append(rank_targets(score_block(start, stop), targets[start:stop], histories, candidates))
    result = {**metrics_from_ranks(torch.cat(ranks), ks), "users": len(targets)}
    if protocol == "sampled":
        result["negatives"] = negatives
    return result


def evaluate_popularity(data: RecData, split: str = "test", ks=DEFAULT_KS, protocol: str = "full",
                        mask_history: bool = False, negatives: np.ndarray | None = None, max_users: int | None = None,
                        seed: int = 0, num_negatives: int = 100) -> dict[str, float]:
    """The popularity baseline on the same split and protocol: items ranked by how often they occur in the
    training part."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    counts = np.zeros(len(data.items), dtype=np.float64)
    for _, seq in split_sequences(data, "train"):
        np.add.at(counts, seq, 1)
    rows, positions, targets = _eval_targets(data, split, max_users, seed)
    if protocol == "full" and not mask_history:
        # Every user sees the same scores: a target's rank is the number of other items counted at least as often.
        ranked = np.sort(counts)
        ranks = len(counts) - np.searchsorted(ranked, counts[targets.numpy()], side="left") - 1
        return {**metrics_from_ranks(torch.as_tensor(ranks), ks), "users": len(targets)}
    scores = torch.as_tensor(counts).unsqueeze(0)
    return _rank_all(lambda start, stop: scores.expand(len(targets[start:stop]), -1), data, rows, positions, targets,
                     ks, protocol, mask_history, negatives, seed, num_negatives)
