"""One entry point, `load_data`: format detection and a prepared-folder cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .online_retail import prepare_online_retail
from .readers import find_file, load_agnostic, load_interactions, load_unisrec
from .records import RecData, cache_key, default_cache_dir, load_prepared

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# One entry point with format detection and a prepared-folder cache

FORMATS = ("auto", "prepared", "unisrec", "online-retail", "interactions", "agnostic")


def detect_format(path: str | os.PathLike) -> str:
    """Which loader reads `path`: a prepared folder, UniSRec files, raw Online Retail, or an agnostic corpus."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Data path {path} does not exist. Point `data` at a data folder or file.")
    if path.is_dir():
        if (path / "meta.json").exists():
            return "prepared"
        if any(path.glob("*.train.inter*")):
            return "unisrec"
        if (path / "data.csv.gz").exists() or (path / "data.csv").exists():
            return "online-retail"
        if any((path / f).exists() for f in ("Games-6k.seq.tsv.gz", "ml-1m.item.gz", "user_artists.dat.gz")):
            return "agnostic"
    elif path.name in ("data.csv", "data.csv.gz"):
        return "online-retail"
    else:
        return "interactions"
    raise ValueError(
        f"Cannot tell the format of {path}: expected a prepared folder (meta.json), UniSRec atomic files "
        "(X.text, X.train.inter, ...), Online Retail's data.csv(.gz), or an agnostic corpus folder. Pass the format "
        f"explicitly (one of {FORMATS})."
    )


def load_data(path: str | os.PathLike, fmt: str = "auto", cache_dir: str | os.PathLike | None = None,
              **options) -> RecData:
    """
    Loads any supported source (see `detect_format`), caching the processed result as a prepared folder under
    `cache_dir` (default `$LMREC_CACHE/prepared` or ~/.cache/lmrec_hf/prepared) so the next run skips processing.
    `options` go to the loader (e.g. `items=...`, `user_column=...` for an interactions table).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"Unknown data format {fmt!r}; use one of {FORMATS}.")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "prepared":
        return load_prepared(path)
    cached = Path(cache_dir) if cache_dir else default_cache_dir()
    cached = cached / f"{path.name.split('.')[0]}-{cache_key(path, fmt, options)}"
    if (cached / "meta.json").exists():
        logger.info("Loading prepared %s from the cache %s", path, cached)
        return load_prepared(cached)
    if fmt == "unisrec":
        data = load_unisrec(path, **options)
    elif fmt == "online-retail":
        csv = path if path.is_file() else find_file(path, "data.csv")
        data = prepare_online_retail(csv, **options)
    elif fmt == "agnostic":
        data = load_agnostic(path)
    else:
        options = dict(options)
        items = options.pop("items", None)
        if items is None:
            raise ValueError(f"{path} is an interactions table; also give the item-text table (`items`).")
        data = load_interactions(path, items, **options)
    data.save(cached)
    return data
