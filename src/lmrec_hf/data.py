"""Behaviour logs -> `datasets` objects: one row per user with the ordered item ids and texts, plus an item catalog.

Loaders: UniSRec / RecBole atomic files, the raw Online Retail table (UniSRec's "OR" procedure), any
interactions table with an item-text table, and the task-agnostic corpora. Splits: leave-one-out (public sets)
and a random 80/10/10 user split (the paper's in-house protocol).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
from datasets import Dataset, load_from_disk

from .formatting_lmrec import clean_item_text, format_history

logger = logging.getLogger(__name__)

PROTOCOLS = ("leave_one_out", "user_split")
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
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.users.save_to_disk(str(path / "users"))
        self.items.save_to_disk(str(path / "items"))
        meta = {"name": self.name, "protocol": self.protocol, "ordered": self.ordered, "info": self.info,
                **self.stats()}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))


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
# Reading files with line numbers in every error


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _find(directory: Path, stem: str, required: bool = True) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    if required:
        present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise FileNotFoundError(
            f"Expected {stem} (optionally gzipped) in {directory}, found {present or 'nothing'}."
        )
    return None


def _read_atomic(path: Path, columns: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, fields) of a RecBole atomic file, checking the header names the expected columns."""
    with _open_text(path) as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        names = [h.split(":")[0] for h in header]
        if names[: len(columns)] != columns:
            raise ValueError(
                f"{path}: expected the columns {columns} in its header line, found {names}. "
                "Is this a UniSRec/RecBole atomic file?"
            )
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < len(columns):
                raise ValueError(
                    f"{path}, line {number}: expected {len(columns)} tab-separated fields "
                    f"({', '.join(columns)}), found {len(fields)}: {line[:80]!r}."
                )
            yield number, fields


def _ints(text: str, path: Path, number: int) -> list[int]:
    try:
        return [int(token) for token in text.split()]
    except ValueError as error:
        raise ValueError(f"{path}, line {number}: expected space-separated item indices, got {text[:80]!r}.") from error


# ---------------------------------------------------------------------------------------------------------------
# UniSRec / RecBole atomic files


def load_unisrec(directory: str | os.PathLike, name: str | None = None, missing_text: str = "drop") -> RecData:
    """
    Loads a UniSRec-processed data set (`X.text`, `X.train.inter`, `X.valid.inter`, `X.test.inter`, `X.item2index`,
    each optionally gzipped) and rebuilds each user's full sequence.

    `train.inter` has one row per prefix of a user's training part, longest first. The full sequence is the
    one-item history of the user's last row, then the targets in reverse row order, then the valid and test targets.

    Example:
    ```python
    >>> data = load_unisrec("../shared/data/amazon-scientific")
    >>> data.stats()["users"]
    8442
    ```
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"UniSRec data folder {directory} does not exist.")
    if name is None:
        texts = sorted(p.name for p in directory.glob("*.text*"))
        if not texts:
            raise FileNotFoundError(f"Expected a file X.text (the item texts) in {directory}; none found.")
        name = texts[0].split(".text")[0]

    item_path = _find(directory, f"{name}.item2index")
    item_tokens: dict[int, str] = {}
    with _open_text(item_path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2 or not fields[1].strip().lstrip("-").isdigit():
                raise ValueError(f"{item_path}, line {number}: expected 'item_token<TAB>index', got {line[:80]!r}.")
            item_tokens[int(fields[1])] = fields[0]
    text_path = _find(directory, f"{name}.text")
    token_text = {fields[0]: fields[1] for _, fields in _read_atomic(text_path, ["item_id", "text"])}

    train_rows: dict[str, list[tuple[list[int], int]]] = {}
    train_path = _find(directory, f"{name}.train.inter")
    for number, fields in _read_atomic(train_path, ["user_id", "item_id_list", "item_id"]):
        history = _ints(fields[1], train_path, number)
        target = _ints(fields[2], train_path, number)
        train_rows.setdefault(fields[0], []).append((history, target[0]))
    targets: dict[str, dict[str, int]] = {}
    test_histories: dict[str, list[int]] = {}
    for split in ("valid", "test"):
        path = _find(directory, f"{name}.{split}.inter")
        for number, fields in _read_atomic(path, ["user_id", "item_id_list", "item_id"]):
            targets.setdefault(fields[0], {})[split] = _ints(fields[2], path, number)[0]
            if split == "test":
                test_histories[fields[0]] = _ints(fields[1], path, number)

    sequences = {}
    for user, split_targets in targets.items():
        if set(split_targets) != {"valid", "test"}:
            raise ValueError(f"{directory}: user {user} has a {', '.join(split_targets)} target but needs both a "
                             "valid and a test target.")
        rows = train_rows.get(user)
        if rows:
            sequence = list(rows[-1][0]) + [target for _, target in reversed(rows)]
            sequences[user] = sequence + [split_targets["valid"], split_targets["test"]]
        else:  # a user with three items has no train row; its test history holds the rest
            sequences[user] = test_histories[user] + [split_targets["test"]]
    unknown = set(train_rows) - set(targets)
    if unknown:
        raise ValueError(f"{directory}: {len(unknown)} users have train rows but no valid or test row, "
                         f"e.g. {sorted(unknown)[:3]}.")

    n_items = max(item_tokens) + 1
    texts = []
    for index in range(n_items):
        token = item_tokens.get(index)
        texts.append(clean_item_text(token_text.get(token, "")) if token is not None else "")
    return _build(name, sequences, [item_tokens.get(i, str(i)) for i in range(n_items)], texts,
                  missing_text=missing_text, source=str(directory))


# ---------------------------------------------------------------------------------------------------------------
# Building a RecData from sequences, with the text and k-core checks in one place


def _build(name, sequences: dict, item_keys: list, texts: list[str], missing_text: str = "drop",
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


def _reindex(sequences: dict, item_text: dict) -> tuple[dict, list, list[str]]:
    """Item indices in order of first appearance (users in their given order)."""
    index: dict = {}
    out = {}
    for user, seq in sequences.items():
        out[user] = [index.setdefault(item, len(index)) for item in seq]
    keys = list(index)
    return out, keys, [item_text.get(k, "") for k in keys]


# ---------------------------------------------------------------------------------------------------------------
# Raw Online Retail (UCI / Kaggle data.csv) -> UniSRec "OR"

ONLINE_RETAIL_COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate"]


def prepare_online_retail(csv_path: str | os.PathLike, k: int = 5) -> RecData:
    """
    Turns the raw Online Retail table (Kaggle `data.csv`, optionally gzipped) into UniSRec's "OR" data set:
    rows without a description are dropped, the user is the invoice and the item the stock code, an interaction
    is a distinct (invoice, stock code, quantity, time) tuple, a `k`-core filter runs until stable, and each invoice
    is sorted by time with ties in line order. Item text: the first non-empty description, lowercased, plus ".".

    Example:
    ```python
    >>> prepare_online_retail("../shared/data/online-retail/data.csv.gz").stats()
    {'users': 16520, 'items': 3469, 'interactions': 519906}
    ```
    """
    import pandas as pd

    csv_path = Path(csv_path)
    frame = _read_table(csv_path, dtype=str, keep_default_na=False)
    _require_columns(frame, ONLINE_RETAIL_COLUMNS, csv_path)
    rows = len(frame)
    frame = frame[frame["Description"].str.strip() != ""]
    with_description = len(frame)
    frame = frame.assign(_line=np.arange(len(frame)))
    try:
        frame["_time"] = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M")
    except ValueError:
        frame["_time"] = pd.to_datetime(frame["InvoiceDate"], format="mixed")
    frame = frame.drop_duplicates(subset=["InvoiceNo", "StockCode", "Quantity", "_time"], keep="first")
    distinct = len(frame)
    item_text = {}
    for code, description in zip(frame["StockCode"], frame["Description"]):
        if code not in item_text:
            item_text[code] = description.strip().lower() + "."
    frame = frame.sort_values(["_time", "_line"], kind="stable")
    sequences: dict = {}
    for invoice, code in zip(frame["InvoiceNo"], frame["StockCode"]):
        sequences.setdefault(invoice, []).append(code)
    sequences = k_core(sequences, k)
    sequences, keys, texts = _reindex(sequences, item_text)
    info = {"raw_rows": rows, "rows_with_description": with_description, "distinct_interactions": distinct,
            "k_core": k}
    data = _build("OR", sequences, keys, texts, source=str(csv_path), info=info, min_length=k)
    logger.info("Online Retail: %d rows, %d with a description, %d distinct interactions, after %d-core: %s",
                rows, with_description, distinct, k, data.stats())
    return data


# ---------------------------------------------------------------------------------------------------------------
# Any interactions table + item-text table


def _read_table(path: Path, **kwargs):
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".jsonl", ".json")):
            return _read_jsonl(path)
        separator = "\t" if name.endswith((".tsv", ".tab", ".txt")) else ","
        return pd.read_csv(path, sep=separator, **kwargs)
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: cannot parse the table ({error}). Fix or remove that line.") from error


def _read_jsonl(path: Path):
    import pandas as pd

    records = []
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg}): {line[:80]!r}.") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}.")
            records.append(record)
    return pd.DataFrame.from_records(records)


def _require_columns(frame, needed: list[str], path: Path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; the file has {list(frame.columns)}. Map your column names with "
            "the column mapping (e.g. user_column=..., item_column=...)."
        )


def load_interactions(
    interactions: str | os.PathLike,
    item_texts: str | os.PathLike,
    user_column: str = "user_id",
    item_column: str = "item_id",
    timestamp_column: str | None = "timestamp",
    text_column: str = "text",
    item_key_column: str | None = None,
    k_core_min: int = 5,
    missing_text: str = "drop",
    name: str | None = None,
) -> RecData:
    """
    Loads any interactions table (user, item, optional timestamp) and any item-text table, in CSV, TSV, JSONL or
    parquet (optionally gzipped). Each user's items are sorted by time when a timestamp column exists (else kept in
    file order), a k-core filter runs, and items without text are dropped and counted (`missing_text="drop"`) or
    raise (`"error"`). Use with the leave-one-out split.

    Example:
    ```python
    >>> data = load_interactions("clicks.csv", "items.jsonl", user_column="uid", item_column="sku",
    ...                          timestamp_column="ts", text_column="title", item_key_column="sku")
    ```
    """
    interactions, item_texts = Path(interactions), Path(item_texts)
    frame = _read_table(interactions)
    if timestamp_column is not None and timestamp_column not in frame.columns:
        logger.info("%s has no %r column; keeping each user's items in file order", interactions, timestamp_column)
        timestamp_column = None
    _require_columns(frame, [user_column, item_column] + ([timestamp_column] if timestamp_column else []),
                     interactions)
    catalog = _read_table(item_texts)
    item_key_column = item_key_column or item_column
    _require_columns(catalog, [item_key_column, text_column], item_texts)

    frame = frame.assign(_line=np.arange(len(frame)))
    if timestamp_column:
        frame = frame.sort_values([timestamp_column, "_line"], kind="stable")
    texts = {}
    for key, text in zip(catalog[item_key_column].astype(str), catalog[text_column]):
        cleaned = clean_item_text(text) if isinstance(text, str) else ""
        if key not in texts or not texts[key]:
            texts[key] = cleaned
    sequences: dict = {}
    for user, item in zip(frame[user_column].astype(str), frame[item_column].astype(str)):
        sequences.setdefault(user, []).append(item)
    textless = {item for seq in sequences.values() for item in seq if not texts.get(item)}
    if textless and missing_text == "drop":
        dropped = sum(1 for seq in sequences.values() for item in seq if item in textless)
        logger.warning("%s: dropped %d items without text and their %d interactions", interactions,
                       len(textless), dropped)
        sequences = {u: [i for i in seq if i not in textless] for u, seq in sequences.items()}
    sequences = k_core({u: s for u, s in sequences.items() if s}, k_core_min)
    sequences, keys, item_text_list = _reindex(sequences, texts)
    info = {"items_without_text": len(textless), "k_core": k_core_min}
    return _build(name or interactions.stem.split(".")[0], sequences, keys, item_text_list,
                  missing_text=missing_text, source=str(interactions), info=info, min_length=max(k_core_min, 1))


# ---------------------------------------------------------------------------------------------------------------
# Task-agnostic corpora (../shared/data/agnostic)


def load_agnostic(directory: str | os.PathLike) -> RecData:
    """
    Loads one task-agnostic corpus folder: Amazon Games (ordered by time), MovieLens-1M (unordered sets) or
    Last.fm HetRec (unordered, ordered here by descending play count). Unordered corpora are LM text only
    (`ordered=False`); never evaluate sequential recommendation on them.
    """
    directory = Path(directory)
    if (directory / "Games-6k.seq.tsv.gz").exists():
        titles = {fields[0]: fields[1] for _, fields in
                  _read_atomic(directory / "Games-6k.item.gz", ["item_id", "title"])}
        sequences = {}
        with _open_text(directory / "Games-6k.seq.tsv.gz") as handle:
            handle.readline()
            for number, line in enumerate(handle, start=2):
                user, _, items = line.rstrip("\r\n").partition("\t")
                sequences[user] = _ints(items, directory / "Games-6k.seq.tsv.gz", number)
        n_items = max(int(k) for k in titles) + 1
        texts = [clean_item_text(titles.get(str(i), "")) for i in range(n_items)]
        return _build("amazon-games", sequences, [str(i) for i in range(n_items)], texts, source=str(directory))
    if (directory / "ml-1m.item.gz").exists():
        titles = {fields[0]: fields[1] for _, fields in
                  _read_atomic(directory / "ml-1m.item.gz", ["item_id", "movie_title"])}
        index_to_movie = {}
        with _open_text(directory / "item_map.txt.gz") as handle:
            for line in handle:
                movie, index = line.split()
                index_to_movie[int(index)] = movie
        sequences: dict = {}
        for split in ("train", "test"):
            path = directory / f"{split}.txt.gz"
            with _open_text(path) as handle:
                for number, line in enumerate(handle, start=1):
                    values = _ints(line, path, number)
                    if values:
                        sequences.setdefault(str(values[0]), []).extend(values[1:])
        n_items = max(index_to_movie) + 1
        texts = [clean_item_text(titles.get(index_to_movie.get(i, ""), "")) for i in range(n_items)]
        return _build("ml-1m-unordered", sequences, [index_to_movie.get(i, str(i)) for i in range(n_items)], texts,
                      ordered=False, source=str(directory))
    if (directory / "user_artists.dat.gz").exists():
        names = {}
        with _open_text(directory / "artists.dat.gz") as handle:
            handle.readline()
            for line in handle:
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) >= 2:
                    names[fields[0]] = fields[1]
        plays: dict = {}
        with _open_text(directory / "user_artists.dat.gz") as handle:
            for line in handle:
                user, artist, weight = line.split()
                plays.setdefault(user, []).append((int(weight), artist))
        sequences = {u: [a for _, a in sorted(p, key=lambda wa: -wa[0])] for u, p in plays.items()}
        sequences, keys, texts = _reindex(sequences, {k: clean_item_text(v) for k, v in names.items()})
        return _build("lastfm-hetrec2k", sequences, keys, texts, ordered=False, source=str(directory))
    raise FileNotFoundError(
        f"{directory} is not a known task-agnostic corpus: expected Games-6k.seq.tsv.gz, ml-1m.item.gz or "
        "user_artists.dat.gz inside it."
    )


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


def split_sequences(data: RecData, split: str) -> list[tuple[int, list[int]]]:
    """(user row, the part of its sequence visible for `split`) pairs."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    sequences = data.sequences
    if data.protocol == "leave_one_out":
        cut = {"train": 2, "valid": 1, "test": 0}[split]
        return [(row, seq[: len(seq) - cut]) for row, seq in enumerate(sequences)]
    labels = data.users["split"][:]
    return [(row, seq) for row, (seq, label) in enumerate(zip(sequences, labels)) if label == split]


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


ONLINE_RETAIL_ALIAS = "online-retail"  # a `data` value that means "find (or download) Online Retail"


def resolve_data_path(path: str | os.PathLike, download: bool = False) -> Path:
    """`path` itself, or for the alias "online-retail" (when no such path exists) the folder `find_online_retail`
    finds, downloading the UCI file with `download=True`."""
    if str(path) == ONLINE_RETAIL_ALIAS and not Path(path).exists():
        return find_online_retail(download=download)
    return Path(path)


ONLINE_RETAIL_URL = "https://archive.ics.uci.edu/static/public/352/online+retail.zip"


def download_online_retail(cache_dir: str | os.PathLike | None = None, url: str = ONLINE_RETAIL_URL) -> Path:
    """
    Downloads the UCI Online Retail workbook (CC BY 4.0; D. Chen, UCI ML Repository) into a cache folder with a
    progress bar, and writes it as `data.csv.gz` in Kaggle's layout (UTF-8, dates as M/D/YYYY H:MM). Returns the
    folder. Nothing is fetched when the folder already has `data.csv.gz`.
    """
    import io
    import urllib.request
    import zipfile

    import pandas as pd
    from tqdm.auto import tqdm

    folder = Path(cache_dir) if cache_dir else default_cache_dir().parent / "online-retail"
    target = folder / "data.csv.gz"
    if target.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buffer = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc="Online Retail") as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    buffer.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:
        raise FileNotFoundError(
            f"Could not download Online Retail from {url} ({error}). Download it by hand and set LMREC_DATA_DIR "
            "to a folder holding online-retail/data.csv.gz."
        ) from error
    with zipfile.ZipFile(buffer) as archive:
        workbook = next((n for n in archive.namelist() if n.endswith(".xlsx")), None)
        if workbook is None:
            raise ValueError(f"{url}: expected an .xlsx workbook inside, found {archive.namelist()}.")
        try:
            frame = pd.read_excel(archive.open(workbook), dtype={"InvoiceNo": str, "StockCode": str})
        except ImportError as error:
            raise ImportError("Reading the Online Retail workbook needs openpyxl: pip install openpyxl") from error
    dates = pd.to_datetime(frame["InvoiceDate"])
    frame["InvoiceDate"] = [f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}" for d in dates]
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    partial = target.with_suffix(".partial")
    frame.to_csv(partial, index=False, compression="gzip")
    partial.rename(target)  # only a complete file ever carries the final name
    return folder


def find_online_retail(data_dir: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Where the demo finds Online Retail: `data_dir`, `$LMREC_DATA_DIR`, ../shared/data/online-retail, the
    download cache; with `download=True` it downloads the UCI file when none of these has it."""
    candidates = []
    if data_dir:
        candidates.append(Path(data_dir))
    if os.environ.get("LMREC_DATA_DIR"):
        base = Path(os.environ["LMREC_DATA_DIR"])
        candidates += [base / "online-retail", base]
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "data" / "online-retail" for parent in here.parents[:5]]
    candidates.append(Path.cwd().parent / "shared" / "data" / "online-retail")
    candidates.append(default_cache_dir().parent / "online-retail")
    for candidate in candidates:
        if (candidate / "data.csv.gz").exists() or (candidate / "data.csv").exists():
            return candidate
    if download:
        return download_online_retail()
    raise FileNotFoundError(
        "Online Retail not found. Looked in: " + ", ".join(str(c) for c in candidates) + ". Set LMREC_DATA_DIR to "
        "a folder holding online-retail/data.csv.gz, or allow the download of the UCI file (CC BY 4.0) with "
        "`--download_data true` (the default of `lmrec-hf train`)."
    )


# ---------------------------------------------------------------------------------------------------------------
# One entry point with format detection and a prepared-folder cache

FORMATS = ("auto", "prepared", "unisrec", "online-retail", "interactions", "agnostic")
# Part of the cache key: bump it when processing changes, so stale prepared folders are not reused.
PREPARED_FORMAT_VERSION = 2


def detect_format(path: str | os.PathLike) -> str:
    """Which loader reads `path`: a prepared folder, UniSRec files, raw Online Retail, or an agnostic corpus."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Data path {path} does not exist. Point `data` at a data folder or file.")
    if path.is_dir():
        if (path / "meta.json").exists():
            return "prepared"
        if any(path.glob("*.train.inter*")):
            return "unisrec"
        if (path / "data.csv.gz").exists() or (path / "data.csv").exists():
            return "online-retail"
        if any((path / f).exists() for f in ("Games-6k.seq.tsv.gz", "ml-1m.item.gz", "user_artists.dat.gz")):
            return "agnostic"
    elif path.name in ("data.csv", "data.csv.gz"):
        return "online-retail"
    else:
        return "interactions"
    raise ValueError(
        f"Cannot tell the format of {path}: expected a prepared folder (meta.json), UniSRec atomic files "
        "(X.text, X.train.inter, ...), Online Retail's data.csv(.gz), or an agnostic corpus folder. Pass the format "
        f"explicitly (one of {FORMATS})."
    )


def _cache_key(path: Path, fmt: str, options: dict) -> str:
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


def load_data(path: str | os.PathLike, fmt: str = "auto", cache_dir: str | os.PathLike | None = None,
              **options) -> RecData:
    """
    Loads any supported source (see `detect_format`), caching the processed result as a prepared folder under
    `cache_dir` (default `$LMREC_CACHE/prepared` or ~/.cache/lmrec_hf/prepared) so the next run skips processing.
    `options` go to the loader (e.g. `items=...`, `user_column=...` for an interactions table).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"Unknown data format {fmt!r}; use one of {FORMATS}.")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "prepared":
        return load_prepared(path)
    cached = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = cached / f"{path.name.split('.')[0]}-{_cache_key(path, fmt, options)}"
    if (cached / "meta.json").exists():
        logger.info("Loading prepared %s from the cache %s", path, cached)
        return load_prepared(cached)
    if fmt == "unisrec":
        data = load_unisrec(path, **options)
    elif fmt == "online-retail":
        csv = path if path.is_file() else _find(path, "data.csv")
        data = prepare_online_retail(csv, **options)
    elif fmt == "agnostic":
        data = load_agnostic(path)
    else:
        options = dict(options)
        items = options.pop("items", None)
        if items is None:
            raise ValueError(f"{path} is an interactions table; also give the item-text table (`items`).")
        data = load_interactions(path, items, **options)
    data.save(cached)
    return data
