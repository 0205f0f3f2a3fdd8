"""Checkpoint folders checked before loading (checkpoints.py)."""

import pytest

from lmrec_hf import LMRecConfig
from lmrec_hf.checkpoints import check_checkpoint_dir, check_same_shape, load_resume_tokenizer, resume_checkpoint


def test_a_saved_checkpoint_passes(space_checkpoint):
    assert check_checkpoint_dir(space_checkpoint) == space_checkpoint


def test_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_checkpoint_dir(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a checkpoint folder"):
        check_checkpoint_dir(tmp_path / "file.txt")
    with pytest.raises(ValueError, match=r"no config.json \(it holds \['file.txt'\]\)"):
        check_checkpoint_dir(tmp_path)
    (tmp_path / "config.json").write_text('{"n_layer": 4,')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON \(line 1"):
        check_checkpoint_dir(tmp_path)


def test_resume_argument(tmp_path, space_checkpoint):
    for off in (None, False, "", "false"):
        assert resume_checkpoint(tmp_path, off) is None
    with pytest.raises(ValueError, match="has no checkpoint-N folder to resume from"):
        resume_checkpoint(tmp_path, "true")
    assert load_resume_tokenizer(space_checkpoint) is not None
    assert load_resume_tokenizer(tmp_path) is None  # no tokenizer.json: the caller trains one again, with a warning


def test_another_shape_is_refused(space_checkpoint):
    saved = LMRecConfig.from_pretrained(space_checkpoint)
    check_same_shape(space_checkpoint, saved)
    wider = LMRecConfig.from_preset("7m", vocab_size=saved.vocab_size, n_positions=saved.n_positions)
    with pytest.raises(ValueError, match=r"was trained with n_layer=4, n_embd=32.*asks for n_layer=4, n_embd=128"):
        check_same_shape(space_checkpoint, wider)
