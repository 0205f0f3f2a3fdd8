"""Sampler and collator invariants."""

import numpy as np
import pytest
import torch

from lmrec_hf import format_history, format_item
from lmrec_hf.collators import JointBatchSampler, JointDataset, LMRecCollator, sample_negatives
from lmrec_hf.data import lm_texts, train_pairs
from lmrec_hf.formatting_lmrec import tokenize_items
from lmrec_hf.losses import RecObjective

from .toy_data import write_unisrec


@pytest.fixture
def toy(tmp_path):
    from lmrec_hf.data import load_unisrec

    return load_unisrec(write_unisrec(tmp_path / "toy"))


def test_negatives_never_the_positive_and_uniform():
    draws = np.concatenate([sample_negatives(10, 3, 50, seed=1, example_index=i) for i in range(400)])
    assert 3 not in draws
    counts = np.bincount(draws, minlength=10)
    assert set(np.nonzero(counts)[0]) == {0, 1, 2, 4, 5, 6, 7, 8, 9}
    assert counts.max() / counts[counts > 0].min() < 1.2  # 20,000 draws over 9 items


def test_negatives_are_seeded_per_example():
    a = sample_negatives(100, 5, 8, seed=7, example_index=3)
    assert np.array_equal(a, sample_negatives(100, 5, 8, seed=7, example_index=3))
    assert not np.array_equal(a, sample_negatives(100, 5, 8, seed=7, example_index=4))
    assert not np.array_equal(a, sample_negatives(100, 5, 8, seed=8, example_index=3))


def test_negatives_need_two_items():
    with pytest.raises(ValueError, match="at least 2 items in the catalog, got 1"):
        sample_negatives(1, 0, 3, seed=0, example_index=0)


def test_batch_sampler_covers_each_rec_pair_once_per_epoch():
    sampler = JointBatchSampler(n_rec=10, n_lm=3, rec_batch_size=4, lm_batch_size=2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    rec = [i for b in batches for kind, i in b if kind == "rec"]
    lm = [i for b in batches for kind, i in b if kind == "lm"]
    assert sorted(rec) == list(range(10))
    assert len(lm) == 6 and set(lm) == {0, 1, 2}  # the LM stream cycles
    assert all(sum(kind == "lm" for kind, _ in b) == 2 for b in batches)


def test_batch_sampler_is_deterministic_per_epoch():
    a = JointBatchSampler(10, 5, 4, 2, seed=0)
    b = JointBatchSampler(10, 5, 4, 2, seed=0)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_batch_sampler_groups_rec_pairs_by_length():
    lengths = np.random.default_rng(1).integers(1, 1000, size=103)
    sampler = JointBatchSampler(103, 2, 4, 1, seed=0, rec_lengths=lengths, group_batches=5)
    batches = [[i for kind, i in b if kind == "rec"] for b in sampler]
    assert len(batches) == len(sampler) == 26
    assert sorted(i for b in batches for i in b) == list(range(103))  # each pair once per epoch
    # within a group of 5 batches (20 pairs) lengths are sorted, so a batch spans far less than a random one
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches if len(b) == 4])
    plain = [[i for kind, i in b if kind == "rec"] for b in JointBatchSampler(103, 2, 4, 1, seed=0)]
    assert spread < 0.5 * np.mean([lengths[b].max() - lengths[b].min() for b in plain if len(b) == 4])
    again = JointBatchSampler(103, 2, 4, 1, seed=0, rec_lengths=lengths, group_batches=5)
    assert list(again) == list(sampler)  # seeded: every DDP rank builds the same batches
    with pytest.raises(ValueError, match=r"rec_lengths needs one length per rec pair \(103\), got 3"):
        JointBatchSampler(103, 0, 4, 0, rec_lengths=[1, 2, 3])


def test_batch_sampler_lm_only_and_errors():
    assert len(JointBatchSampler(0, 9, 4, 4, seed=0)) == 3
    with pytest.raises(ValueError, match="both the rec pairs and the LM texts are empty"):
        JointBatchSampler(0, 0, 4, 4)
    with pytest.raises(ValueError, match="rec_batch_size=0 for 5 rec pairs"):
        JointBatchSampler(5, 0, 0, 4)


def _examples(dataset, keys):
    return [dataset[k] for k in keys]


def test_rec_batch_per_user_layout(toy, tokenizer):
    pairs = train_pairs(toy)
    dataset = JointDataset(pairs, lm_texts(toy))
    collator = LMRecCollator(tokenizer, toy, RecObjective(num_negatives=3, negative_layout="per_user"), seed=0)
    batch = collator(_examples(dataset, [("rec", 0), ("rec", 4), ("lm", 1)]))
    assert batch["user_input_ids"].shape[0] == 2 and batch["item_input_ids"].shape[0] == 2 * 4
    assert torch.equal(batch["rec_labels"], torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]]))
    # user row 1 at position 2: history = items 6, 7; target item 0
    expected_history = tokenizer(format_history([toy.item_texts[6], toy.item_texts[7]])).input_ids
    row = batch["user_input_ids"][1][batch["user_attention_mask"][1].bool()].tolist()
    assert row == expected_history and row[-1] == tokenizer.eos_token_id
    target = batch["item_input_ids"][4][batch["item_attention_mask"][4].bool()].tolist()
    assert target == tokenizer(format_item(toy.item_texts[0])).input_ids
    assert batch["input_ids"].shape[0] == 1 and (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_rec_batch_shared_layout(toy, tokenizer):
    dataset = JointDataset(train_pairs(toy), None)
    collator = LMRecCollator(tokenizer, toy, RecObjective(num_negatives=2, negative_layout="shared"), seed=0)
    batch = collator(_examples(dataset, [("rec", i) for i in range(5)]))
    labels = batch["rec_labels"]
    assert labels.shape == (5, batch["item_input_ids"].shape[0])
    assert torch.equal(labels.sum(1), torch.ones(5))
    assert batch["item_input_ids"].shape[0] <= 5 + 5 * 2  # each distinct item encoded once
    assert "input_ids" not in batch


@pytest.mark.parametrize("prefix_pairs", [False, True])
def test_item_ids_name_the_catalog_row_of_each_item_row(toy, tokenizer, prefix_pairs):
    dataset = JointDataset(train_pairs(toy), None)
    objective = RecObjective(num_negatives=2, negative_layout="shared", prefix_pairs=prefix_pairs,
                             item_bank_refresh_steps=5)
    collator = LMRecCollator(tokenizer, toy, objective, seed=0)
    batch = collator(_examples(dataset, [("rec", i) for i in range(5)]))
    ids = batch["item_ids"]
    assert ids.shape == (batch["item_input_ids"].shape[0],) and len(set(ids.tolist())) == len(ids)
    for row, item in enumerate(ids.tolist()):  # each item row encodes that catalog item
        encoded = batch["item_input_ids"][row][batch["item_attention_mask"][row].bool()].tolist()
        assert encoded == tokenize_items(tokenizer, [format_item(toy.item_texts[item])], 64)["input_ids"][0].tolist()
    # each row's positive is the target of its pair
    positives = batch["rec_labels"] == 1.0
    eos = positives[torch.arange(5), (batch["user_positions"] >= 0).sum(1) - 1] if prefix_pairs else positives
    targets = [toy.sequences[dataset[("rec", i)]["user_row"]][dataset[("rec", i)]["position"]] for i in range(5)]
    assert [ids[row.nonzero().item()].item() for row in eos] == targets
    plain = LMRecCollator(tokenizer, toy, RecObjective(negative_layout="shared"))
    assert "item_ids" not in plain(_examples(dataset, [("rec", 0)]))


def test_history_is_capped_to_recent_items(toy, tokenizer):
    collator = LMRecCollator(tokenizer, toy, max_history_items=2)
    assert collator.history_text(0, 4) == format_history([toy.item_texts[2], toy.item_texts[3]])


def test_prefix_batch_reads_every_boundary(toy, tokenizer):
    dataset = JointDataset(train_pairs(toy), None)
    objective = RecObjective(num_negatives=1, prefix_pairs=True, lm_on_rec_histories=True)
    collator = LMRecCollator(tokenizer, toy, objective, seed=0)
    batch = collator(_examples(dataset, [("rec", 1), ("rec", 4)]))
    # example 1: user 0 at position 2 -> history items 0, 1; example 4: user 1 at position 2 -> items 6, 7
    positions = batch["user_positions"]
    assert positions.shape == (2, 2)
    for row in range(2):
        ids = batch["user_input_ids"][row]
        assert tokenizer.decode(ids[positions[row, 0]]).strip() == "→"
        assert ids[positions[row, 1]] == tokenizer.eos_token_id
    labels = batch["rec_labels"]
    assert torch.equal((labels == 1).sum(-1), torch.ones(2, 2, dtype=torch.long))
    seqs = toy.sequences
    item_texts = tokenizer.batch_decode(batch["item_input_ids"], skip_special_tokens=True)
    positive = [[item_texts[c] for c in labels[r].argmax(-1).tolist()] for r in range(2)]
    assert positive[0] == [toy.item_texts[seqs[0][1]], toy.item_texts[seqs[0][2]]]
    assert positive[1] == [toy.item_texts[seqs[1][1]], toy.item_texts[seqs[1][2]]]
    # the user's own items are ignored (-1), not negatives, except where they are the positive
    own = {toy.item_texts[i] for i in seqs[0][1:3]}
    for column, text in enumerate(item_texts):
        if text in own:
            assert set(labels[0, :, column].tolist()) <= {1.0, -1.0}
    assert torch.equal(batch["user_labels"][batch["user_attention_mask"] == 1],
                       batch["user_input_ids"][batch["user_attention_mask"] == 1])


def test_eval_examples_use_the_eos_feature(toy, tokenizer):
    collator = LMRecCollator(tokenizer, toy, RecObjective(num_negatives=2, prefix_pairs=True), seed=0)
    batch = collator([{"kind": "rec_eval", "index": 0, "user_row": 0, "position": 4}])
    assert "user_positions" not in batch and batch["rec_labels"].shape == (1, 3)


def test_prefix_positions_with_untidy_item_texts(tokenizer):
    """Arrow offsets are computed on the formatted text, so double spaces inside items cannot shift them."""
    from datasets import Dataset

    from lmrec_hf.data import RecData

    texts = ["red  ceramic   mug.", "blue\nmug.", "green plate."]
    data = RecData("untidy", Dataset.from_dict({"user_id": ["u"], "item_ids": [[0, 1, 2]],
                                                "item_texts": [texts]}),
                   Dataset.from_dict({"item_id": ["a", "b", "c"], "text": texts}))
    collator = LMRecCollator(tokenizer, data, RecObjective(num_negatives=0, prefix_pairs=True), seed=0)
    batch = collator([{"kind": "rec", "index": 0, "user_row": 0, "position": 2}])
    ids = batch["user_input_ids"][0]
    assert tokenizer.decode(ids[batch["user_positions"][0, 0]]).strip() == "→"
    assert ids[batch["user_positions"][0, 1]] == tokenizer.eos_token_id


def test_logq_counts_training_targets_only(toy, tokenizer):
    collator = LMRecCollator(tokenizer, toy, RecObjective(prefix_pairs=True, logq_correction=True))
    # training parts [0,1,2,3], [6,7,0], [3]: targets 1, 2, 3, 7, 0; items 4 and 5 are only valid/test targets
    expected = np.zeros(8)
    expected[[0, 1, 2, 3, 7]] = 1 / 5
    assert np.allclose(collator.target_share, expected)
    batch = collator([{"kind": "rec", "index": 0, "user_row": 0, "position": 3}])
    assert batch["item_log_q"].shape == (batch["item_input_ids"].shape[0],)


def test_items_are_cut_from_the_right_to_item_max_length(toy, tokenizer):
    """A capped item keeps its first tokens (the title) and its EOS; histories keep their own left cut."""
    long_text = "blue ceramic mug. kitchen dining mugs cups saucers brand unknown red green"
    toy.item_texts[0] = long_text
    dataset = JointDataset(train_pairs(toy), None)
    collator = LMRecCollator(tokenizer, toy, RecObjective(num_negatives=0, negative_layout="shared"), seed=0,
                             item_max_length=6)
    batch = collator(_examples(dataset, [("rec", 4)]))  # target item 0
    full = tokenizer(format_item(long_text)).input_ids
    assert len(full) > 6 and batch["item_input_ids"].shape[1] == 6
    row = batch["item_input_ids"][0][batch["item_attention_mask"][0].bool()].tolist()
    assert row == full[:5] + [tokenizer.eos_token_id]
    uncapped = LMRecCollator(tokenizer, toy, RecObjective(num_negatives=0, negative_layout="shared"), seed=0)
    assert uncapped(_examples(dataset, [("rec", 4)]))["item_input_ids"].shape[1] == len(full)


def test_tokenize_items_rejects_a_cap_without_room_for_the_eos(tokenizer):
    from lmrec_hf.formatting_lmrec import tokenize_items

    with pytest.raises(ValueError, match="at least 2"):
        tokenize_items(tokenizer, ["red mug."], max_length=1)


def test_prefix_batch_carries_log_q_only_when_asked(toy, tokenizer):
    example = [{"kind": "rec", "index": 0, "user_row": 0, "position": 3}]
    plain = LMRecCollator(tokenizer, toy, RecObjective(prefix_pairs=True))(example)
    assert "item_log_q" not in plain and "item_ids" not in plain and "user_labels" not in plain


# ---------------------------------------------------------------------------------------------------------------
# Property: prefix training reads each feature at the token that covers the arrow after that item

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lmrec_hf.collators import arrow_tokens  # noqa: E402
from lmrec_hf.formatting_lmrec import clean_item_text  # noqa: E402

from .test_formatting_lmrec import ITEM_TEXTS  # noqa: E402


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(ITEM_TEXTS, min_size=2, max_size=6), max_length=st.integers(2, 48))
def test_prefix_positions_sit_on_the_item_boundaries(tokenizer, items, max_length):
    pieces = [clean_item_text(t) for t in items]
    if not all(pieces):
        return
    text = format_history(pieces)
    arrows = [i for i, c in enumerate(text) if c == "→"]
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    spans = np.array(enc["offset_mapping"][:-1]).reshape(-1, 2)  # real tokens without the EOS
    token, inside = arrow_tokens(pieces, spans)
    assert len(token) == len(arrows) == len(pieces) - 1
    first_kept = spans[0, 0] if len(spans) else len(text)
    for k, (t, kept) in enumerate(zip(token, inside)):
        # an arrow is kept exactly when truncation left a token covering it, and then that is the last such token
        assert kept == (len(spans) > 0 and arrows[k] >= first_kept)
        if kept:
            assert spans[t, 0] <= arrows[k] < spans[t, 1]
            assert t + 1 == len(spans) or not spans[t + 1, 0] <= arrows[k] < spans[t + 1, 1]
            assert text[: spans[t, 1]].count("→") == k + 1  # the feature has seen items 0..k and no more
