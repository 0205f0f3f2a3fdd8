"""Online Retail (data/online_retail.py): the OR procedure, finding and downloading the table."""

import gzip
from pathlib import Path

import pytest

from lmrec_hf.data import (
    download_online_retail,
    load_unisrec,
    prepare_online_retail,
)

from .toy_data import SHARED


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


@pytest.mark.slow
def test_online_retail_statistics_reproduced():
    data = prepare_online_retail(SHARED / "online-retail" / "data.csv.gz")
    assert data.stats() == {"users": 16520, "items": 3469, "interactions": 519906}
    assert data.info["distinct_interactions"] == 535026
    released = load_unisrec(SHARED / "online-retail" / "OR")
    assert released.stats() == data.stats()
    assert data.item_texts == released.item_texts


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
