"""Shared tiny fixtures: one tokenizer and one tiny LMRec per session, copied per test."""

import copy

import pytest
import torch

from lmrec_hf import LMRecConfig, LMRecForJointModeling, format_history, train_tokenizer

ITEMS = [
    "red ceramic mug.",
    "blue ceramic mug.",
    "green dinner plate.",
    "stainless tea pot.",
    "electric kettle 1.7l.",
    "paper coffee filters.",
    "glass storage jar.",
    "bamboo cutting board.",
]

HISTORIES = [
    ITEMS[:3],
    ITEMS[3:5],
    [ITEMS[5]],
    ITEMS[1:7],
    [ITEMS[7], ITEMS[0]],
]


@pytest.fixture(scope="session")
def tokenizer():
    corpus = [format_history(h) for h in HISTORIES] * 10 + ITEMS * 10
    return train_tokenizer(corpus, vocab_size=400, model_max_length=64)


@pytest.fixture(scope="session")
def _session_model(tokenizer):
    torch.manual_seed(0)
    config = LMRecConfig.from_preset(
        "1.7m",
        vocab_size=len(tokenizer),
        n_positions=64,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LMRecForJointModeling(config).eval()


@pytest.fixture
def model(_session_model):
    return copy.deepcopy(_session_model)


@pytest.fixture
def batch(tokenizer):
    """Right-padded histories of mixed lengths, with LM labels."""
    texts = [format_history(h) for h in HISTORIES]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    return {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "labels": labels}


@pytest.fixture
def items(tokenizer):
    enc = tokenizer(ITEMS, padding=True, return_tensors="pt")
    return {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}


@pytest.fixture(scope="session")
def space_checkpoint(tmp_path_factory, _session_model, tokenizer):
    """A saved checkpoint with its item catalog (the toy data set's 8 items), as `lmrec-hf train` leaves one."""
    from lmrec_hf.catalog import build_catalog, write_catalog
    from lmrec_hf.data import load_unisrec

    from .toy_data import write_unisrec

    folder = tmp_path_factory.mktemp("space") / "model"
    _session_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    data = load_unisrec(write_unisrec(folder.parent / "toy", texts={i: ITEMS[i] for i in range(8)}))
    write_catalog(folder, build_catalog(_session_model, tokenizer, data))
    return folder
