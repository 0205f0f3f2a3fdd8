"""Splits and pairs (data/splits.py): leave-one-out, the user split, the history window."""


import pytest

from lmrec_hf.data import (
    eval_pairs,
    history_items,
    history_window,
    lm_texts,
    load_unisrec,
    split_sequences,
    split_users,
    subsample_training_users,
    train_pairs,
)
from lmrec_hf.evaluation import evaluate_popularity

from .toy_data import SEQUENCES, write_unisrec


def test_leave_one_out_pairs(tmp_path):
    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    pairs = list(zip(train_pairs(data)["user_row"][:], train_pairs(data)["position"][:]))
    # user 0: train part [0,1,2,3] -> targets at positions 1..3; user 1: [6,7,0] -> 1..2; user 2: [3] -> none
    assert pairs == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
    valid = eval_pairs(data, "valid")
    test = eval_pairs(data, "test")
    seqs = data.sequences
    assert [seqs[r][p] for r, p in zip(valid["user_row"][:], valid["position"][:])] == [4, 1, 4]
    assert [seqs[r][p] for r, p in zip(test["user_row"][:], test["position"][:])] == [5, 2, 5]
    assert lm_texts(data)["text"][:][2] == "item 3 text"  # user 2's train part is one item


def test_user_split(tmp_path):
    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    split = split_users(data, seed=0, fractions=(0.34, 0.33, 0.33))
    labels = split.users["split"][:]
    assert sorted(labels) == ["test", "train", "valid"]
    assert split_users(data, seed=0, fractions=(0.34, 0.33, 0.33)).users["split"][:] == labels
    test_rows = eval_pairs(split, "test")["user_row"][:]
    assert [labels[r] for r in test_rows] == ["test"]
    with pytest.raises(ValueError, match="fractions must be three non-negative numbers summing to 1"):
        split_users(data, fractions=(0.5, 0.6, 0.1))


def test_history_window_is_the_most_recent_items(tmp_path):
    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    assert [10, 11, 12, 13][history_window(3, 2)] == [11, 12]
    assert [10, 11, 12, 13][history_window(3, None)] == [10, 11, 12]
    assert history_items(data, 0, 5, 3) == SEQUENCES["0"][2:5]
    with pytest.raises(ValueError, match="max_items must be a positive number of items or None, got 0"):
        history_window(3, 0)


def test_scarce_data_trains_on_a_seeded_share_and_evaluates_everyone(tmp_path):
    """subsample_training_users: only the chosen users give training pairs, LM texts and popularity counts; the
    valid and test pairs are every user's, as before."""
    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    scarce = subsample_training_users(data, 0.34, seed=0)  # round(0.34 * 3) = 1 user trains
    trains = scarce.users["trains"][:]
    assert sum(trains) == 1 and scarce.info["training_users"] == 1
    assert subsample_training_users(data, 0.34, seed=0).users["trains"][:] == trains  # seeded
    chosen = trains.index(True)
    assert [row for row, _ in split_sequences(scarce, "train")] == [chosen] and len(lm_texts(scarce)) == 1
    two = subsample_training_users(data, 0.67, seed=0)
    kept = {row for row, keep in enumerate(two.users["trains"][:]) if keep}
    assert len(kept) == 2 and set(train_pairs(two)["user_row"][:]) == kept - {2}  # user 2 has no training pair
    for split in ("valid", "test"):
        assert eval_pairs(scarce, split)["user_row"][:] == eval_pairs(data, split)["user_row"][:]
    assert evaluate_popularity(scarce, "test", ks=(8,))["users"] == 3
    assert subsample_training_users(data, 1.0).users["trains"][:] == [True, True, True]
    assert list(zip(train_pairs(subsample_training_users(data, 1.0))["user_row"][:])) == \
        list(zip(train_pairs(data)["user_row"][:]))
    split = split_users(data, seed=0, fractions=(0.34, 0.33, 0.33))  # one training user
    kept = subsample_training_users(split, 0.01, seed=3).users["trains"][:]
    assert [label for label, keep in zip(split.users["split"][:], kept) if keep] == ["train"]  # at least one, a trainer
    for share in (0, -0.1, 1.5, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match=r"share must be a fraction in \(0, 1\] of the training users"):
            subsample_training_users(data, share)


def test_cold_items_are_held_out_of_all_training_text(tmp_path):
    from lmrec_hf.data import cold_items, hold_out_cold_items, lm_texts, train_pairs
    from lmrec_hf.evaluation import eval_targets
    from lmrec_hf.runner import tokenizer_corpus

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    cold_data = hold_out_cold_items(data, 0.25, seed=0)
    cold = cold_items(cold_data)
    assert len(cold) == 2 and cold_data.info["cold_fraction"] == 0.25 and not cold_items(data)
    for before, after in zip(data.sequences, cold_data.sequences):
        assert after[-2:] == before[-2:]  # valid and test items stay
        assert after[:-2] == [i for i in before[:-2] if i not in cold]  # the training part loses the cold items
    pairs = train_pairs(cold_data)
    assert all(cold_data.sequences[r][p] not in cold for r, p in zip(pairs["user_row"][:], pairs["position"][:]))
    texts = cold_data.item_texts
    assert not any(texts[i] in text for text in lm_texts(cold_data)["text"][:] for i in cold)
    corpus = tokenizer_corpus(cold_data, lm_texts(cold_data), "task", 100, seed=0)
    assert not any(texts[i] in corpus for i in cold) and len(corpus) == len(lm_texts(cold_data)) + 6
    assert cold_data.users["item_texts"][:] == [[texts[i] for i in s] for s in cold_data.sequences]
    counts = evaluate_popularity(cold_data, "test", targets="cold")["users"], \
        evaluate_popularity(cold_data, "test", targets="warm")["users"]
    assert counts == (cold_data.info["cold_test_users"], cold_data.info["warm_test_users"]) and sum(counts) == 3
    _, _, targets = eval_targets(cold_data, "test", targets="cold")
    assert all(t in cold for t in targets.tolist())

    with pytest.raises(ValueError, match="holds out 8 of 8 items and leaves no warm user to compare with"):
        hold_out_cold_items(data, 0.99, seed=0)
    for fraction in (0, 1, 1.5):
        with pytest.raises(ValueError, match=r"the cold-item fraction must be in \(0, 1\)"):
            hold_out_cold_items(data, fraction)
    with pytest.raises(ValueError, match="splits users by cold items, but Toy holds none out"):
        eval_targets(data, "test", targets="cold")
    with pytest.raises(ValueError, match=r"`targets` must be one of \('all', 'warm', 'cold'\)"):
        eval_targets(data, "test", targets="hot")


def test_a_user_whose_training_part_is_all_cold_is_dropped(tmp_path):
    from lmrec_hf.data import cold_items, hold_out_cold_items

    data = load_unisrec(write_unisrec(tmp_path / "toy"))  # user 2 is [3, 4, 5]: its training part is [3]
    for seed in range(50):
        cold_data = hold_out_cold_items(data, 0.25, seed=seed)
        if 3 in cold_items(cold_data):
            break
    assert cold_data.info["users_left_without_history"] == 1 and len(cold_data.users) == 2
    assert all(len(seq) > 2 for seq in cold_data.sequences)
    assert "2" not in cold_data.users["user_id"][:]


def test_a_target_regime_holds_the_cold_items_out_then_keeps_a_share_of_the_users(tmp_path):
    from lmrec_hf.data import cold_items, hold_out_cold_items, target_regime

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    both = target_regime(data, 0.25, 0.5, seed=3, cold_seed=1)
    by_hand = subsample_training_users(hold_out_cold_items(data, 0.25, seed=1), 0.5, seed=3)
    assert cold_items(both) == cold_items(by_hand) and both.sequences == by_hand.sequences
    assert both.users["trains"][:] == by_hand.users["trains"][:]
    assert target_regime(data) is data  # neither: the data as it came
    with pytest.raises(ValueError, match="the cold-item fraction must be in"):
        target_regime(data, 1.5)
