"""Online Retail: find the raw table (or download the UCI file), and prepare it with UniSRec's "OR" procedure."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .readers import read_table, require_columns
from .records import RecData, build_data, check_k_core, default_cache_dir, k_core, reindex

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# Raw Online Retail (UCI / Kaggle data.csv) -> UniSRec "OR"

ONLINE_RETAIL_COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate"]


def prepare_online_retail(csv_path: str | os.PathLike, k: int = 5) -> RecData:
    """
    Turns the raw Online Retail table (Kaggle `data.csv`, optionally gzipped) into UniSRec's "OR" data set:
    rows without a description are dropped, the user is the invoice and the item the stock code, an interaction
    is a distinct (invoice, stock code, quantity, time) tuple, a `k`-core filter runs until stable, and each invoice
    is sorted by time with ties in line order. Item text: the first non-empty description, lowercased, plus ".".

    Example:
    ```python
    >>> prepare_online_retail("../shared/data/online-retail/data.csv.gz").stats()
    {'users': 16520, 'items': 3469, 'interactions': 519906}
    ```
    """
    import pandas as pd

    check_k_core(k)
    csv_path = Path(csv_path)
    frame = read_table(csv_path, dtype=str, keep_default_na=False)
    require_columns(frame, ONLINE_RETAIL_COLUMNS, csv_path)
    rows = len(frame)
    frame = frame[frame["Description"].str.strip() != ""]
    with_description = len(frame)
    frame = frame.assign(_line=np.arange(len(frame)))
    try:
        frame["_time"] = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M")
    except ValueError:
        frame["_time"] = pd.to_datetime(frame["InvoiceDate"], format="mixed")
    frame = frame.drop_duplicates(subset=["InvoiceNo", "StockCode", "Quantity", "_time"], keep="first")
    distinct = len(frame)
    item_text = {}
    for code, description in zip(frame["StockCode"], frame["Description"]):
        if code not in item_text:
            item_text[code] = description.strip().lower() + "."
    frame = frame.sort_values(["_time", "_line"], kind="stable")
    sequences: dict = {}
    for invoice, code in zip(frame["InvoiceNo"], frame["StockCode"]):
        sequences.setdefault(invoice, []).append(code)
    sequences = k_core(sequences, k)
    sequences, keys, texts = reindex(sequences, item_text)
    info = {"raw_rows": rows, "rows_with_description": with_description, "distinct_interactions": distinct,
            "k_core": k}
    data = build_data("OR", sequences, keys, texts, source=str(csv_path), info=info, min_length=k)
    logger.info("Online Retail: %d rows, %d with a description, %d distinct interactions, after %d-core: %s",
                rows, with_description, distinct, k, data.stats())
    return data


ONLINE_RETAIL_ALIAS = "online-retail"  # a `data` value that means "find (or download) Online Retail"


def resolve_data_path(path: str | os.PathLike, download: bool = False) -> Path:
    """`path` itself, or for the alias "online-retail" (when no such path exists) the folder `find_online_retail`
    finds, downloading the UCI file with `download=True`."""
    if str(path) == ONLINE_RETAIL_ALIAS and not Path(path).exists():
        return find_online_retail(download=download)
    return Path(path)


ONLINE_RETAIL_URL = "https://archive.ics.uci.edu/static/public/352/online+retail.zip"


def download_online_retail(cache_dir: str | os.PathLike | None = None, url: str = ONLINE_RETAIL_URL) -> Path:
    """
    Downloads the UCI Online Retail workbook (CC BY 4.0; D. Chen, UCI ML Repository) into a cache folder with a
    progress bar, and writes it as `data.csv.gz` in Kaggle's layout (UTF-8, dates as M/D/YYYY H:MM). Returns the
    folder. Nothing is fetched when the folder already has `data.csv.gz`.
    """
    import io
    import urllib.request
    import zipfile

    import pandas as pd
    from tqdm.auto import tqdm

    folder = Path(cache_dir) if cache_dir else default_cache_dir().parent / "online-retail"
    target = folder / "data.csv.gz"
    if target.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            buffer = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc="Online Retail") as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    buffer.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:
        raise FileNotFoundError(
            f"Could not download Online Retail from {url} ({error}). Download it by hand and set LMREC_DATA_DIR "
            "to a folder holding online-retail/data.csv.gz."
        ) from error
    with zipfile.ZipFile(buffer) as archive:
        workbook = next((n for n in archive.namelist() if n.endswith(".xlsx")), None)
        if workbook is None:
            raise ValueError(f"{url}: expected an .xlsx workbook inside, found {archive.namelist()}.")
        try:
            frame = pd.read_excel(archive.open(workbook), dtype={"InvoiceNo": str, "StockCode": str})
        except ImportError as error:
            raise ImportError("Reading the Online Retail workbook needs openpyxl: pip install openpyxl") from error
    dates = pd.to_datetime(frame["InvoiceDate"])
    frame["InvoiceDate"] = [f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}" for d in dates]
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    partial = target.with_suffix(".partial")
    frame.to_csv(partial, index=False, compression="gzip")
    partial.rename(target)  # only a complete file ever carries the final name
    return folder


def find_online_retail(data_dir: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Where the demo finds Online Retail: `data_dir`, `$LMREC_DATA_DIR`, ../shared/data/online-retail, the
    download cache; with `download=True` it downloads the UCI file when none of these has it."""
    candidates = []
    if data_dir:
        candidates.append(Path(data_dir))
    if os.environ.get("LMREC_DATA_DIR"):
        base = Path(os.environ["LMREC_DATA_DIR"])
        candidates += [base / "online-retail", base]
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "data" / "online-retail" for parent in here.parents[:6]]
    candidates.append(Path.cwd().parent / "shared" / "data" / "online-retail")
    candidates.append(default_cache_dir().parent / "online-retail")
    for candidate in candidates:
        if (candidate / "data.csv.gz").exists() or (candidate / "data.csv").exists():
            return candidate
    if download:
        return download_online_retail()
    raise FileNotFoundError(
        "Online Retail not found. Looked in: " + ", ".join(str(c) for c in candidates) + ". Set LMREC_DATA_DIR to "
        "a folder holding online-retail/data.csv.gz, or allow the download of the UCI file (CC BY 4.0) with "
        "`--download_data true` (the default of `lmrec-hf train`)."
    )
