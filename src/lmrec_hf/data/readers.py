"""File readers: UniSRec / RecBole atomic files, any interactions table with an item-text table, and the
task-agnostic corpora. Every error names the file, and the line where there is one."""

from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ..formatting_lmrec import clean_item_text
from .records import RecData, build_data, check_k_core, k_core, reindex

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# Reading files with line numbers in every error


DAMAGED = (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error)


def damaged_file_error(path: Path, error: BaseException) -> ValueError:
    """Our error for a file that is not UTF-8 (naming the line) or a gzip file cut short or corrupt."""
    if isinstance(error, UnicodeDecodeError):
        line, column, byte = _first_bad_byte(path)
        return ValueError(f"{path}, line {line}: not UTF-8 text (byte {byte:#04x} at column {column}). Save the "
                          "file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or fix that line.")
    return ValueError(f"{path}: the gzip file is truncated or corrupt ({type(error).__name__}: {error}). Copy or "
                      "download it again.")


def _first_bad_byte(path: Path) -> tuple[int, int, int]:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    try:
        raw.decode("utf-8")
        return 0, 0, 0
    except UnicodeDecodeError as error:
        start = error.start
    return raw.count(b"\n", 0, start) + 1, start - raw.rfind(b"\n", 0, start), raw[start]


class open_text:
    """A UTF-8 text file, gzipped or not, whose read errors name the file and line (`damaged_file_error`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.handle = (gzip.open(self.path, "rt", encoding="utf-8", newline="") if self.path.suffix == ".gz"
                       else open(self.path, encoding="utf-8", newline=""))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.handle.close()

    def __iter__(self):
        try:
            yield from self.handle
        except DAMAGED as error:
            raise damaged_file_error(self.path, error) from error

    def readline(self) -> str:
        try:
            return self.handle.readline()
        except DAMAGED as error:
            raise damaged_file_error(self.path, error) from error


def find_file(directory: Path, stem: str, required: bool = True) -> Path | None:
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
    with open_text(path) as handle:
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

    item_path = find_file(directory, f"{name}.item2index")
    item_tokens: dict[int, str] = {}
    with open_text(item_path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2 or not fields[1].strip().lstrip("-").isdigit():
                raise ValueError(f"{item_path}, line {number}: expected 'item_token<TAB>index', got {line[:80]!r}.")
            item_tokens[int(fields[1])] = fields[0]
    text_path = find_file(directory, f"{name}.text")
    token_text = {fields[0]: fields[1] for _, fields in _read_atomic(text_path, ["item_id", "text"])}

    train_rows: dict[str, list[tuple[list[int], int]]] = {}
    train_path = find_file(directory, f"{name}.train.inter")
    for number, fields in _read_atomic(train_path, ["user_id", "item_id_list", "item_id"]):
        history = _ints(fields[1], train_path, number)
        target = _ints(fields[2], train_path, number)
        train_rows.setdefault(fields[0], []).append((history, target[0]))
    targets: dict[str, dict[str, int]] = {}
    test_histories: dict[str, list[int]] = {}
    for split in ("valid", "test"):
        path = find_file(directory, f"{name}.{split}.inter")
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
    return build_data(name, sequences, [item_tokens.get(i, str(i)) for i in range(n_items)], texts,
                  missing_text=missing_text, source=str(directory))


# ---------------------------------------------------------------------------------------------------------------
# Any interactions table + item-text table


def read_table(path: Path, **kwargs):
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".jsonl", ".json")):
            return read_jsonl(path)
        separator = "\t" if name.endswith((".tsv", ".tab", ".txt")) else ","
        return pd.read_csv(path, sep=separator, **kwargs)
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: cannot parse the table ({error}). Fix or remove that line.") from error
    except DAMAGED as error:
        raise damaged_file_error(path, error) from error


def read_jsonl(path: Path):
    import pandas as pd

    return pd.DataFrame.from_records([record for _, record in iter_jsonl(path)])


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSONL file, read lazily; errors name the file and line."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg}): {line[:80]!r}.") from error
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}.")
            yield number, record


def require_columns(frame, needed: list[str], path: Path) -> None:
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
    check_k_core(k_core_min, "k_core_min")
    interactions, item_texts = Path(interactions), Path(item_texts)
    frame = read_table(interactions)
    if timestamp_column is not None and timestamp_column not in frame.columns:
        logger.info("%s has no %r column; keeping each user's items in file order", interactions, timestamp_column)
        timestamp_column = None
    require_columns(frame, [user_column, item_column] + ([timestamp_column] if timestamp_column else []),
                     interactions)
    catalog = read_table(item_texts)
    item_key_column = item_key_column or item_column
    require_columns(catalog, [item_key_column, text_column], item_texts)

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
    sequences, keys, item_text_list = reindex(sequences, texts)
    info = {"items_without_text": len(textless), "k_core": k_core_min}
    return build_data(name or interactions.stem.split(".")[0], sequences, keys, item_text_list,
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
        with open_text(directory / "Games-6k.seq.tsv.gz") as handle:
            handle.readline()
            for number, line in enumerate(handle, start=2):
                user, _, items = line.rstrip("\r\n").partition("\t")
                sequences[user] = _ints(items, directory / "Games-6k.seq.tsv.gz", number)
        n_items = max(int(k) for k in titles) + 1
        texts = [clean_item_text(titles.get(str(i), "")) for i in range(n_items)]
        return build_data("amazon-games", sequences, [str(i) for i in range(n_items)], texts, source=str(directory))
    if (directory / "ml-1m.item.gz").exists():
        titles = {fields[0]: fields[1] for _, fields in
                  _read_atomic(directory / "ml-1m.item.gz", ["item_id", "movie_title"])}
        index_to_movie = {}
        with open_text(directory / "item_map.txt.gz") as handle:
            for line in handle:
                movie, index = line.split()
                index_to_movie[int(index)] = movie
        sequences: dict = {}
        for split in ("train", "test"):
            path = directory / f"{split}.txt.gz"
            with open_text(path) as handle:
                for number, line in enumerate(handle, start=1):
                    values = _ints(line, path, number)
                    if values:
                        sequences.setdefault(str(values[0]), []).extend(values[1:])
        n_items = max(index_to_movie) + 1
        texts = [clean_item_text(titles.get(index_to_movie.get(i, ""), "")) for i in range(n_items)]
        return build_data("ml-1m-unordered", sequences, [index_to_movie.get(i, str(i)) for i in range(n_items)], texts,
                      ordered=False, source=str(directory))
    if (directory / "user_artists.dat.gz").exists():
        names = {}
        with open_text(directory / "artists.dat.gz") as handle:
            handle.readline()
            for line in handle:
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) >= 2:
                    names[fields[0]] = fields[1]
        plays: dict = {}
        with open_text(directory / "user_artists.dat.gz") as handle:
            for line in handle:
                user, artist, weight = line.split()
                plays.setdefault(user, []).append((int(weight), artist))
        sequences = {u: [a for _, a in sorted(p, key=lambda wa: -wa[0])] for u, p in plays.items()}
        sequences, keys, texts = reindex(sequences, {k: clean_item_text(v) for k, v in names.items()})
        return build_data("lastfm-hetrec2k", sequences, keys, texts, ordered=False, source=str(directory))
    raise FileNotFoundError(
        f"{directory} is not a known task-agnostic corpus: expected Games-6k.seq.tsv.gz, ml-1m.item.gz or "
        "user_artists.dat.gz inside it."
    )
