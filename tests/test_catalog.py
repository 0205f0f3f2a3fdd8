"""The item catalog beside a checkpoint (catalog.py): item texts, their W_i z, and example histories."""

import json

import torch
from safetensors.torch import load as load_safetensors

from lmrec_hf.catalog import (
    EMBEDDINGS_FILE,
    EXAMPLES_FILE,
    ITEMS_FILE,
    build_catalog,
    example_items,
    read_catalog_files,
    write_catalog,
)
from lmrec_hf.data import load_unisrec
from lmrec_hf.encoding import encode_item_texts

from .conftest import ITEMS
from .toy_data import write_unisrec


def test_catalog_round_trip(tmp_path, model, tokenizer):
    data = load_unisrec(write_unisrec(tmp_path / "toy", texts={i: ITEMS[i] for i in range(8)}))
    model.train()
    files = build_catalog(model, tokenizer, data, n_examples=2, seed=3)
    assert model.training  # the train / eval state is given back
    assert sorted(files) == sorted([ITEMS_FILE, EMBEDDINGS_FILE, EXAMPLES_FILE])
    items = json.loads(files[ITEMS_FILE])
    assert items["texts"] == data.item_texts and len(items["item_ids"]) == len(data.item_texts)
    embeds = load_safetensors(files[EMBEDDINGS_FILE])["item_embeds"]
    model.eval()
    assert torch.allclose(embeds, encode_item_texts(model, tokenizer, data.item_texts, progress=False), atol=1e-5)
    examples = json.loads(files[EXAMPLES_FILE])
    assert len(examples) <= 2 and all(set(e) == {"user_id", "history", "target"} for e in examples)
    assert read_catalog_files(tmp_path / "model") is None
    write_catalog(tmp_path / "model", files)
    assert read_catalog_files(tmp_path / "model") == files
    assert len(example_items(files)) == 3
