"""Encoding many texts with an LMRec model: batches sorted by length, vectors back in the input order. Evaluation,
the item catalog and the training objective's item bank all encode through these."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .formatting_lmrec import format_item, item_token_limit, tokenize_items


def tokenized_batches(tokenizer, texts: list[str], batch_size: int = 64, max_length: int = 256,
                      cut: str = "left") -> list[tuple[np.ndarray, dict]]:
    """
    `texts` tokenized in batches sorted by length (little padding): a list of (row indices, encoding). `cut="left"`
    truncates like a history (the end stays), `"right"` like an item (the title stays, EOS kept).
    """
    if cut not in ("left", "right"):
        raise ValueError(f"tokenized_batches: cut must be 'left' or 'right', got {cut!r}.")
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = []
    for start in range(0, len(texts), batch_size):
        index = order[start:start + batch_size]
        chunk = [texts[i] for i in index]
        batches.append((index, tokenize_items(tokenizer, chunk, max_length) if cut == "right" else
                        tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")))
    return batches


def embed_batches(model, batches: list[tuple[np.ndarray, dict]], projection: str | None, desc: str = "encoding",
                  progress: bool = True) -> torch.Tensor:
    """`model.embed` over `tokenized_batches`' batches, one vector per text, returned in the texts' order."""
    width = model.config.n_embd if projection is None else model.config.projection_dim
    out = torch.empty(sum(len(index) for index, _ in batches), width)
    device = next(model.parameters()).device
    with torch.no_grad():
        for index, enc in tqdm(batches, desc=desc, leave=False, disable=not progress):
            enc = enc.to(device)
            out[torch.as_tensor(index)] = model.embed(enc["input_ids"], enc["attention_mask"],
                                                      projection=projection).float().cpu()
    return out


def embed_texts(model, tokenizer, texts: list[str], projection: str | None, batch_size: int = 64,
                max_length: int = 256, desc: str = "encoding", cut: str = "left",
                progress: bool = True) -> torch.Tensor:
    """
    `model.embed` over many texts, in batches sorted by length (little padding), returned in the input order: W_u z
    (`projection="user"`), W_i z (`"item"`) or z (`None`). Only these vectors are kept, never hidden states.
    `cut="left"` truncates like a history (the end stays), `"right"` like an item (the title stays, EOS kept).
    """
    batches = tokenized_batches(tokenizer, texts, batch_size, max_length, cut)
    return embed_batches(model, batches, projection, desc, progress)


def encode_item_texts(model, tokenizer, item_texts: list[str], projection: str | None = "item", batch_size: int = 256,
                      max_length: int | None = None, progress: bool = True) -> torch.Tensor:
    """
    One vector per item text, row i = text i: W_i z (`projection="item"`) or z (`None`). Each text is formatted as an
    item and cut from the right to `max_length` tokens; `None` means the checkpoint's `item_max_length`, else 128.
    """
    return embed_texts(model, tokenizer, [format_item(t) for t in item_texts], projection, batch_size,
                       max_length or item_token_limit(model.config), "encoding items", cut="right", progress=progress)
