"""load_data (data/load.py): format detection and the prepared-folder cache."""

import json

import pytest

from lmrec_hf.data import (
    detect_format,
    load_data,
    load_prepared,
    load_unisrec,
)

from .toy_data import SHARED, write_unisrec


def test_prepared_cache_round_trip(tmp_path):
    directory = write_unisrec(tmp_path / "toy")
    assert detect_format(directory) == "unisrec"
    first = load_data(directory, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and (cached[0] / "meta.json").exists()
    second = load_data(directory, cache_dir=tmp_path / "cache")
    assert second.sequences == first.sequences and second.item_texts == first.item_texts
    meta = json.loads((cached[0] / "meta.json").read_text())
    assert meta["users"] == 3 and meta["protocol"] == "leave_one_out"
    assert load_prepared(cached[0]).stats() == first.stats()
    assert detect_format(cached[0]) == "prepared"


def test_missing_data_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Data path .*nowhere does not exist"):
        load_data(tmp_path / "nowhere")


@pytest.mark.slow
def test_scientific_statistics():
    assert load_unisrec(SHARED / "amazon-scientific").stats() == {"users": 8442, "items": 4385, "interactions": 59427}
