"""Byte-level BPE training (tokenization_lmrec.py): EOS appended, left truncation, save and load."""

import pytest
from transformers import AutoTokenizer

from lmrec_hf import format_history, train_tokenizer


def test_tokenizer_appends_eos(tokenizer):
    for text in ["red ceramic mug.", format_history(["red ceramic mug.", "blue ceramic mug."])]:
        ids = tokenizer(text).input_ids
        assert ids[-1] == tokenizer.eos_token_id
        assert ids.count(tokenizer.eos_token_id) == 1
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_left_truncation_keeps_recent_items_and_eos(tokenizer):
    history = format_history([f"item number {i}." for i in range(40)])
    full = tokenizer(history).input_ids
    cut = tokenizer(history, truncation=True, max_length=16).input_ids
    assert len(full) > 16 and len(cut) == 16
    assert cut[-1] == tokenizer.eos_token_id
    assert cut == full[-16:]
    assert "item number 39." in tokenizer.decode(cut)


def test_right_padding(tokenizer):
    enc = tokenizer(["red ceramic mug.", format_history(["red ceramic mug.", "blue ceramic mug."])], padding=True)
    assert enc.input_ids[0][-1] == tokenizer.pad_token_id
    assert enc.attention_mask[0][-1] == 0


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = format_history(["red ceramic mug.", "green dinner plate."])
    assert loaded(text).input_ids == tokenizer(text).input_ids
    assert loaded.truncation_side == "left"
    assert (loaded.eos_token, loaded.pad_token) == (tokenizer.eos_token, tokenizer.pad_token)
    long = format_history([f"item number {i}." for i in range(40)])
    assert loaded(long, truncation=True, max_length=10).input_ids[-1] == loaded.eos_token_id


def test_vocab_size_is_respected():
    tok = train_tokenizer([format_history(["alpha beta gamma.", "delta epsilon."])] * 50, vocab_size=270)
    assert len(tok) <= 270


def test_bad_vocab_size():
    with pytest.raises(ValueError, match=r"vocab_size must be an integer of at least 259.*got 10"):
        train_tokenizer(["a"], vocab_size=10)


def test_no_texts():
    with pytest.raises(ValueError, match="no texts were given"):
        train_tokenizer([], vocab_size=300)


def test_bad_truncation_side():
    with pytest.raises(ValueError, match="truncation_side must be 'left' or 'right', got 'middle'"):
        train_tokenizer(["a"], vocab_size=300, truncation_side="middle")
