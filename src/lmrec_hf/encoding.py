"""Encoding many texts with an LMRec model: batches sorted by length, vectors back in the input order. Evaluation,
the item catalog and the training objective's item bank all encode through these."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .formatting_lmrec import format_item, item_token_limit, tokenize_items


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
