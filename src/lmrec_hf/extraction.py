"""
`lmrec-hf extract`: user and item features of a checkpoint for many rows, streamed. Rows are read in chunks, each
chunk is encoded in batches of similar length through the pipeline's own code path (`encode_texts`,
`features_of`), and written before the next chunk is read, so memory stays flat however many rows come.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .data.readers import iter_jsonl
from .data.splits import history_window
from .formatting_lmrec import escape_text, format_history, format_item
from .pipeline_lmrec import encode_texts, features_of, projection_head

logger = logging.getLogger(__name__)

# What each kind of row can give: z and its projection.
OUTPUTS = {"user": ("z", "user"), "item": ("z", "item")}
CHUNK_ROWS = 4096


def extract_features(model, tokenizer, rows: Iterable[tuple[str, str]], kind: str, outputs: tuple[str, ...] = ("z",),
                     batch_size: int = 64, max_length: int | None = None, chunk_rows: int = CHUNK_ROWS,
                     progress: bool = True) -> Iterator[dict]:
    """
    Yields one dict per chunk of `rows` ((id, text) pairs, texts already formatted): `ids` and, per asked output,
    a float32 array `(rows, width)`: `"z"` the last-layer feature at the EOS, `"user"` W_u z (user rows), `"item"`
    W_i z (item rows). Histories are cut from the left, items from the right, exactly as the pipeline cuts them.

    Example:
    ```python
    >>> for chunk in extract_features(model, tokenizer, [("u1", "red mug. → blue mug.")], "user", ("z", "user")):
    ...     chunk["user"].shape
    (1, 128)
    ```
    """
    if kind not in OUTPUTS:
        raise ValueError(f"kind must be 'user' or 'item', got {kind!r}.")
    bad = [o for o in outputs if o not in OUTPUTS[kind]]
    if bad or not outputs:
        raise ValueError(f"{kind} rows can give {list(OUTPUTS[kind])}, got {list(outputs)}.")
    if batch_size < 1 or chunk_rows < 1:
        raise ValueError(f"batch_size and chunk_rows must be positive, got {batch_size} and {chunk_rows}.")
    heads = {o: projection_head(model, o) for o in outputs if o != "z"}
    projection = "item" if kind == "item" else None  # the item rule cuts from the right; z is read all the same
    model.eval()
    from tqdm.auto import tqdm

    bar = tqdm(desc=f"extracting {kind} features", unit=" rows", disable=not progress)
    chunk: list[tuple[str, str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == chunk_rows:
            yield _encode_chunk(model, tokenizer, chunk, heads, outputs, projection, batch_size, max_length)
            bar.update(len(chunk))
            chunk = []
    if chunk:
        yield _encode_chunk(model, tokenizer, chunk, heads, outputs, projection, batch_size, max_length)
        bar.update(len(chunk))
    bar.close()


@torch.no_grad()
def _encode_chunk(model, tokenizer, chunk, heads, outputs, projection, batch_size, max_length) -> dict:
    order = np.argsort([len(text) for _, text in chunk], kind="stable")  # batches of similar length: little padding
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(chunk), batch_size):
        index = order[start:start + batch_size]
        encoded = encode_texts(tokenizer, model.config, [chunk[i][1] for i in index], projection, max_length)
        encoded = {k: v.to(model.device) for k, v in encoded.items()}
        z = features_of(model, encoded)  # (b, d)
        for name in outputs:
            values = (z if name == "z" else heads[name](z)).float().cpu().numpy()
            if name not in out:
                out[name] = np.empty((len(chunk), values.shape[1]), dtype=np.float32)
            out[name][index] = values  # back in input order
    return {"ids": [row_id for row_id, _ in chunk], **out}


# ---------------------------------------------------------------------------------------------------------------
# Reading rows


def history_rows(path: str | Path, split: str = "all", max_history_items: int | None = 50) -> Iterator[tuple]:
    """
    (user_id, formatted history) rows from a prepared data folder (each user's whole sequence with `split="all"`,
    or the history before its valid or test target), or from a JSONL, CSV or parquet file with `user_id` and
    `history` (a list of item texts, oldest first, or one formatted text). Read lazily, row by row or in batches.
    """
    path = Path(path)
    if path.is_dir():
        from .data import load_prepared
        from .data.splits import eval_pairs, history_items

        data = load_prepared(path)
        texts, sequences = data.item_texts, data.sequences
        if split == "all":
            for user_id, seq in zip(data.users["user_id"], sequences):
                window = seq[history_window(len(seq), max_history_items or None)]
                yield user_id, format_history([texts[i] for i in window])
            return
        pairs = eval_pairs(data, split)
        user_ids = data.users["user_id"]
        for row, position in zip(pairs["user_row"], pairs["position"]):
            items = history_items(data, row, position, max_history_items)
            yield user_ids[row], format_history([texts[i] for i in items])
        return
    for number, record in _records(path, ("user_id", "history")):
        history = record["history"]
        if isinstance(history, str):
            text = escape_text(history)
        elif isinstance(history, (list, tuple, np.ndarray)):
            items = [str(t) for t in history] if max_history_items else list(history)
            text = format_history(items[history_window(len(items), max_history_items or None)])
        else:
            raise ValueError(f"{path}, row {number}: `history` must be a list of item texts or a formatted text, got "
                             f"{type(history).__name__}.")
        yield str(record["user_id"]), text


def item_rows(path: str | Path) -> Iterator[tuple]:
    """(item_id, formatted item text) rows from a prepared data folder's catalogue, or a JSONL, CSV or parquet file
    with `item_id` and `text`."""
    path = Path(path)
    if path.is_dir():
        from .data import load_prepared

        data = load_prepared(path)
        yield from zip(data.items["item_id"], data.item_texts)
        return
    for _, record in _records(path, ("item_id", "text")):
        yield str(record["item_id"]), format_item(str(record["text"]))


def _records(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        for number, record in iter_jsonl(path):
            _require(record, columns, path, number)
            yield number, record
        return
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
            for record in batch.to_pylist():
                number += 1
                _require(record, columns, path, number)
                yield number, record
        return
    if name.endswith((".csv", ".tsv")):
        import pandas as pd

        number = 0
        for frame in pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",", chunksize=CHUNK_ROWS, dtype=str):
            for record in frame.to_dict("records"):
                number += 1
                _require(record, columns, path, number)
                if "history" in record and isinstance(record["history"], str) and record["history"].startswith("["):
                    record["history"] = json.loads(record["history"])
                yield number, record
        return
    raise ValueError(f"{path}: expected a prepared data folder or a .jsonl, .csv, .tsv or .parquet file.")


def _require(record: dict, columns: tuple[str, ...], path: Path, number: int) -> None:
    missing = [c for c in columns if c not in record or record[c] is None]
    if missing:
        raise ValueError(f"{path}, row {number}: missing {missing}; each row needs {list(columns)}, got "
                         f"{sorted(record)}.")


# ---------------------------------------------------------------------------------------------------------------
# Writing


def column_name(kind: str, output: str) -> str:
    """`user_features` (z_u), `user_embeds` (W_u z_u), `item_features` (z_i), `item_embeds` (W_i z_i)."""
    return f"{kind}_features" if output == "z" else f"{kind}_embeds"


class FeatureWriter:
    """
    Writes chunks of features to `.parquet` (streamed: one row group per chunk; columns `id` and one list column per
    output) or `.safetensors` (one tensor per output, ids in the metadata; held in memory until closed).
    """

    def __init__(self, path: str | Path, kind: str):
        self.path, self.kind = Path(path), kind
        if self.path.suffix not in (".parquet", ".safetensors"):
            raise ValueError(f"--output must end in .parquet or .safetensors, got {self.path.name}.")
        if self.path.exists():
            raise ValueError(f"{self.path} exists; pick a new output file (an existing one is never overwritten).")
        self._writer, self._chunks, self.rows = None, [], 0
        self._partial = self.path.with_name(self.path.name + ".partial")

    def write(self, chunk: dict) -> None:
        self.rows += len(chunk["ids"])
        if self.path.suffix == ".safetensors":
            self._chunks.append(chunk)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {f"{self.kind}_id": pa.array(chunk["ids"], pa.string())}
        for name, values in chunk.items():
            if name != "ids":
                columns[column_name(self.kind, name)] = pa.FixedSizeListArray.from_arrays(
                    pa.array(values.reshape(-1)), values.shape[1])
        table = pa.table(columns)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._partial, table.schema)
        self._writer.write_table(table)

    def abort(self) -> None:
        """Drops what was written so far (the final name was never used)."""
        if self._writer is not None:
            self._writer.close()
        self._partial.unlink(missing_ok=True)

    def close(self) -> Path:
        """Finishes the file; it gets its final name only now, so an interrupted run leaves no half file under it."""
        if self.path.suffix == ".safetensors":
            from safetensors.numpy import save_file

            names = [n for n in (self._chunks[0] if self._chunks else {}) if n != "ids"]
            tensors = {column_name(self.kind, n): np.concatenate([c[n] for c in self._chunks]) for n in names}
            ids = [i for c in self._chunks for i in c["ids"]]
            save_file(tensors, str(self._partial), metadata={f"{self.kind}_ids": json.dumps(ids)})
        elif self._writer is not None:
            self._writer.close()
        else:
            raise ValueError("no rows were extracted; the input is empty.")
        self._partial.rename(self.path)
        return self.path
