"""training/grid.py: rows as ids with options, display names generated from the options."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))  # training/ holds scripts, not a package

import grid  # noqa: E402

RECORDS = ROOT / "docs" / "results" / "runs"


def test_display_names_come_from_the_options():
    assert grid.display_name("lmrec", {}) == "LMRec"
    assert grid.display_name("lmrec", {"mode": "rec_only", "lm_on_rec_histories": False}) == "LMRec-lm"
    assert grid.display_name("lmrec", {"preset": "20m", "learning_rate": 3e-4}) == "LMRec 20m, learning rate 3e-4"
    assert grid.display_name("lmrec", {"item_max_length": 32, "train_sampling_strategy": "group_by_length",
                                       "max_steps": 1500, "learning_rate": 1e-3, "item_bank_refresh_steps": 25,
                                       "item_bank_loss": "separate"}) == (
        "LMRec, items cut to 32 tokens, grouped by length, 1500 steps, learning rate 1e-3, whole catalog too")
    assert grid.display_name("lmrec", {"task_lm_ratio": 0.3, "tokenizer_source": "task"}) == (
        "LMRec, 30% task, tokenizer from the task")
    assert grid.display_name("lmrec", {"task_lm_ratio": 0.7}) == "LMRec+agnostic (70% task)"
    assert grid.display_name("lmrec", {"max_steps": "2x"}) == "LMRec, twice the steps"
    assert grid.display_name("popularity", {}) == "Popularity"


def test_every_row_has_its_own_name_and_every_table_known_rows():
    assert len(grid.ROW_IDS_BY_NAME) == len(grid.ROWS)
    for title, rows, *only in grid.TABLES.values():
        assert set(rows) <= set(grid.ROWS), title
        assert not only or set(only[0]) <= set(grid.DATASETS)
    assert all(row.kind in grid.KINDS for row in grid.ROWS.values())


def test_every_record_names_a_row_of_the_grid():
    """Records written before rows had ids name their row by its display name; each must map to one row."""
    records = [json.loads(path.read_text()) for path in sorted(RECORDS.glob("*.json"))]
    assert records
    for record in records:
        row = grid.ROWS[grid.record_row_id(record)]
        assert row.name == record["row"] and row.kind == record["kind"]


def test_rows_resolve_by_id_or_by_name():
    assert grid.resolve_row("lmrec-bank") == grid.resolve_row("LMRec, whole catalog too") == "lmrec-bank"
    with pytest.raises(KeyError, match="unknown row 'LMRec 99m'"):
        grid.resolve_row("LMRec 99m")


def test_make_demo_trains_the_grid_row_whole_catalog_too_on_or():
    import yaml

    # `make demo` trains demo-bank.yaml; the grid's OR rows train demo.yaml plus each row's overrides. The demo must
    # stay the row "LMRec, whole catalog too", so the figures docs/results.md gives for that row are the demo's.
    assert "lmrec-hf train training/configs/demo-bank.yaml" in (ROOT / "Makefile").read_text()
    recipe = yaml.safe_load((ROOT / grid.DATASETS["or"]["recipe"]).read_text())
    demo = yaml.safe_load((ROOT / "training" / "configs" / "demo-bank.yaml").read_text())
    row = grid.ROWS["lmrec-bank"]
    assert row.kind == "lmrec" and row.name == "LMRec, whole catalog too" and demo == {**recipe, **row.options}

