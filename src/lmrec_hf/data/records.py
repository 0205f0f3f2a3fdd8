"""`RecData`, the prepared-folder format, and building a `RecData` from item sequences (text and k-core checks
in one place)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from datasets import Dataset, load_from_disk

from ..formatting_lmrec import clean_item_text

logger = logging.getLogger(__name__)

# How a data set is split into train / valid / test (not to be confused with the evaluation's ranking protocols).
SPLIT_PROTOCOLS = ("leave_one_out", "user_split")
SPLITS = ("train", "valid", "test")


@dataclass
class RecData:
    """
    A recommendation data set: `users` has one row per user (`user_id`, `item_ids` oldest first, `item_texts`,
    and `split` for the user-split protocol); `items` is the catalog, row i being item index i (`item_id`, `text`).

    Example:
    ```python
    >>> data = load_unisrec("../shared/data/online-retail/OR")
    >>> data.stats()
    {'users': 16520, 'items': 3469, 'interactions': 519906}
    ```
    """

    name: str
    users: Dataset
    items: Dataset
    protocol: str = "leave_one_out"
    ordered: bool = True
    info: dict = field(default_factory=dict)

    def stats(self) -> dict:
        return {"users": len(self.users), "items": len(self.items),
                "interactions": int(sum(map(len, self.sequences)))}

    @cached_property
    def sequences(self) -> list[list[int]]:
        """Each user's item indices, oldest first, as plain lists (one arrow read)."""
        return self.users["item_ids"][:]

    @cached_property
    def item_texts(self) -> list[str]:
        """Item texts by index, as a plain list."""
        return self.items["text"][:]

    def save(self, path: str | os.PathLike) -> None:
        """Writes a prepared folder (`users/`, `items/`, `meta.json`) that `load_prepared` reads back."""
        path = check_output_folder(path)
        path.mkdir(parents=True, exist_ok=True)
        self.users.save_to_disk(str(path / "users"))
        self.items.save_to_disk(str(path / "items"))
        meta = {"name": self.name, "protocol": self.protocol, "ordered": self.ordered, "info": self.info,
                **self.stats()}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))


def check_output_folder(path: str | os.PathLike) -> Path:
    """Where a prepared folder goes: a new path or a folder, never an existing file (which is left as it is)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"Cannot write the prepared data to {path}: it is a file, and the prepared data is a "
                         "folder. Pass a new folder path (the file is left as it is).")
    return path


def load_prepared(path: str | os.PathLike) -> RecData:
    """Reads a folder written by `RecData.save` (or `lmrec-hf prepare`)."""
    path = Path(path)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(
            f"{path} is not a prepared LMRec data folder (no meta.json). Create one with `lmrec-hf prepare`."
        )
    meta = json.loads((path / "meta.json").read_text())
    return RecData(
        name=meta["name"],
        users=load_from_disk(str(path / "users")),
        items=load_from_disk(str(path / "items")),
        protocol=meta["protocol"],
        ordered=meta["ordered"],
        info=meta.get("info", {}),
    )


# ---------------------------------------------------------------------------------------------------------------
# Building a RecData from sequences, with the text and k-core checks in one place


def build_data(name, sequences: dict, item_keys: list, texts: list[str], missing_text: str = "drop",
           protocol: str = "leave_one_out", ordered: bool = True, min_length: int = 1, source: str = "",
           info: dict | None = None) -> RecData:
    if missing_text not in ("drop", "error"):
        raise ValueError(f"missing_text must be 'drop' or 'error', got {missing_text!r}.")
    texts = [clean_item_text(t) for t in texts]  # every loader's texts end up in the exact training format
    textless = {i for i, t in enumerate(texts) if not t}
    info = dict(info or {})
    if textless:
        if missing_text == "error":
            examples = [item_keys[i] for i in sorted(textless)[:5]]
            raise ValueError(
                f"{name}: {len(textless)} items have no text (e.g. {examples}). Pass missing_text='drop' to drop "
                "them (their interactions are removed and counted), or add their texts."
            )
        dropped = sum(sum(1 for i in seq if i in textless) for seq in sequences.values())
        logger.warning("%s: dropped %d items without text and their %d interactions", name, len(textless), dropped)
        info.update(items_without_text=len(textless), interactions_dropped_for_missing_text=dropped)

    # Dropping items renumbers the catalog to the items with text that some user still has.
    used = sorted({i for seq in sequences.values() for i in seq if i not in textless})
    remap = {old: new for new, old in enumerate(used)} if textless else None
    user_ids, item_ids = [], []
    for user, seq in sequences.items():
        if remap is not None:
            seq = [remap[i] for i in seq if i in remap]
        if len(seq) >= min_length:
            user_ids.append(str(user))
            item_ids.append(seq)
    if remap is not None:
        item_keys = [item_keys[i] for i in used]
        texts = [texts[i] for i in used]
    if not user_ids:
        raise ValueError(
            f"{name}: no user is left after filtering (source {source}); every user needs at least {min_length} "
            "items with text. Check the column mapping, or lower k_core."
        )
    users = Dataset.from_dict({
        "user_id": user_ids,
        "item_ids": item_ids,
        "item_texts": [[texts[i] for i in seq] for seq in item_ids],
    })
    items = Dataset.from_dict({"item_id": [str(k) for k in item_keys], "text": texts})
    data = RecData(name=name, users=users, items=items, protocol=protocol, ordered=ordered, info=info)
    logger.info("%s: %s", name, data.stats())
    return data


def check_k_core(k, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1 (1 keeps every user and item), got {k!r}.")


def k_core(sequences: dict, k: int) -> dict:
    """Drops users and items with fewer than k interactions, repeatedly, until none is left below k."""
    if k <= 1:
        return sequences
    while True:
        counts: dict = {}
        for seq in sequences.values():
            for item in seq:
                counts[item] = counts.get(item, 0) + 1
        filtered = {}
        for user, seq in sequences.items():
            kept = [item for item in seq if counts[item] >= k]
            if len(kept) >= k:
                filtered[user] = kept
        if filtered == sequences:
            return sequences
        sequences = filtered


def reindex(sequences: dict, item_text: dict) -> tuple[dict, list, list[str]]:
    """Item indices in order of first appearance (users in their given order)."""
    index: dict = {}
    out = {}
    for user, seq in sequences.items():
        out[user] = [index.setdefault(item, len(index)) for item in seq]
    keys = list(index)
    return out, keys, [item_text.get(k, "") for k in keys]


# Part of the cache key: bump it when processing changes, so stale prepared folders are not reused.
PREPARED_FORMAT_VERSION = 3  # 3: special-token markup and lone surrogates escaped in item texts


def cache_key(path: Path, fmt: str, options: dict) -> str:
    import hashlib

    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    key = [PREPARED_FORMAT_VERSION, str(path.resolve()), fmt, options]
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("LMREC_CACHE", Path.home() / ".cache" / "lmrec_hf")) / "prepared"
