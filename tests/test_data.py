"""Loaders on small fixture files written here (never the shared data in fast tests)."""

import gzip
import json
import os
from pathlib import Path

import pytest

from lmrec_hf.data import (
    detect_format,
    download_online_retail,
    eval_pairs,
    k_core,
    lm_texts,
    load_agnostic,
    load_data,
    load_interactions,
    load_prepared,
    load_unisrec,
    prepare_online_retail,
    split_users,
    train_pairs,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# Three users: 0 has items 0..5, 1 has 6,7,0,1,2, 2 has 3,4,5 (three items: no train rows).
SEQUENCES = {"0": [0, 1, 2, 3, 4, 5], "1": [6, 7, 0, 1, 2], "2": [3, 4, 5]}


def write_unisrec(directory: Path, name="Toy", gz_train=False, texts=None):
    directory.mkdir(parents=True, exist_ok=True)
    texts = texts or {i: f"item  {i}   text" for i in range(8)}
    (directory / f"{name}.item2index").write_text("".join(f"A{i}\t{i}\n" for i in range(8)))
    (directory / f"{name}.text").write_text("item_id:token\ttext:token_seq\n" +
                                            "".join(f"A{i}\t{t}\n" for i, t in texts.items()))
    train = ["user_id:token\titem_id_list:token_seq\titem_id:token"]
    valid, test = list(train), list(train)
    for user, seq in SEQUENCES.items():
        for end in range(len(seq) - 3, 0, -1):  # longest prefix first
            train.append(f"{user}\t{' '.join(map(str, seq[:end]))}\t{seq[end]}")
        valid.append(f"{user}\t{' '.join(map(str, seq[:-2]))}\t{seq[-2]}")
        test.append(f"{user}\t{' '.join(map(str, seq[:-1]))}\t{seq[-1]}")
    body = "\n".join(train) + "\n"
    if gz_train:
        with gzip.open(directory / f"{name}.train.inter.gz", "wt") as handle:
            handle.write(body)
    else:
        (directory / f"{name}.train.inter").write_text(body)
    (directory / f"{name}.valid.inter").write_text("\n".join(valid) + "\n")
    (directory / f"{name}.test.inter").write_text("\n".join(test) + "\n")
    return directory


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


def test_missing_text_drop_and_error(tmp_path):
    texts = {i: f"item {i}" for i in range(8)}
    texts[7] = "   "
    directory = write_unisrec(tmp_path / "toy", texts=texts)
    data = load_unisrec(directory)
    assert data.info["items_without_text"] == 1 and data.info["interactions_dropped_for_missing_text"] == 1
    assert len(data.items) == 7 and all(data.item_texts)
    with pytest.raises(ValueError, match=r"1 items have no text \(e\.g\. \['A7'\]\).*missing_text='drop'"):
        load_unisrec(directory, missing_text="error")


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


def test_k_core_is_repeated_until_stable():
    sequences = {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 4, 4], "d": [5]}
    # item 4 occurs twice in user c; with k=2 user d (one item) goes, then item 5.
    assert k_core(sequences, 2) == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 4, 4]}
    assert k_core({"a": [1, 2], "b": [1, 3]}, 2) == {}


def _write_retail(path: Path):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    rows = []
    for invoice in range(6):
        for code in range(5):
            minute = 10 + (code == 0)  # item 0 comes last in every invoice
            rows.append(f"{500 + invoice},C{code},Item {code} NAME,1,12/1/2010 8:{minute},1.0,1,UK")
    rows.append("599,C9,,1,12/1/2010 9:00,1.0,1,UK")  # no description: dropped
    rows.append(rows[0])  # exact duplicate interaction
    with gzip.open(path, "wt") as handle:
        handle.write(header + "\n".join(rows) + "\n")


def test_online_retail_procedure(tmp_path):
    _write_retail(tmp_path / "data.csv.gz")
    data = prepare_online_retail(tmp_path / "data.csv.gz")
    assert data.stats() == {"users": 6, "items": 5, "interactions": 30}
    assert data.info["raw_rows"] == 32 and data.info["rows_with_description"] == 31
    assert data.info["distinct_interactions"] == 30
    assert data.items["item_id"][:] == ["C1", "C2", "C3", "C4", "C0"]  # first appearance after sorting by time
    assert data.item_texts[0] == "item 1 name."
    assert data.sequences[0] == [0, 1, 2, 3, 4]


def test_online_retail_missing_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("InvoiceNo,StockCode,Quantity\n1,2,3\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Description', 'InvoiceDate'\]; the file has"):
        prepare_online_retail(path)


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
def test_online_retail_statistics_reproduced():
    data = prepare_online_retail(SHARED / "online-retail" / "data.csv.gz")
    assert data.stats() == {"users": 16520, "items": 3469, "interactions": 519906}
    assert data.info["distinct_interactions"] == 535026
    released = load_unisrec(SHARED / "online-retail" / "OR")
    assert released.stats() == data.stats()
    assert data.item_texts == released.item_texts


@pytest.mark.slow
def test_scientific_statistics():
    assert load_unisrec(SHARED / "amazon-scientific").stats() == {"users": 8442, "items": 4385, "interactions": 59427}


def test_download_online_retail_from_a_local_server(tmp_path):
    """The download path against a server on 127.0.0.1 holding a small workbook in UCI's zip layout."""
    import http.server
    import io
    import threading
    import zipfile

    import pandas as pd

    frame = pd.DataFrame({
        "InvoiceNo": ["536365", "536365"], "StockCode": ["85123A", "71053"],
        "Description": ["WHITE HANGING HEART T-LIGHT HOLDER", "WHITE METAL LANTERN"], "Quantity": [6, 6],
        "InvoiceDate": pd.to_datetime(["2010-12-01 08:26", "2010-12-01 08:26"]), "UnitPrice": [2.55, 3.39],
        "CustomerID": [17850.0, None], "Country": ["United Kingdom", "United Kingdom"],
    })
    workbook = io.BytesIO()
    frame.to_excel(workbook, index=False)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("Online Retail.xlsx", workbook.getvalue())
    body = archive.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        folder = download_online_retail(tmp_path / "dl", url=f"http://127.0.0.1:{server.server_port}/or.zip")
    finally:
        server.server_close()
    with gzip.open(folder / "data.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    assert lines[1] == "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"
    assert lines[2].endswith(",,United Kingdom")  # a missing CustomerID stays empty
    assert download_online_retail(tmp_path / "dl", url="http://127.0.0.1:9/unused") == folder  # cached


def test_download_failure_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Could not download Online Retail .*LMREC_DATA_DIR"):
        download_online_retail(tmp_path / "dl", url="http://127.0.0.1:9/nothing.zip")
    assert not (tmp_path / "dl" / "data.csv.gz").exists()


def test_online_retail_alias_resolves_through_the_search_path(tmp_path, monkeypatch):
    from lmrec_hf.data import resolve_data_path

    (tmp_path / "online-retail").mkdir()
    (tmp_path / "online-retail" / "data.csv.gz").write_bytes(b"")
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path))
    assert resolve_data_path("online-retail") == tmp_path / "online-retail"
    assert resolve_data_path(tmp_path / "elsewhere") == tmp_path / "elsewhere"  # a plain path stays as given
