"""Encoding many texts with a model (encoding.py): batches sorted by length, vectors in the input order."""

import pytest
import torch

from lmrec_hf import format_item
from lmrec_hf.encoding import embed_texts, encode_item_texts


@pytest.mark.parametrize("projection", [None, "user", "item"])
def test_embed_texts_keeps_input_order(model, tokenizer, projection):
    model.config.projection_dim = model.config.n_embd  # widths agree here; the projection decides the vectors
    texts = ["a much longer history text. → second item.", "short.", "medium length text."]
    got = embed_texts(model, tokenizer, texts, projection, batch_size=2)
    with torch.no_grad():
        expected = torch.cat([model.embed(tokenizer(t, return_tensors="pt").input_ids, projection=projection)
                              for t in texts])
    assert torch.allclose(got, expected, atol=1e-5)


def test_items_are_formatted_and_cut_from_the_right(model, tokenizer):
    texts = ["blue ceramic mug. kitchen dining mugs cups saucers brand unknown red green", "tea pot."]
    got = encode_item_texts(model, tokenizer, texts, projection=None, max_length=5, progress=False)
    ids = tokenizer(format_item(texts[0])).input_ids
    with torch.no_grad():
        expected = model.embed(torch.tensor([ids[:4] + [tokenizer.eos_token_id]]))[0]
    assert got.shape == (2, model.config.n_embd) and torch.allclose(got[0], expected, atol=1e-5)


def test_unknown_cut_is_refused(model, tokenizer):
    with pytest.raises(ValueError, match="cut must be 'left' or 'right', got 'middle'"):
        embed_texts(model, tokenizer, ["a."], None, cut="middle")
