"""Several recommendation tasks as one (data/tasks.py), for LMRec^TL pretraining."""

import pytest

from lmrec_hf.data import (
    combine_tasks,
    load_unisrec,
    same_source,
    split_sequences,
    split_users,
    subsample_training_users,
)

from .toy_data import write_unisrec


@pytest.fixture
def two_tasks(tmp_path):
    alpha = load_unisrec(write_unisrec(tmp_path / "a", name="Alpha"))
    beta = load_unisrec(write_unisrec(tmp_path / "b", name="Beta", texts={i: f"beta thing {i}" for i in range(8)}))
    return alpha, beta


def test_tasks_become_one_catalogue_of_namespaced_items(two_tasks):
    alpha, beta = two_tasks
    data = combine_tasks([alpha, beta])
    assert data.name == "Alpha+Beta" and len(data.items) == len(alpha.items) + len(beta.items)
    assert data.items["item_id"][0] == "Alpha:A0" and data.items["item_id"][len(alpha.items)] == "Beta:A0"
    assert data.users["user_id"][:2] == ["Alpha:0", "Alpha:1"]
    # every user's items point at its own task's texts, after the offset
    for seq, texts in zip(data.sequences, data.users["item_texts"]):
        assert [data.item_texts[i] for i in seq] == texts
    assert data.info["tasks"] == {"Alpha": alpha.stats(), "Beta": beta.stats()}
    assert data.stats()["interactions"] == alpha.stats()["interactions"] + beta.stats()["interactions"]
    assert combine_tasks([alpha]) is alpha
    assert "trains" not in data.users.column_names


def test_a_scarce_share_survives_combining(two_tasks):
    alpha, beta = two_tasks
    scarce = subsample_training_users(alpha, 0.34, seed=0)
    data = combine_tasks([scarce, beta])
    assert data.users["trains"][:] == scarce.users["trains"][:] + [True] * len(beta.users)
    assert len(split_sequences(data, "train")) == 1 + len(beta.users)


def test_bad_task_lists(two_tasks):
    alpha, beta = two_tasks
    with pytest.raises(ValueError, match="no task given"):
        combine_tasks([])
    with pytest.raises(ValueError, match=r"task names must differ, got \['Alpha', 'Alpha'\]"):
        combine_tasks([alpha, alpha])
    with pytest.raises(ValueError, match="needs ordered histories split leave-one-out"):
        combine_tasks([alpha, split_users(beta, seed=0)])


def test_same_source(tmp_path):
    (tmp_path / "x" / "inner").mkdir(parents=True)
    assert same_source(tmp_path / "x", str(tmp_path / "x" / ".." / "x"))
    assert same_source(tmp_path / "x", tmp_path / "x" / "inner")  # a file or folder inside the source
    assert same_source("online-retail", "online-retail")
    assert same_source(tmp_path, tmp_path / "x")  # a folder holding the source counts too
    (tmp_path / "y").mkdir()
    assert not same_source(tmp_path / "x", tmp_path / "y") and not same_source("online-retail", tmp_path / "y")
