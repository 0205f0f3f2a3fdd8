import math

import numpy as np
import pytest
import torch

from lmrec_hf.evaluation import ALL_KS as ALL
from lmrec_hf.evaluation import evaluate_model, evaluate_popularity, metrics_from_ranks, ranks_from_scores

from .toy_data import write_unisrec


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


def test_mrr_by_hand():
    m = metrics_from_ranks(torch.tensor([0, 1, 4, 30]), ks=(5, 50))
    assert m["mrr@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 4)
    assert m["mrr@50"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 31) / 4)


def test_sampled_negatives_are_reproducible_and_exclude_the_target():
    from lmrec_hf.evaluation import draw_sampled_negatives

    targets = [0, 5, 9, 3] * 50
    a = draw_sampled_negatives(10, targets, num_negatives=9, seed=1)
    assert np.array_equal(a, draw_sampled_negatives(10, targets, num_negatives=9, seed=1))
    assert not np.array_equal(a, draw_sampled_negatives(10, targets, num_negatives=9, seed=2))
    for row, target in zip(a, targets):
        assert target not in row and len(set(row.tolist())) == 9  # distinct, and all 9 others when K = n - 1
    with pytest.raises(ValueError, match="Cannot draw 10 negatives from a catalog of 10 items"):
        draw_sampled_negatives(10, targets, num_negatives=10)


def test_rank_targets_with_masking_and_candidates():
    from lmrec_hf.evaluation import rank_targets

    scores = torch.tensor([[0.9, 0.8, 0.1, 0.5, 0.7]])
    target = torch.tensor([3])
    assert rank_targets(scores, target).tolist() == [3]
    assert rank_targets(scores, target, histories=[[0, 1, 3]]).tolist() == [1]  # 0 and 1 masked, the target kept
    assert rank_targets(scores, target, candidates=np.array([[2, 4]])).tolist() == [1]  # only item 4 above
    assert rank_targets(scores, target, histories=[[4]], candidates=np.array([[2, 4]])).tolist() == [0]


def test_protocols_on_a_toy_split(tmp_path, model, tokenizer):
    from lmrec_hf.data import eval_pairs, load_unisrec
    from lmrec_hf.evaluation import draw_sampled_negatives

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    full = evaluate_model(model, tokenizer, data, "test", ks=ALL)
    assert set(full) >= {f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in ALL}
    pairs = eval_pairs(data, "test")
    targets = [data.sequences[r][p] for r, p in zip(pairs["user_row"][:], pairs["position"][:])]
    everything_else = draw_sampled_negatives(8, targets, num_negatives=7, seed=0)
    sampled = evaluate_model(model, tokenizer, data, "test", ks=ALL, protocol="sampled", negatives=everything_else)
    assert {k: v for k, v in sampled.items() if "@" in k} == pytest.approx({k: v for k, v in full.items() if "@" in k})
    assert np.array_equal(sampled["negatives"], everything_else)
    with pytest.raises(ValueError, match="Cannot draw 100 negatives from a catalog of 8 items"):
        evaluate_model(model, tokenizer, data, "test", protocol="sampled")
    masked = evaluate_model(model, tokenizer, data, "test", ks=ALL, mask_history=True)
    assert all(masked[f"recall@{k}"] >= full[f"recall@{k}"] for k in ALL)  # masking only removes competitors
    popular = evaluate_popularity(data, "test", ks=ALL, protocol="sampled", negatives=everything_else)
    assert popular["recall@5"] == pytest.approx(evaluate_popularity(data, "test", ks=ALL)["recall@5"])
    with pytest.raises(ValueError, match=r"protocol must be one of \('full', 'sampled'\) .*got 'sampled100'"):
        evaluate_popularity(data, "test", protocol="sampled100")


def test_items_are_encoded_with_the_checkpoints_item_max_length(tmp_path, model, tokenizer):
    """evaluate_model, the catalog and the pipeline all read `item_max_length` from the config and cut items from the
    right: the title stays, the EOS is kept."""
    from transformers import pipeline

    from lmrec_hf import format_item
    from lmrec_hf.catalog import build_catalog
    from lmrec_hf.data import load_unisrec
    from lmrec_hf.evaluation import encode_items

    long_text = "blue ceramic mug. kitchen dining mugs cups saucers brand unknown red green"
    texts = {i: long_text if i == 0 else f"item {i} text" for i in range(8)}
    data = load_unisrec(write_unisrec(tmp_path / "toy", texts=texts))
    model.config.item_max_length = 5
    ids = tokenizer(format_item(long_text)).input_ids
    cut = torch.tensor([ids[:4] + [tokenizer.eos_token_id]])
    expected = model.embed(cut, projection="item")[0]
    assert len(ids) > 5
    assert torch.allclose(encode_items(model, tokenizer, data)[0], expected, atol=1e-5)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    fe = pipeline("feature-extraction", model=str(tmp_path / "m"), trust_remote_code=True)
    assert torch.allclose(fe([format_item(long_text)], projection="item", return_tensors=True)[0], expected,
                          atol=1e-5)
    from safetensors.torch import load as load_safetensors

    files = build_catalog(model, tokenizer, data)
    assert torch.allclose(load_safetensors(files["catalog/item_embeddings.safetensors"])["item_embeds"][0],
                          expected, atol=1e-5)



def test_one_evaluation_record(tmp_path):
    from lmrec_hf.data import load_unisrec
    from lmrec_hf.evaluation import evaluation_record

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    negatives = np.zeros((3, 7), dtype=np.int64)
    record = evaluation_record(data, "test", {"recall@10": 0.5, "users": 3, "negatives": negatives},
                               {"recall@10": 0.1, "users": 3}, protocol="sampled", negatives=negatives, seed=4,
                               data_path="somewhere")
    assert record["protocol_id"] == "sampled-7" and record["seed"] == 4 and "negatives" not in record["lmrec"]
    assert record["protocol"] == "target among 7 sampled negatives, ties against the model, history items not masked"
    assert record["data"] == {"name": data.name, "path": "somewhere", **data.stats()}
    full = evaluation_record(data, "valid", {"recall@10": 0.5}, mask_history=True)
    assert full["protocol_id"] == "full-ranking" and "masked" in full["protocol"] and "popularity" not in full



def test_random_ranking_is_seeded_and_ranks_the_whole_catalogue(tmp_path):
    from lmrec_hf.data import load_unisrec
    from lmrec_hf.evaluation import evaluate_random

    from .toy_data import write_unisrec

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    first = evaluate_random(data, "test", ks=(1, 8), seed=1)
    assert first == evaluate_random(data, "test", ks=(1, 8), seed=1)
    assert first["recall@8"] == 1.0 and first["users"] == 3  # 8 items: every target is in the top 8


def test_item_to_item_ranks_by_cosine_to_the_last_history_item(tmp_path, model, tokenizer):
    """The zero-shot scorer with no user tower, against the pipeline's item features by hand: cosine of z_i (or
    W_i z_i) to the user's last item. Unmasked, that last item ranks first, so a target equal to it scores rank 1."""
    from transformers import pipeline

    from lmrec_hf import format_item
    from lmrec_hf.data import eval_pairs, load_unisrec
    from lmrec_hf.evaluation import evaluate_item_to_item

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    fe = pipeline("feature-extraction", model=str(tmp_path / "m"), trust_remote_code=True)
    pairs = eval_pairs(data, "test")
    rows, positions = pairs["user_row"][:], pairs["position"][:]
    last = [data.sequences[r][p - 1] for r, p in zip(rows, positions)]
    targets = torch.tensor([data.sequences[r][p] for r, p in zip(rows, positions)])
    for projection in (None, "item"):
        items = torch.nn.functional.normalize(torch.tensor(fe([format_item(t) for t in data.item_texts],
                                                              projection=projection)), dim=1)
        expected = metrics_from_ranks(ranks_from_scores(items[last] @ items.T, targets), ks=(1, 3, 8))
        got = evaluate_item_to_item(model, tokenizer, data, "test", ks=(1, 3, 8), projection=projection)
        assert {k: v for k, v in got.items() if "@" in k} == pytest.approx(expected, abs=1e-6)
    for r, p, item in zip(rows, positions, last):  # repeats: each target is the user's last item itself
        data.sequences[r][p] = item
    assert evaluate_item_to_item(model, tokenizer, data, "test", ks=(1,))["recall@1"] == 1.0


def test_cold_and_warm_groups_score_as_their_own_calls_from_one_encoding(tmp_path, model, tokenizer, monkeypatch):
    """A cold-start run's three records (all, cold, warm users) come from one encoding of the split's histories and
    read as three `evaluate_model` calls; bad group requests are refused."""
    import lmrec_hf.evaluation
    from lmrec_hf.data import cold_items, hold_out_cold_items, load_unisrec
    from lmrec_hf.evaluation import evaluate_model_groups

    data = hold_out_cold_items(load_unisrec(write_unisrec(tmp_path / "toy")), 0.25, seed=0)
    cold = cold_items(data)
    encoded, real_embed = [], lmrec_hf.evaluation.embed_texts

    def embed(model, tokenizer, texts, *args, **kwargs):
        encoded.append(len(texts))
        return real_embed(model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(lmrec_hf.evaluation, "embed_texts", embed)
    for options in ({}, {"protocol": "sampled", "num_negatives": 3, "max_users": 2, "seed": 1}):
        encoded.clear()
        together = evaluate_model_groups(model, tokenizer, data, "test", ks=(1, 5), **options)
        assert len(encoded) == 1 and encoded[0] <= 3  # one encoding of the 3 test histories, not one per group
        for group in ("all", "cold", "warm"):
            alone = evaluate_model(model, tokenizer, data, "test", ks=(1, 5), targets=group, **options)
            assert np.array_equal(together[group].pop("negatives", 0), alone.pop("negatives", 0))
            assert together[group] == pytest.approx(alone, abs=1e-9)
    full = evaluate_model_groups(model, tokenizer, data, "test", ks=(1, 5))
    assert full["cold"]["users"] >= 1 and full["warm"]["users"] >= 1 and cold
    assert full["cold"]["users"] + full["warm"]["users"] == full["all"]["users"] == 3
    with pytest.raises(ValueError, match="at most once, got \\('all', 'all'\\)"):
        evaluate_model_groups(model, tokenizer, data, "test", ("all", "all"))
    with pytest.raises(ValueError, match="one `negatives` array fits one group's users, but 2 groups"):
        evaluate_model_groups(model, tokenizer, data, "test", ("cold", "warm"), protocol="sampled",
                              negatives=np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="targets"):
        evaluate_model_groups(model, tokenizer, data, "test", ("hot",))
