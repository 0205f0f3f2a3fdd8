"""Behaviour logs -> `datasets` objects: one row per user with the ordered item ids and texts, plus an item catalog.

| module | what it holds |
|---|---|
| `records` | `RecData`, the prepared-folder format and its cache key, building a `RecData` from sequences |
| `readers` | UniSRec / RecBole atomic files, interactions tables with an item-text table, task-agnostic corpora |
| `online_retail` | finding (or downloading) the raw Online Retail table and UniSRec's "OR" preparation |
| `splits` | leave-one-out and user splits, training / evaluation pairs, LM texts, `history_window` |
| `load` | `load_data`: format detection and the prepared-folder cache |
| `tasks` | several recommendation tasks as one catalogue (multi-task pretraining) |
"""

from .load import FORMATS, detect_format, load_data
from .online_retail import (
    ONLINE_RETAIL_ALIAS,
    download_online_retail,
    find_online_retail,
    prepare_online_retail,
    resolve_data_path,
)
from .readers import load_agnostic, load_interactions, load_unisrec
from .records import SPLIT_PROTOCOLS, SPLITS, RecData, default_cache_dir, k_core, load_prepared
from .splits import (
    cold_items,
    eval_pairs,
    history_items,
    history_window,
    hold_out_cold_items,
    lm_texts,
    split_sequences,
    split_users,
    subsample_training_users,
    target_regime,
    train_pairs,
)
from .tasks import combine_tasks, same_source

__all__ = [
    "FORMATS", "ONLINE_RETAIL_ALIAS", "SPLITS", "SPLIT_PROTOCOLS", "RecData", "combine_tasks", "default_cache_dir",
    "detect_format", "same_source",
    "download_online_retail", "eval_pairs", "find_online_retail", "history_items", "history_window", "k_core",
    "lm_texts", "load_agnostic", "load_data", "load_interactions", "load_prepared", "load_unisrec",
    "prepare_online_retail", "resolve_data_path", "split_sequences", "split_users", "subsample_training_users",
    "hold_out_cold_items", "cold_items", "target_regime",
    "train_pairs",
]
