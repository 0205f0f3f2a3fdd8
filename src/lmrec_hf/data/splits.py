"""Splits: leave-one-out and the 80/10/10 user split, the training and evaluation pairs, the LM texts, and the
history window (the one place its rule lives)."""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from ..formatting_lmrec import format_history
from .records import SPLITS, RecData

# ---------------------------------------------------------------------------------------------------------------
# Splits


def split_users(data: RecData, seed: int = 42, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> RecData:
    """The paper's in-house protocol: users are split at random into train / valid / test (80/10/10 by default)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}.")
    order = np.random.default_rng(seed).permutation(len(data.users))
    n_train = int(round(fractions[0] * len(order)))
    n_valid = int(round(fractions[1] * len(order)))
    labels = np.empty(len(order), dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train:n_train + n_valid]] = "valid"
    labels[order[n_train + n_valid:]] = "test"
    users = data.users.remove_columns([c for c in ["split"] if c in data.users.column_names])
    users = users.add_column("split", labels.tolist())
    return RecData(name=data.name, users=users, items=data.items, protocol="user_split", ordered=data.ordered,
                   info={**data.info, "split_seed": seed, "split_fractions": list(fractions)})


def subsample_training_users(data: RecData, share: float, seed: int = 0) -> RecData:
    """
    The scarce-data regime: only a seeded `share` (in (0, 1]) of the users who would train still do; every user is
    evaluated as before. A boolean `trains` column marks them, and `split_sequences(data, "train")` (so the training
    pairs and the LM texts) keeps only those rows. Leave-one-out draws from all users, the user split from its
    training users. At least one user always trains.
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError(f"share must be a fraction in (0, 1] of the training users, got {share!r}; 1 trains on "
                         "all of them, 0.01 on one in a hundred.")
    candidates = (np.arange(len(data.users)) if data.protocol == "leave_one_out" else
                  np.flatnonzero(np.array(data.users["split"][:]) == "train"))
    chosen = np.random.default_rng(seed).choice(candidates, size=max(1, round(share * len(candidates))),
                                                replace=False)
    trains = np.zeros(len(data.users), dtype=bool)
    trains[chosen] = True
    users = data.users.remove_columns([c for c in ["trains"] if c in data.users.column_names])
    return RecData(name=data.name, users=users.add_column("trains", trains.tolist()), items=data.items,
                   protocol=data.protocol, ordered=data.ordered,
                   info={**data.info, "train_share": share, "train_share_seed": seed, "training_users": len(chosen)})


def hold_out_cold_items(data: RecData, fraction: float = 0.1, seed: int = 0) -> RecData:
    """
    The cold-start regime: a seeded `fraction` (in (0, 1)) of the items is held out of all training text. Their
    indices go to `info["cold_items"]`, and they are removed from every user's training part (leave-one-out: all but
    the last two items; user split: the training users' sequences), so they are never a training target, never in
    a training history and never in the LM texts or popularity counts; `cold_items(data)` tells the tokenizer and the
    probe to leave them out too. Cold items appear only as they would when new: as valid or test items, targets or
    the valid item in a test history. A test user whose target is cold is a cold user. A leave-one-out user whose
    whole training part is cold has no history left and is dropped (`info["users_left_without_history"]`). Refuses a
    fraction that leaves no test user with a warm target.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"the cold-item fraction must be in (0, 1), got {fraction!r}; 0.1 holds out one item in ten.")
    n_items = len(data.items)
    cold = set(np.random.default_rng(seed).choice(n_items, size=max(1, round(fraction * n_items)),
                                                  replace=False).tolist())
    warm = lambda items: [item for item in items if item not in cold]  # noqa: E731
    if data.protocol == "leave_one_out":
        sequences = [warm(seq[:-2]) + seq[-2:] for seq in data.sequences]
    else:
        labels = data.users["split"][:]
        sequences = [warm(seq) if label == "train" else seq for seq, label in zip(data.sequences, labels)]
    # A leave-one-out user whose whole training part was cold has no history left before its valid item: dropped.
    keep = [row for row, seq in enumerate(sequences) if data.protocol != "leave_one_out" or len(seq) > 2]
    sequences = [sequences[row] for row in keep]
    texts = data.item_texts
    users = data.users.select(keep) if len(keep) < len(data.users) else data.users
    users = users.remove_columns([c for c in ("item_ids", "item_texts") if c in users.column_names])
    users = users.add_column("item_ids", sequences).add_column("item_texts", [[texts[i] for i in s] for s in sequences])
    out = RecData(name=data.name, users=users, items=data.items, protocol=data.protocol, ordered=data.ordered,
                  info={**data.info, "cold_items": sorted(cold), "cold_fraction": fraction, "cold_seed": seed,
                        "users_left_without_history": len(data.users) - len(keep)})
    pairs = eval_pairs(out, "test")
    targets = [sequences[r][p] for r, p in zip(pairs["user_row"][:], pairs["position"][:])]
    warm_users = sum(t not in cold for t in targets)
    if warm_users == 0:
        raise ValueError(f"a cold-item fraction of {fraction} holds out {len(cold)} of {n_items} items and leaves no "
                         f"warm user to compare with: none of the {len(targets)} test users with a history left has a "
                         "warm target. Pass a smaller fraction.")
    out.info.update(cold_test_users=len(targets) - warm_users, warm_test_users=warm_users)
    return out


def target_regime(data: RecData, cold_fraction: float = 0.0, train_share: float = 1.0, seed: int = 0,
                  cold_seed: int = 0) -> RecData:
    """
    A transfer target's regime: a seeded `cold_fraction` of the items held out (`hold_out_cold_items`, with
    `cold_seed`; 0 holds none out), then a seeded `train_share` of the training users kept
    (`subsample_training_users`, with `seed`; 1 keeps them all). The order is fixed, so every row of a comparison
    meets the same cold items and the same users.
    """
    if cold_fraction:
        data = hold_out_cold_items(data, cold_fraction, seed=cold_seed)
    if train_share < 1:
        data = subsample_training_users(data, train_share, seed=seed)
    return data


def cold_items(data: RecData) -> set[int]:
    """The items `hold_out_cold_items` keeps out of training (empty when none are)."""
    return set(data.info.get("cold_items", ()))


def split_sequences(data: RecData, split: str) -> list[tuple[int, list[int]]]:
    """(user row, the part of its sequence visible for `split`) pairs. With a `trains` column
    (`subsample_training_users`), "train" keeps only the users marked to train."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    sequences = data.sequences
    if data.protocol == "leave_one_out":
        cut = {"train": 2, "valid": 1, "test": 0}[split]
        pairs = [(row, seq[: len(seq) - cut]) for row, seq in enumerate(sequences)]
    else:
        labels = data.users["split"][:]
        pairs = [(row, seq) for row, (seq, label) in enumerate(zip(sequences, labels)) if label == split]
    if split == "train" and "trains" in data.users.column_names:
        trains = data.users["trains"][:]
        pairs = [(row, seq) for row, seq in pairs if trains[row]]
    return pairs


def train_pairs(data: RecData, min_history: int = 1, stride: int | None = None) -> Dataset:
    """
    Every (user, position) whose item is a training target: the history is the user's items before `position`.
    Leave-one-out: every prefix of each user's training part. User split: every prefix of each training user.
    With `stride`, only every stride-th position counting back from the last one: for prefix training, where one
    history of up to `stride` items already trains all the positions inside it.
    """
    rows, positions = [], []
    for row, seq in split_sequences(data, "train"):
        cuts = range(min_history, len(seq)) if stride is None else sorted(range(len(seq) - 1, min_history - 1, -stride))
        for position in cuts:
            rows.append(row)
            positions.append(position)
    if not rows:
        raise ValueError(f"{data.name}: no training pairs; every user needs at least {min_history + 1} train items.")
    return Dataset.from_dict({"user_row": rows, "position": positions})


def eval_pairs(data: RecData, split: str) -> Dataset:
    """One (user, position) per evaluated user: leave-one-out targets the valid or test item; user split targets
    the last item of each valid or test user."""
    if split == "train":
        raise ValueError("eval_pairs evaluates 'valid' or 'test'; use train_pairs for training.")
    rows, positions = [], []
    for row, seq in split_sequences(data, split):
        if data.protocol == "leave_one_out":
            seq_len = len(seq)
            rows.append(row)
            positions.append(seq_len - 1)
        elif len(seq) >= 2:
            rows.append(row)
            positions.append(len(seq) - 1)
    return Dataset.from_dict({"user_row": rows, "position": positions})


def lm_texts(data: RecData, split: str = "train") -> Dataset:
    """The LM stream of one source: each user's formatted history as visible for training (a `text` column)."""
    sequences = split_sequences(data, split)
    item_texts = data.item_texts
    texts = [format_history([item_texts[i] for i in seq]) for _, seq in sequences if seq]
    return Dataset.from_dict({"text": texts})


def history_window(position: int, max_items: int | None) -> slice:
    """
    Which items of a user's sequence form the history for the target at `position`: the `max_items` most recent
    ones before it (all of them when `max_items` is None). Training, evaluation and the pipeline checks all cut
    histories with this one rule.

    Example:
    ```python
    >>> [10, 11, 12, 13][history_window(3, 2)]
    [11, 12]
    ```
    """
    if max_items is not None and max_items <= 0:
        raise ValueError(f"history_window: max_items must be a positive number of items or None, got {max_items}.")
    return slice(0 if max_items is None else max(0, position - max_items), position)


def history_items(data: RecData, user_row: int, position: int, max_items: int | None) -> list[int]:
    """The item indices of the history for the target at (`user_row`, `position`), oldest first."""
    return data.sequences[user_row][history_window(position, max_items)]
