import math

import pytest
import torch

from lmrec_hf.evaluation import evaluate_model, evaluate_popularity, metrics_from_ranks, ranks_from_scores

from .test_data import write_unisrec


def test_ranks_count_ties_against_the_model():
    scores = torch.tensor([[0.1, 0.5, 0.5, 0.9], [3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    ranks = ranks_from_scores(scores, torch.tensor([1, 0, 2]))
    assert ranks.tolist() == [2, 0, 3]  # a tie with item 2 and item 3 above; best; all tied -> last


def test_metrics_by_hand():
    m = metrics_from_ranks(torch.tensor([0, 2, 9, 10, 60]), ks=(1, 10, 50))
    assert m["recall@1"] == pytest.approx(1 / 5)
    assert m["recall@10"] == pytest.approx(3 / 5)
    assert m["recall@50"] == pytest.approx(4 / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(11)) / 5)
    assert m["ndcg@50"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(11) + 1 / math.log2(12)) / 5)


def test_metrics_need_users():
    with pytest.raises(ValueError, match="no ranks given"):
        metrics_from_ranks(torch.tensor([]))


def test_popularity_on_a_toy_split(tmp_path):
    from lmrec_hf.data import load_unisrec

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    # train parts: [0,1,2,3], [6,7,0], [3]: counts 0:2, 3:2, 1,2,6,7:1, 4,5:0
    # test targets 5, 2, 5: item 5 has count 0 and ties with 4 -> rank 7; item 2 ties with 1,6,7 -> rank 5
    result = evaluate_popularity(data, "test", ks=(6, 8))
    assert result["recall@6"] == pytest.approx(1 / 3) and result["recall@8"] == pytest.approx(1.0)


def test_pipeline_vectors_reproduce_the_ranking(tmp_path, model, tokenizer):
    """Dot products of the pipeline's user and item vectors rank exactly as evaluate_model does."""
    from transformers import pipeline

    from lmrec_hf import format_history, format_item
    from lmrec_hf.data import eval_pairs, load_unisrec

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    fe = pipeline("feature-extraction", model=str(tmp_path / "m"), trust_remote_code=True)
    pairs = eval_pairs(data, "test")
    histories = [[data.item_texts[i] for i in data.sequences[r][:p]]
                 for r, p in zip(pairs["user_row"][:], pairs["position"][:])]
    users = torch.tensor(fe(histories, projection="user"))
    items = torch.tensor(fe([format_item(t) for t in data.item_texts], projection="item"))
    targets = torch.tensor([data.sequences[r][p] for r, p in zip(pairs["user_row"][:], pairs["position"][:])])
    ranks = ranks_from_scores(users @ items.T, targets)
    expected = evaluate_model(model, tokenizer, data, "test", ks=(1, 3, 8))
    assert metrics_from_ranks(ranks, ks=(1, 3, 8)) == pytest.approx({k: v for k, v in expected.items() if "@" in k})
    assert format_history(histories[0]).startswith(data.item_texts[0])


def test_evaluation_caps_histories_at_the_models_positions(tmp_path, tokenizer):
    from lmrec_hf import LMRecConfig, LMRecForJointModeling
    from lmrec_hf.data import load_unisrec

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    config = LMRecConfig.from_preset("1.7m", vocab_size=len(tokenizer), n_positions=8)
    result = evaluate_model(LMRecForJointModeling(config), tokenizer, data, "test", max_length=256)
    assert result["users"] == 3
