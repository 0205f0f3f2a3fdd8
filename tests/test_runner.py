"""The end-to-end jobs: the LM stream, the tokenizer's corpus, training from arguments and evaluating a checkpoint."""

import json

import pytest

from lmrec_hf.arguments import load_train_config
from lmrec_hf.data import lm_texts, load_unisrec
from lmrec_hf.runner import build_lm_stream, evaluate_checkpoint, tokenizer_corpus, train_from_args

from .toy_data import write_unisrec


@pytest.fixture
def toy(tmp_path):
    return load_unisrec(write_unisrec(tmp_path / "toy"))


def test_tokenizer_corpus_from_the_stream_or_the_task(toy, tmp_path):
    """A stream with no task histories trains the tokenizer on the other corpus ("stream"), unless the tokenizer
    is asked to learn from the task's own histories ("task"); both add every item text."""
    other = load_unisrec(write_unisrec(tmp_path / "other", texts={i: f"zebra {i}" for i in range(8)}))
    stream = build_lm_stream(toy, [other], 0.0, seed=0)
    from_stream = tokenizer_corpus(toy, stream, "stream", 100, seed=0)
    from_task = tokenizer_corpus(toy, stream, "task", 100, seed=0)
    items = len(toy.item_texts)
    assert from_stream[-items:] == from_task[-items:] == toy.item_texts
    assert from_stream[:-items] and all("zebra" in text for text in from_stream[:-items])
    assert sorted(from_task[:-items]) == sorted(lm_texts(toy, "train")["text"])
    # A stream all from the task gives the same corpus either way, as before the option existed.
    assert tokenizer_corpus(toy, build_lm_stream(toy, [other], 1.0, seed=0), "stream", 100, seed=0) == from_task
    assert len(tokenizer_corpus(toy, stream, "task", 2, seed=0)) == 2 + items
    with pytest.raises(ValueError, match=r"tokenizer_source must be one of \('stream', 'task'\), got 'both'"):
        tokenizer_corpus(toy, stream, "both", 100, seed=0)


def test_agnostic_share_must_be_a_fraction(toy):
    with pytest.raises(ValueError, match=r"task_lm_ratio must be in \[0, 1\], got -0.5"):
        build_lm_stream(toy, [toy], -0.5, seed=0)


def test_train_then_evaluate_give_one_record(toy, tmp_path):
    folder = write_unisrec(tmp_path / "toy-data")
    overrides = {"data": str(folder), "preset": "1.7m", "vocab_size": 300, "max_steps": 2, "lm_batch_size": 2,
                 "rec_batch_size": 2, "max_length": 64, "output_dir": str(tmp_path / "run"), "use_cpu": True,
                 "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True, "write_catalog": False,
                 "report_to": "none", "tokenizer_texts": 50}
    result = train_from_args(*load_train_config(None, overrides))
    assert result["protocol_id"] == "full-ranking" and result["steps"] == 2 and "recall@10" in result["lmrec"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == result
    record, negatives = evaluate_checkpoint(tmp_path / "run" / "model", toy, "test", protocol="sampled",
                                            num_negatives=3, seed=1)
    assert negatives.shape == (record["lmrec"]["users"], 3) and record["protocol_id"] == "sampled-3"
    assert set(record) >= {"data", "split", "protocol", "protocol_id", "mask_history", "lmrec", "popularity",
                           "model", "seed", "git_commit", "wall_time_s"}
    assert "negatives" not in record["lmrec"] and "negatives" not in record["popularity"]
    assert "train_share" not in result


def test_a_scarce_data_run_records_its_share(tmp_path):
    folder = write_unisrec(tmp_path / "toy-data")
    overrides = {"data": str(folder), "preset": "1.7m", "vocab_size": 300, "max_steps": 1, "lm_batch_size": 2,
                 "rec_batch_size": 2, "max_length": 64, "output_dir": str(tmp_path / "run"), "use_cpu": True,
                 "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True, "write_catalog": False,
                 "report_to": "none", "tokenizer_texts": 50, "train_share": 0.67, "seed": 0}
    result = train_from_args(*load_train_config(None, overrides))
    assert result["train_share"] == 0.67 and result["training_users"] == 2 and result["lmrec"]["users"] == 3


def test_multi_task_pretraining_scores_the_held_out_target_zero_shot(tmp_path):
    """LMRec^TL: two rec tasks and an LM-only corpus at recipe shares, a held-out target scored after training."""
    a = write_unisrec(tmp_path / "a", name="Alpha")
    b = write_unisrec(tmp_path / "b", name="Beta", texts={i: f"beta thing {i}" for i in range(8)})
    c = write_unisrec(tmp_path / "c", name="Gamma", texts={i: f"gamma gadget {i}" for i in range(8)})
    target = write_unisrec(tmp_path / "d", name="Delta", texts={i: f"delta widget {i}" for i in range(8)})
    overrides = {"rec_tasks": [str(a), str(b)], "agnostic": [str(c)], "lm_probabilities": [0.4, 0.4, 0.2],
                 "holdout": [str(target)], "preset": "1.7m", "vocab_size": 300, "max_steps": 2, "lm_batch_size": 2,
                 "rec_batch_size": 2, "max_length": 64, "output_dir": str(tmp_path / "run"), "use_cpu": True,
                 "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True, "eval_split": "",
                 "report_to": "none", "tokenizer_texts": 50}
    result = train_from_args(*load_train_config(None, overrides))
    assert result["data"]["name"] == "Alpha+Beta" and result["data"]["items"] == 16
    zero_shot = result["zero_shot"]
    assert zero_shot["zero_shot"] and zero_shot["data"]["name"] == "Delta" and zero_shot["split"] == "test"
    assert {"lmrec", "popularity", "random"} <= set(zero_shot) and zero_shot["lmrec"]["users"] == 3
    tokens = json.loads((tmp_path / "run" / "model" / "tokenizer.json").read_text())["model"]["vocab"]
    assert not any("delta" in token or "widget" in token for token in tokens)  # the target never reached the tokenizer
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "Delta (zero-shot)" in card
    assert zero_shot["item_to_item"]["users"] == 3
    assert "Delta (zero-shot) (item-to-item, cosine to the last item)" in card
    assert "| Gamma | LM only | 3 | 8 | 14 | 0.2 |" in card and "Held out of training and of the tokenizer: d" in card
