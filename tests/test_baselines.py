"""The ID transformer baseline: a max_steps=2 smoke run through the Trainer, and the shared evaluation protocol."""

import pytest
import torch
from transformers import TrainingArguments

from lmrec_hf.baselines import IDTransformerRecommender, evaluate_id_transformer, train_id_transformer
from lmrec_hf.data import load_unisrec

from .toy_data import write_unisrec


def _args(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path / "idt"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
                  save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
                  remove_unused_columns=False, logging_steps=1)
    values.update(overrides)
    return TrainingArguments(**values)


def test_two_steps_then_both_protocols(tmp_path):
    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    model = train_id_transformer(data, _args(tmp_path), n_embd=16, n_layer=1, n_head=2, max_len=8)
    full = evaluate_id_transformer(model, data, "test", ks=(1, 5))
    sampled = evaluate_id_transformer(model, data, "test", ks=(1, 5), protocol="sampled", num_negatives=7)
    assert full["users"] == 3 and 0.0 <= full["recall@1"] <= full["recall@5"] <= 1.0
    # With every other item as a candidate, the sampled protocol is the full ranking.
    assert sampled["recall@5"] == full["recall@5"]


def test_scores_read_the_last_real_position():
    torch.manual_seed(0)
    model = IDTransformerRecommender(n_items=6, n_embd=8, n_layer=1, n_head=2, max_len=4, dropout=0.0).eval()
    alone = model.score([[1, 2]])
    padded = model.score([[1, 2], [3, 4, 5, 0]])[:1]
    torch.testing.assert_close(alone, padded)
    assert model.score([[1, 2, 3, 4, 5, 0]]).shape == (1, 6)  # longer than max_len: the last 4 items are read


def test_training_learns_the_training_successions(tmp_path):
    data = load_unisrec(write_unisrec(tmp_path / "toy"))  # training parts: [0, 1, 2, 3], [6, 7, 0], [3]
    model = train_id_transformer(data, _args(tmp_path, max_steps=60, learning_rate=3e-2), n_embd=16, n_layer=1,
                                 n_head=2, max_len=8, dropout=0.0)
    assert model.score([[0, 1]]).argmax().item() == 2
    assert model.score([[6, 7]]).argmax().item() == 0


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="n_embd divisible by n_head.*n_embd=10, n_head=4"):
        IDTransformerRecommender(n_items=5, n_embd=10, n_head=4)


def test_cold_items_share_one_embedding_in_the_id_transformer(tmp_path):
    from lmrec_hf.data import cold_items, hold_out_cold_items

    data = hold_out_cold_items(load_unisrec(write_unisrec(tmp_path / "toy")), 0.25, seed=0)
    args = TrainingArguments(output_dir=str(tmp_path / "id"), max_steps=2, per_device_train_batch_size=2,
                             report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no",
                             remove_unused_columns=False)
    model = train_id_transformer(data, args, n_embd=8, n_layer=1, n_head=1, max_len=8)
    cold = sorted(cold_items(data))
    weight = model.trunk.wte.weight
    torch.testing.assert_close(weight[cold[0]], weight[cold[1]], rtol=0, atol=0)
    warm = [i for i in range(8) if i not in cold]
    torch.testing.assert_close(weight[cold[0]], weight[warm].mean(0))
    result = evaluate_id_transformer(model, data, "test", targets="cold")
    assert result["users"] == data.info["cold_test_users"]
