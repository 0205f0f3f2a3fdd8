"""
The item catalog that travels with a checkpoint, so that a Space or a service can recommend without re-encoding
every item: `catalog/items.json` (ids and texts), `catalog/item_embeddings.safetensors` (`item_embeds`, W_i z_i,
row i = item i) and `catalog/examples.json` (a few real test-split histories to start from).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from safetensors.torch import save as save_tensors

from .data import RecData, split_sequences
from .evaluation import encode_items

CATALOG_DIR = "catalog"
ITEMS_FILE = f"{CATALOG_DIR}/items.json"
EMBEDDINGS_FILE = f"{CATALOG_DIR}/item_embeddings.safetensors"
EXAMPLES_FILE = f"{CATALOG_DIR}/examples.json"


def build_catalog(model, tokenizer, data: RecData, n_examples: int = 5, max_example_items: int = 8,
                  seed: int = 0, max_length: int | None = None) -> dict[str, bytes]:
    """
    The catalog files as {path in the repo: bytes}. Examples are test-split histories of `seed`-chosen users, their
    last `max_example_items` items, with the held-out target beside them.

    Example:
    ```python
    >>> files = build_catalog(model, tokenizer, data)
    >>> sorted(files)
    ['catalog/examples.json', 'catalog/item_embeddings.safetensors', 'catalog/items.json']
    ```
    """
    was_training = model.training
    model.eval()
    item_embeds = encode_items(model, tokenizer, data, max_length=max_length)  # (n_items, d)
    model.train(was_training)
    item_ids = [str(i) for i in data.items["item_id"][:]] if "item_id" in data.items.column_names \
        else [str(i) for i in range(len(data.items))]
    texts = data.item_texts
    test = [(row, seq) for row, seq in split_sequences(data, "test") if len(seq) >= 3]
    rng = random.Random(seed)
    examples = []
    user_ids = data.users["user_id"][:] if "user_id" in data.users.column_names else None
    for row, seq in rng.sample(test, min(n_examples, len(test))):
        history, target = seq[:-1][-max_example_items:], seq[-1]
        examples.append({"user_id": str(user_ids[row]) if user_ids is not None else str(row),
                         "history": [texts[i] for i in history], "target": texts[target]})
    metadata = {"projection": "item", "items": str(len(texts)), "dim": str(item_embeds.shape[1]),
                "data": data.name}
    return {
        ITEMS_FILE: json.dumps({"data": data.name, "item_ids": item_ids, "texts": texts}, ensure_ascii=False).encode(),
        EMBEDDINGS_FILE: save_tensors({"item_embeds": item_embeds.contiguous()}, metadata=metadata),
        EXAMPLES_FILE: json.dumps(examples, ensure_ascii=False, indent=1).encode(),
    }


def write_catalog(model_dir: str | Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = Path(model_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def read_catalog_files(model_dir: str | Path) -> dict[str, bytes] | None:
    """The catalog files saved beside a checkpoint, or None when there is none (or only part of one)."""
    paths = {name: Path(model_dir) / name for name in (ITEMS_FILE, EMBEDDINGS_FILE, EXAMPLES_FILE)}
    if not all(p.exists() for p in paths.values()):
        return None
    return {name: p.read_bytes() for name, p in paths.items()}


def example_items(files: dict[str, bytes], n: int = 3) -> list[str]:
    """A few item texts from the catalog's first example history, for the model card's code sample."""
    examples = json.loads(files[EXAMPLES_FILE])
    items = [t for e in examples for t in e["history"]]
    return items[:n] if len(items) >= n else json.loads(files[ITEMS_FILE])["texts"][:n]

