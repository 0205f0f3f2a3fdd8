"""File readers (data/readers.py): UniSRec atomic files, interactions tables, agnostic corpora."""

import gzip
import os

import pytest

from lmrec_hf.data import (
    load_agnostic,
    load_interactions,
    load_unisrec,
)

from .toy_data import SEQUENCES, write_unisrec


@pytest.mark.parametrize("gz_train", [False, True])
def test_unisrec_rebuilds_full_sequences(tmp_path, gz_train):
    data = load_unisrec(write_unisrec(tmp_path / "toy", gz_train=gz_train))
    assert dict(zip(data.users["user_id"][:], data.sequences)) == SEQUENCES
    assert data.stats() == {"users": 3, "items": 8, "interactions": 14}
    assert data.item_texts[0] == "item 0 text"  # whitespace collapsed
    assert data.users[0]["item_texts"][:2] == ["item 0 text", "item 1 text"]


def test_unisrec_bad_line_names_file_and_line(tmp_path):
    directory = write_unisrec(tmp_path / "toy")
    path = directory / "Toy.valid.inter"
    lines = path.read_text().splitlines()
    lines[2] = "1\t6 7 x"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"Toy\.valid\.inter, line 3: expected 3 tab-separated fields"):
        load_unisrec(directory)


def test_unisrec_bad_header(tmp_path):
    directory = write_unisrec(tmp_path / "toy")
    (directory / "Toy.test.inter").write_text("user\titems\ttarget\n0\t1\t2\n")
    with pytest.raises(ValueError, match=r"expected the columns \['user_id', 'item_id_list', 'item_id'\].*found"):
        load_unisrec(directory)


def test_unisrec_missing_file(tmp_path):
    directory = write_unisrec(tmp_path / "toy")
    os.remove(directory / "Toy.valid.inter")
    with pytest.raises(FileNotFoundError, match=r"Expected Toy\.valid\.inter \(optionally gzipped\) in .*found"):
        load_unisrec(directory)


def _write_tables(tmp_path, fmt):
    import pandas as pd

    interactions = pd.DataFrame({
        "uid": ["u1"] * 5 + ["u2"] * 5 + ["u3"] * 5,
        "sku": ["a", "b", "c", "d", "e"] * 3,
        "ts": [5, 4, 3, 2, 1] + [1, 2, 3, 4, 5] * 2,
    })
    items = pd.DataFrame({"sku": list("abcde"), "title": ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]})
    paths = {}
    for name, frame in (("inter", interactions), ("items", items)):
        path = tmp_path / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "tsv":
            frame.to_csv(path, sep="\t", index=False)
        elif fmt == "jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)
        paths[name] = path
    return paths


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_generic_tables(tmp_path, fmt):
    paths = _write_tables(tmp_path, fmt)
    data = load_interactions(paths["inter"], paths["items"], user_column="uid", item_column="sku",
                             timestamp_column="ts", text_column="title", k_core_min=3)
    assert data.stats() == {"users": 3, "items": 5, "interactions": 15}
    first = dict(zip(data.users["user_id"][:], data.users["item_texts"][:]))
    assert first["u1"] == ["Epsilon", "Delta", "Gamma", "Beta", "Alpha"]  # sorted by time
    assert first["u2"] == ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]


def test_generic_missing_column_names_what_is_there(tmp_path):
    paths = _write_tables(tmp_path, "csv")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['user_id'\]; the file has \['uid', 'sku', 'ts'\]"):
        load_interactions(paths["inter"], paths["items"], item_column="sku", timestamp_column="ts")


@pytest.mark.parametrize("fmt,bad_line,message", [
    ("jsonl", "{not json", r"inter\.jsonl, line 16: not valid JSON"),
    ("csv", "u9,a,1,extra,fields", r"inter\.csv: cannot parse the table .*line 17"),
])
def test_generic_unreadable_line_names_file_and_line(tmp_path, fmt, bad_line, message):
    paths = _write_tables(tmp_path, fmt)
    with open(paths["inter"], "a") as handle:
        handle.write(bad_line + "\n")
    with pytest.raises(ValueError, match=message):
        load_interactions(paths["inter"], paths["items"], user_column="uid", item_column="sku", text_column="title")


def test_generic_empty_after_filtering(tmp_path):
    paths = _write_tables(tmp_path, "csv")
    with pytest.raises(ValueError, match=r"no user is left after filtering.*lower k_core"):
        load_interactions(paths["inter"], paths["items"], user_column="uid", item_column="sku",
                          text_column="title", k_core_min=6)


def test_generic_missing_text(tmp_path):
    import pandas as pd

    paths = _write_tables(tmp_path, "csv")
    pd.DataFrame({"sku": list("abcd"), "title": ["A", "B", "C", "D"]}).to_csv(paths["items"], index=False)
    data = load_interactions(paths["inter"], paths["items"], user_column="uid", item_column="sku",
                             text_column="title", k_core_min=3)
    assert data.info["items_without_text"] == 1 and data.stats()["items"] == 4
    with pytest.raises(ValueError, match=r"1 items have no text \(e\.g\. \['e'\]\)"):
        load_interactions(paths["inter"], paths["items"], user_column="uid", item_column="sku",
                          text_column="title", k_core_min=3, missing_text="error")


def test_agnostic_unordered_lastfm(tmp_path):
    with gzip.open(tmp_path / "artists.dat.gz", "wt") as handle:
        handle.write("id\tname\turl\tpictureURL\n1\tMiles  Davis\tu\tp\n2\tNina Simone\tu\tp\n")
    with gzip.open(tmp_path / "user_artists.dat.gz", "wt") as handle:
        handle.write("7\t1\t10\n7\t2\t99\n")
    data = load_agnostic(tmp_path)
    assert not data.ordered
    assert data.users["item_texts"][:] == [["Nina Simone", "Miles Davis"]]  # by descending play count


def test_agnostic_unknown_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a known task-agnostic corpus"):
        load_agnostic(tmp_path)
