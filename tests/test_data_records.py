"""RecData and building one from sequences (data/records.py): text checks, k-core."""


import pytest

from lmrec_hf.data import (
    k_core,
    load_unisrec,
)

from .toy_data import write_unisrec


def test_missing_text_drop_and_error(tmp_path):
    texts = {i: f"item {i}" for i in range(8)}
    texts[7] = "   "
    directory = write_unisrec(tmp_path / "toy", texts=texts)
    data = load_unisrec(directory)
    assert data.info["items_without_text"] == 1 and data.info["interactions_dropped_for_missing_text"] == 1
    assert len(data.items) == 7 and all(data.item_texts)
    with pytest.raises(ValueError, match=r"1 items have no text \(e\.g\. \['A7'\]\).*missing_text='drop'"):
        load_unisrec(directory, missing_text="error")


def test_k_core_is_repeated_until_stable():
    sequences = {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 4, 4], "d": [5]}
    # item 4 occurs twice in user c; with k=2 user d (one item) goes, then item 5.
    assert k_core(sequences, 2) == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 4, 4]}
    assert k_core({"a": [1, 2], "b": [1, 3]}, 2) == {}
