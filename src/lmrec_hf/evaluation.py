"""Ranking evaluation: encode the item catalog once, score every user against every item, rank, and report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .checks import check_choice
from .configuration_lmrec import catalog_fingerprint
from .data import RecData, cold_items, eval_pairs, history_items, split_sequences
from .encoding import embed_texts, encode_item_texts
from .formatting_lmrec import format_history, item_token_limit

logger = logging.getLogger(__name__)

DEFAULT_KS = (10, 50)
# The same metrics as an `evaluate` module: `evaluate.load(RANKING_METRIC)` (see metrics/lmrec_ranking).
RANKING_METRIC = str(Path(__file__).resolve().parent / "metrics" / "lmrec_ranking")
ALL_KS = (5, 10, 20, 50)
# How the target is ranked (not to be confused with the data's split protocols, `data.SPLIT_PROTOCOLS`).
RANKING_PROTOCOLS = ("full", "sampled")


def check_ranking_protocol(protocol: str) -> None:
    if protocol not in RANKING_PROTOCOLS:
        raise ValueError(f"protocol must be one of {RANKING_PROTOCOLS} (full ranking, or the target among sampled "
                         f"negatives), got {protocol!r}.")


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


def check_ks(ks) -> tuple[int, ...]:
    """The cutoffs of Recall@k and NDCG@k: positive integers (recall@0 is 0 for every model)."""
    ks = list(ks) if isinstance(ks, (list, tuple, set)) else [ks]
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"cutoffs `ks` must be positive integers, got {ks!r}; e.g. ks=(5, 10, 20, 50).")
    return tuple(int(k) for k in ks)


def metrics_from_ranks(ranks: torch.Tensor | np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """Recall@k (hit rate, one target per user), NDCG@k and MRR@k from 0-based ranks."""
    ks = check_ks(ks)
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


def encode_items(model, tokenizer, data: RecData, batch_size: int = 256, max_length: int | None = None) -> torch.Tensor:
    """
    W_i z_i for every catalog item, row i = item index i (plus the item-id embedding E[i] of a hybrid model, on the
    catalogue it was trained on: `uses_item_ids`). Items are cut from the right to `max_length` tokens; `None` means
    the checkpoint's `item_max_length`, else 128.
    """
    embeds = encode_item_texts(model, tokenizer, data.item_texts, "item", batch_size, max_length)
    if uses_item_ids(model, data):  # W_i z_i + E[i]: the hybrid option, on the catalogue it was trained on
        with torch.no_grad():
            embeds = embeds + model.item_id_embedding.weight.detach().float().cpu()
    return embeds


def uses_item_ids(model, data: RecData) -> bool:
    """Whether `model` has item-id embeddings for `data`'s catalogue (same items, same order), so its scores add
    them; on any other catalogue a hybrid model scores items by their text alone."""
    config = model.config
    return (bool(getattr(config, "item_id_embeddings", 0)) and hasattr(model, "item_id_embedding")
            and config.item_id_embeddings == len(data.item_texts)
            and config.item_id_catalog == catalog_fingerprint(data.item_texts))


TARGET_GROUPS = ("all", "warm", "cold")


def eval_targets(data: RecData, split: str, max_users: int | None = None, seed: int = 0, targets: str = "all"):
    """The evaluated users' (rows, positions, targets) of a split: all of them, or a seeded sample of `max_users`.
    `targets="cold"` keeps the users whose target is a cold item (`hold_out_cold_items`), `"warm"` the others."""
    check_choice("targets", targets, TARGET_GROUPS, note="every evaluated user, or those whose target is a warm or "
                 "a cold item")
    if max_users is not None and (isinstance(max_users, bool) or not isinstance(max_users, (int, np.integer))
                                  or max_users < 1):
        raise ValueError(f"max_users must be a positive integer or None (every user), got {max_users!r}.")
    pairs = eval_pairs(data, split)
    rows, positions = pairs["user_row"][:], pairs["position"][:]
    if targets != "all":
        cold = cold_items(data)
        if not cold:
            raise ValueError(f"targets={targets!r} splits users by cold items, but {data.name} holds none out; "
                             "call hold_out_cold_items first.")
        keep = [(r, p) for r, p in zip(rows, positions) if (data.sequences[r][p] in cold) == (targets == "cold")]
        rows, positions = [r for r, _ in keep], [p for _, p in keep]
    if max_users is not None and max_users < len(rows):
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_users, replace=False))
        rows, positions = [rows[i] for i in pick], [positions[i] for i in pick]
    sequences = data.sequences
    targets = torch.tensor([sequences[r][p] for r, p in zip(rows, positions)])
    return rows, positions, targets


def evaluate_model(model, tokenizer, data: RecData, split: str = "test", ks=DEFAULT_KS, batch_size: int = 64,
                   max_length: int = 256, max_history_items: int = 50, max_users: int | None = None,
                   seed: int = 0, protocol: str = "full", mask_history: bool = False,
                   negatives: np.ndarray | None = None, num_negatives: int = 100,
                   targets: str = "all") -> dict[str, float]:
    """
    Leave-one-out metrics of an LMRec model: each user's history (items before the target) is scored against the
    catalog by <W_u z_u, W_i z_i>, ties counted against the model. `protocol="full"` ranks every item;
    `"sampled"` ranks the target among `negatives` (users x `num_negatives`, see `draw_sampled_negatives`; drawn
    from `seed` when not given). `mask_history` removes each user's earlier items from its ranking (off by default).
    `targets="cold"` or `"warm"` scores only the users whose target is (or is not) a held-out cold item.
    """
    return evaluate_model_groups(model, tokenizer, data, split, (targets,), ks, batch_size, max_length,
                                 max_history_items, max_users, seed, protocol, mask_history, negatives,
                                 num_negatives)[targets]


def evaluate_model_groups(model, tokenizer, data: RecData, split: str = "test", groups=("all", "cold", "warm"),
                          ks=DEFAULT_KS, batch_size: int = 64, max_length: int = 256, max_history_items: int = 50,
                          max_users: int | None = None, seed: int = 0, protocol: str = "full",
                          mask_history: bool = False, negatives: np.ndarray | None = None,
                          num_negatives: int = 100) -> dict[str, dict[str, float]]:
    """
    `evaluate_model` for several target groups at once ("all", "cold", "warm"), each scored as that call scores it
    (its own `max_users` sample and sampled negatives), with the catalog and each distinct history encoded once:
    a cold-start run's three records cost one encoding of the split. One group gives `evaluate_model`'s numbers
    exactly; a history shared by several groups is encoded in the batches of their union, so a group's vectors can
    differ from its own call in the last float digits.
    """
    check_ranking_protocol(protocol)
    groups = tuple(groups)
    if not groups or len(set(groups)) != len(groups):
        raise ValueError(f"groups must name each of {TARGET_GROUPS} at most once, got {groups!r}.")
    if negatives is not None and len(groups) > 1:
        raise ValueError(f"one `negatives` array fits one group's users, but {len(groups)} groups were asked for "
                         f"({groups}); evaluate the groups one at a time, or leave negatives=None to draw them.")
    model.eval()
    max_length = min(max_length, model.config.n_positions)  # a checkpoint trained on shorter inputs has no more
    ks = check_ks(ks)
    chosen = {group: eval_targets(data, split, max_users, seed, group) for group in groups}
    keys = list(dict.fromkeys((r, p) for rows, positions, _ in chosen.values() for r, p in zip(rows, positions)))
    texts = data.item_texts
    histories = [format_history([texts[i] for i in history_items(data, r, p, max_history_items)]) for r, p in keys]
    items = encode_items(model, tokenizer, data, max_length=item_token_limit(model.config, min(max_length, 128)))
    users = embed_texts(model, tokenizer, histories, "user", batch_size, max_length, "encoding users")
    index = {key: i for i, key in enumerate(keys)}
    results = {}
    for group, (rows, positions, targets) in chosen.items():
        vectors = users[[index[key] for key in zip(rows, positions)]]
        results[group] = _rank_all(lambda start, stop, vectors=vectors: vectors[start:stop] @ items.T, data, rows,
                                   positions, targets, ks, protocol, mask_history, negatives, seed, num_negatives)
    return results


def evaluate_item_to_item(model, tokenizer, data: RecData, split: str = "test", ks=DEFAULT_KS,
                          projection: str | None = None, max_length: int = 128, **options) -> dict[str, float]:
    """
    A scorer with no user tower: each user's items ranked by their cosine to the user's last history item, in the
    encoder's item features (`projection=None`: z_i; `"item"`: W_i z_i). It needs no training on the data, so it is
    the zero-shot ranking of an encoder pretrained elsewhere beside <W_u z_u, W_i z_i>. The last item itself ranks
    first (cosine 1), ahead of any other target, unless `mask_history` removes the history from the ranking.
    `options` are `evaluate_scorer`'s (protocol, max_users, seed, mask_history, ...).
    """
    items = torch.nn.functional.normalize(_item_features(model, tokenizer, data, projection, max_length), dim=1)
    return _evaluate_by_last_item(items, items, data, split, ks, options)


def evaluate_last_item(model, tokenizer, data: RecData, split: str = "test", ks=DEFAULT_KS, max_length: int = 128,
                       **options) -> dict[str, float]:
    """
    The two towers with the user's last history item as its user feature: <W_u z_i(last), W_i z_i>, z_i encoded as
    items are. It scores the checkpoints `lmrec-hf probe --user-feature last-item` saves, as the probe did.
    `options` are `evaluate_scorer`'s.
    """
    z = _item_features(model, tokenizer, data, None, max_length)
    with torch.no_grad():
        users, items = model.project_users(z), model.project_items(z)
    return _evaluate_by_last_item(users, items, data, split, ks, options)


def _item_features(model, tokenizer, data: RecData, projection: str | None, max_length: int) -> torch.Tensor:
    """Every item's z (or W_i z), cut as items are (the checkpoint's item limit, at most `max_length` and 128)."""
    model.eval()
    limit = item_token_limit(model.config, min(max_length, 128))
    return encode_item_texts(model, tokenizer, data.item_texts, projection, max_length=limit)


def _evaluate_by_last_item(users: torch.Tensor, items: torch.Tensor, data: RecData, split: str, ks,
                           options: dict) -> dict[str, float]:
    """Each user ranked by `users[its last history item] @ items.T` (row i = item i on both sides)."""
    sequences = data.sequences

    def score(rows, positions):
        return users[[sequences[r][p - 1] for r, p in zip(rows, positions)]] @ items.T

    return evaluate_scorer(score, data, split, ks, **options)


def evaluate_scorer(score_users, data: RecData, split: str = "test", ks=DEFAULT_KS, max_users: int | None = None,
                    seed: int = 0, protocol: str = "full", mask_history: bool = False,
                    negatives: np.ndarray | None = None, num_negatives: int = 100, targets: str = "all"
                    ) -> dict[str, float]:
    """
    The same protocol for any model: `score_users(rows, positions)` returns (len(rows), n_items) scores for the
    users whose histories are their items before `position` (at most 1,024 users per call). Used by baselines
    such as the ID transformer.
    """
    check_ranking_protocol(protocol)
    ks = check_ks(ks)
    rows, positions, items = eval_targets(data, split, max_users, seed, targets)
    return _rank_all(lambda start, stop: score_users(rows[start:stop], positions[start:stop]), data, rows, positions,
                     items, ks, protocol, mask_history, negatives, seed, num_negatives)


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


def evaluate_random(data: RecData, split: str = "test", ks=DEFAULT_KS, max_users: int | None = None, seed: int = 0,
                    **options) -> dict[str, float]:
    """A random ranking on the same split and protocol (seeded): the floor a zero-shot model must clear."""
    generator = torch.Generator().manual_seed(seed)
    n_items = len(data.items)
    return evaluate_scorer(lambda rows, _: torch.rand(len(rows), n_items, generator=generator), data, split, ks=ks,
                           max_users=max_users, seed=seed, **options)


def evaluate_popularity(data: RecData, split: str = "test", ks=DEFAULT_KS, protocol: str = "full",
                        mask_history: bool = False, negatives: np.ndarray | None = None, max_users: int | None = None,
                        seed: int = 0, num_negatives: int = 100, targets: str = "all") -> dict[str, float]:
    """The popularity baseline on the same split and protocol: items ranked by how often they occur in the
    training part."""
    check_ranking_protocol(protocol)
    counts = np.zeros(len(data.items), dtype=np.float64)
    for _, seq in split_sequences(data, "train"):
        np.add.at(counts, seq, 1)
    ks = check_ks(ks)
    rows, positions, targets = eval_targets(data, split, max_users, seed, targets)
    if protocol == "full" and not mask_history:
        # Every user sees the same scores: a target's rank is the number of other items counted at least as often.
        ranked = np.sort(counts)
        ranks = len(counts) - np.searchsorted(ranked, counts[targets.numpy()], side="left") - 1
        return {**metrics_from_ranks(torch.as_tensor(ranks), ks), "users": len(targets)}
    scores = torch.as_tensor(counts).unsqueeze(0)
    return _rank_all(lambda start, stop: scores.expand(len(targets[start:stop]), -1), data, rows, positions, targets,
                     ks, protocol, mask_history, negatives, seed, num_negatives)


def protocol_id(protocol: str, negatives: np.ndarray | None = None) -> str:
    """"full-ranking", or "sampled-N" for N negatives per user."""
    check_ranking_protocol(protocol)
    return "full-ranking" if protocol == "full" else f"sampled-{negatives.shape[1]}"


def evaluation_record(data: RecData, split: str, lmrec: dict, popularity: dict | None = None,
                      protocol: str = "full", negatives: np.ndarray | None = None, mask_history: bool = False,
                      data_path: str | None = None, **facts) -> dict:
    """
    The one evaluation record: what `lmrec-hf evaluate --output` and `lmrec-hf train` (metrics.json) write, and what
    the model card and the grid read. `facts` (model, seed, git_commit, wall_time_s, ...) are added as they are.

    Example:
    ```python
    >>> record = evaluation_record(data, "test", evaluate_model(model, tokenizer, data), seed=0)
    >>> record["protocol_id"]
    'full-ranking'
    ```
    """
    ranking = ("full ranking" if protocol == "full" else
               f"target among {negatives.shape[1]} sampled negatives")
    record = {
        "data": {"name": data.name, **({"path": str(data_path)} if data_path else {}), **data.stats()},
        "split": split,
        "protocol": f"{ranking}, ties against the model, history items {'masked' if mask_history else 'not masked'}",
        "protocol_id": protocol_id(protocol, negatives),
        "mask_history": mask_history,
        "lmrec": {k: v for k, v in lmrec.items() if k != "negatives"},
    }
    if popularity is not None:
        record["popularity"] = {k: v for k, v in popularity.items() if k != "negatives"}
    record.update(facts)
    return record
