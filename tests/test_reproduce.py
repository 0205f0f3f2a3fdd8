"""training/reproduce.py: the results generator on fake records, and one toy run of each row kind."""

import importlib.util
import json
from pathlib import Path

import pytest

from .test_data import write_unisrec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "training" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake(row, seed, recall, sampled, data="Scientific", parameters=1000):
    metrics = {"recall@10": recall, "ndcg@10": recall / 2, "recall@50": recall * 2, "ndcg@50": recall}
    return {"data": data, "data_key": data.lower(), "row": row, "seed": seed, "wall_time_s": 10.0 * seed,
            "parameters": parameters, "steps": 5, "command": f"python training/reproduce.py run --data x --rows "
                                                             f"{row} --seeds {seed}",
            "metrics": {"full-ranking": metrics, "sampled-100": {**metrics, "recall@10": sampled}}}


def test_report_tables_mean_std_paper_and_order(reproduce, tmp_path):
    records = [_fake("LMRec", 1, 0.10, 0.50), _fake("LMRec", 2, 0.12, 0.52), _fake("LMRec-lm", 1, 0.08, 0.60),
               _fake("LMRec 1.7m", 1, 0.05, 0.4, parameters=300), _fake("LMRec 20m", 1, 0.13, 0.6, parameters=9000)]
    text, figures = reproduce.render_report(records)
    assert text.startswith(reproduce.BEGIN) and text.endswith(reproduce.END)
    assert "| LMRec | 2 | 1,000 | 5 | 0.1100 ± 0.0141 |" in text  # mean ± sample std over two seeds
    assert "| LMRec-lm | 1 | 1,000 | 5 | 0.0800 |" in text
    assert "0.1264 / 0.0695 (paper)" in text and "0.0951 / 0.0428 (paper)" in text
    assert "| ID transformer | not run |" in text
    assert "Not run yet: `python training/reproduce.py run --data scientific --rows Popularity 'ID transformer' " \
           "'LMRec+agnostic (70% task)' --seeds 42 43 44`" in text
    # Full ranking puts LMRec first; sampled-100 puts LMRec-lm first: the report says the order moved.
    assert "By sampled-100: LMRec-lm > LMRec (a different order)" in text
    assert [(name, png) for name, _, _, png, _ in figures] == [("Scientific", "figure4-scientific.png")]
    # A table limited to some data sets (the item text cap, Scientific only) is not printed for the others.
    assert ("### Cheaper steps: item texts cut to 32 tokens, batches grouped by history length (options, not the "
            "paper's), Scientific") in text
    assert "grouped by history length (options, not the paper's), OR" not in text

    results_md = tmp_path / "results.md"
    results_md.write_text(f"# Results\n\nhand-written part\n\n{reproduce.BEGIN}\nold\n{reproduce.END}\ntail\n")
    (tmp_path / "results").mkdir()
    reproduce.write_report(records, results_md)
    written = results_md.read_text()
    assert "hand-written part" in written and written.rstrip().endswith("tail") and "\nold\n" not in written
    assert (tmp_path / "results" / "figure4-scientific.png").stat().st_size > 1000


def test_cheaper_size_rows_get_a_figure_labelled_by_size(reproduce):
    rows = reproduce.TABLES["figure4-cheaper"][1]
    records = [_fake(row, 1, 0.05 + i / 100, 0.4, parameters=300 * 10 ** i) for i, row in enumerate(rows)]
    text, figures = reproduce.render_report(records)
    assert [(name, png) for name, _, _, png, _ in figures] == [
        ("Scientific, cheaper steps at 1e-3", "figure4-cheaper-scientific.png")]
    assert "Figure 4 on the cheaper steps at learning rate 1e-3 (not the paper's recipe), OR" not in text
    # The options every row shares are cut from the plot's labels; rows that differ keep theirs.
    assert reproduce._short_labels(rows) == ["LMRec 1.7m", "LMRec", "LMRec 20m"]
    assert reproduce._short_labels(["LMRec 1.7m, learning rate 1e-2", "LMRec, learning rate 1e-3"]) == [
        "LMRec 1.7m, learning rate 1e-2", "LMRec, learning rate 1e-3"]
    assert reproduce._short_labels(["LMRec 1.7m", "LMRec"]) == ["LMRec 1.7m", "LMRec"]
    # Shared options go wherever they stand: the cheaper sweep's picked rows differ only in size and rate.
    assert reproduce._short_labels([f"{size}, items cut to 32 tokens, grouped by length, learning rate {rate}"
                                    for size, rate in [("LMRec 1.7m", "1e-2"), ("LMRec", "1e-3")]]) == [
        "LMRec 1.7m, learning rate 1e-2", "LMRec, learning rate 1e-3"]


def test_gpu_records_get_tables_of_their_own(reproduce, tmp_path):
    gpu = "1x NVIDIA H200, fp32"
    records = [_fake("LMRec", 1, 0.10, 0.5), _fake("LMRec-lm", 1, 0.06, 0.4)]
    records += [dict(_fake(row, seed, recall, 0.5, parameters=parameters), machine=gpu, device="cuda")
                for row, seed, recall, parameters in [("LMRec", 1, 0.20, 1000), ("LMRec", 2, 0.22, 1000),
                                                      ("LMRec 1.7m", 1, 0.15, 300)]]
    text, figures = reproduce.render_report(records)
    cpu_part, gpu_part = text.split(f"## The same rows on {gpu} (generated)")
    # The CPU table keeps its single seed; the GPU's two seeds are averaged only with each other.
    assert "| LMRec | 1 | 1,000 | 5 | 0.1000 |" in cpu_part and "0.2100" not in cpu_part
    assert f"### Table 4: baselines and LMRec, Scientific, on {gpu}" in gpu_part
    assert "| LMRec | 2 | 1,000 | 5 | 0.2100 ± 0.0141 |" in gpu_part
    assert "Table 5" not in gpu_part and "Not run yet" not in gpu_part  # only tables the GPU ran, no to-do lines
    # A row only the GPU ran is still "not run" on the CPU, and its cell points at the GPU's section.
    assert f"| LMRec 1.7m | not run (see {gpu} below) |" in cpu_part
    assert "| LMRec 20m | not run | |" in cpu_part
    assert [(png, machine) for _, _, _, png, machine in figures] == [
        ("figure4-scientific.png", "2-core CPU"), ("figure4-scientific-1x-nvidia-h200-fp32.png", gpu)]

    cpu_path = reproduce.save_record(records[0], tmp_path)
    gpu_path = reproduce.save_record(records[2], tmp_path)
    assert gpu_path.name == "scientific-lmrec-seed1-steps5-cuda.json" and cpu_path.exists()  # not overwritten


def test_cuda_device_without_a_gpu_says_so(reproduce, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device.*drop --device"):
        reproduce.machine_name("cuda")
    assert reproduce.machine_name("cpu") == "2-core CPU"


def test_save_and_load_records(reproduce, tmp_path):
    path = reproduce.save_record(_fake("LMRec", 7, 0.1, 0.5), tmp_path)
    assert path.name == "scientific-lmrec-seed7-steps5.json"
    assert reproduce.load_records(tmp_path)[0]["seed"] == 7


@pytest.mark.parametrize("row", ["Popularity", "ID transformer", "LMRec", "LMRec-lm", "SelfPretrain",
                                 "LMRec, twice the steps", "LMRec 1.7m, learning rate 1e-2"])
def test_each_row_kind_runs_two_steps_on_toy_data(reproduce, row, tmp_path, monkeypatch):
    toy = write_unisrec(tmp_path / "toy", texts={i: f"item number {i}" for i in range(8)})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: '1.7m'\nvocab_size: 300\nrec_batch_size: 2\nlm_batch_size: 2\nmax_length: 64\n"
                      "max_steps: 2\nuse_cpu: true\nlogging_steps: 1\nprefix_pairs: true\nrec_loss_type: softmax\n"
                      "negatives: shared\n")
    monkeypatch.setattr(reproduce, "DATASETS", {"toy": {"name": "Toy", "path": str(toy), "recipe": str(recipe)}})
    monkeypatch.setattr(reproduce, "NEGATIVES", tmp_path / "negatives")
    monkeypatch.setattr(reproduce, "ID_TRANSFORMER", dict(reproduce.ID_TRANSFORMER, max_steps=2, batch_size=2,
                                                          n_embd=16, n_layer=1))

    def seven_negatives(data, key):  # a toy catalog of 8 items has only 7 negatives per user
        from lmrec_hf.evaluation import _eval_targets, draw_sampled_negatives

        _, _, targets = _eval_targets(data, "test", None, 0)
        return draw_sampled_negatives(len(data.items), targets.tolist(), 7, seed=0)

    monkeypatch.setattr(reproduce, "sampled_negatives", seven_negatives)
    record = reproduce.run_row("toy", row, seed=1, max_steps=2 if row != "Popularity" else None, work=tmp_path / "w")
    json.dumps(record)
    assert record["row"] == row and record["data"] == "Toy" and record["seed"] == 1
    assert set(record["metrics"]) == {"full-ranking", "sampled-100"}
    assert record["metrics"]["full-ranking"]["users"] == 3
    assert f"--rows '{row}'" in record["command"] or f"--rows {row}" in record["command"]
    if row == "LMRec, twice the steps":  # twice the budget, as SelfPretrain's two stages spend
        assert record["steps"] == 4
    elif row == "SelfPretrain":
        assert record["steps"] == {"lm_only": 2, "rec_only": 2}
    if record["kind"] in ("lmrec", "selfpretrain"):  # a valid-split score to pick settings on, kept apart
        assert record["valid_metrics"]["full-ranking"]["users"] == 3 and record["valid_time_s"] >= 0
    if row == "LMRec 1.7m, learning rate 1e-2":
        assert record["learning_rate"] == 1e-2 and record["overrides"] == {"preset": "1.7m", "learning_rate": 1e-2}


def test_learning_rate_picked_per_size_on_the_valid_split(reproduce):
    def fake(row, seed, valid, test, parameters):
        record = _fake(row, seed, test, 0.5, data="OR", parameters=parameters)
        if valid is not None:
            record["valid_metrics"] = {"full-ranking": {"recall@10": valid}}
        return record

    records = [fake("LMRec 20m", 1, 0.05, 0.06, 9000), fake("LMRec 20m", 2, 0.07, 0.08, 9000),
               # the best test score, but its valid score is lower: the test split must not pick
               fake("LMRec 20m, learning rate 3e-4", 1, 0.04, 0.30, 9000),
               fake("LMRec 20m, learning rate 1e-3", 1, 0.09, 0.10, 9000),
               fake("LMRec", 1, None, 0.11, 1000),  # recorded before valid scores were kept
               fake("LMRec, learning rate 1e-3", 1, 0.08, 0.09, 1000)]
    text, figures = reproduce.render_report(records)
    assert ("- LMRec 20m: valid Recall@10 by learning rate 3e-4: 0.0400 (1 seed), 1e-3: 0.0900 (1 seed), "
            "3e-3: 0.0600 (2 seeds). Picked 1e-3: test Recall@10 0.1000.") in text
    assert ("- LMRec: valid Recall@10 by learning rate 1e-3: 0.0800 (1 seed); 3e-3 ran without a valid score and "
            "is left out. Picked 1e-3: test Recall@10 0.0900.") in text
    assert "LMRec 1.7m:" not in text  # no size row ran
    picked = [(name, sorted(recalls)) for name, recalls, _, png, _ in figures if "picked-lr" in png]
    assert picked == [("OR, learning rate picked per size", ["LMRec 20m, learning rate 1e-3",
                                                            "LMRec, learning rate 1e-3"])]


def test_cheaper_steps_learning_rate_picked_per_size_on_scientific(reproduce):
    def fake(base, rate, seed, valid, test, parameters):
        row = f"{base}, items cut to 32 tokens, grouped by length, learning rate {rate}"
        record = _fake(row, seed, test, 0.5, parameters=parameters)
        record["valid_metrics"] = {"full-ranking": {"recall@10": valid}}
        return record

    records = [fake("LMRec 1.7m", "1e-3", 1, 0.05, 0.04, 300), fake("LMRec 1.7m", "1e-2", 1, 0.06, 0.03, 300),
               fake("LMRec", "3e-4", 1, 0.07, 0.07, 1000), fake("LMRec", "1e-3", 1, 0.08, 0.06, 1000),
               fake("LMRec", "1e-3", 2, 0.07, 0.05, 1000),
               fake("LMRec 20m", "3e-4", 1, 0.09, 0.05, 9000), fake("LMRec 20m", "1e-3", 1, 0.05, 0.08, 9000)]
    # Each row trains the cheaper steps at its own rate and size.
    assert reproduce.ROWS[records[5]["row"]] == ("lmrec", {"preset": "20m", "item_max_length": 32,
                                                          "train_sampling_strategy": "group_by_length",
                                                          "learning_rate": 3e-4})
    text, figures = reproduce.render_report(records)
    # The valid split picks, never the test split (each picked rate is worse on test than the other).
    assert ("- LMRec 1.7m: valid Recall@10 by learning rate 1e-3: 0.0500 (1 seed), 1e-2: 0.0600 (1 seed). Picked "
            "1e-2: test Recall@10 0.0300.") in text
    assert ("- LMRec: valid Recall@10 by learning rate 3e-4: 0.0700 (1 seed), 1e-3: 0.0750 (2 seeds). Picked 1e-3: "
            "test Recall@10 0.0550 ± 0.0071.") in text  # the mean over seeds
    assert ("- LMRec 20m: valid Recall@10 by learning rate 3e-4: 0.0900 (1 seed), 1e-3: 0.0500 (1 seed). Picked "
            "3e-4: test Recall@10 0.0500.") in text
    picked = {png: sorted(recalls) for _, recalls, _, png, _ in figures}
    assert picked["figure4-cheaper-picked-lr-scientific.png"] == sorted(
        f"{base}, items cut to 32 tokens, grouped by length, learning rate {rate}"
        for base, rate in [("LMRec 1.7m", "1e-2"), ("LMRec", "1e-3"), ("LMRec 20m", "3e-4")])
    assert "figure4-picked-lr-scientific.png" not in picked  # OR's sweep has no Scientific table


def test_make_demo_trains_the_grid_row_whole_catalog_too_on_or(reproduce):
    import yaml

    # `make demo` trains demo-bank.yaml; the grid's OR rows train demo.yaml plus each row's overrides. The demo must
    # stay the row "LMRec, whole catalog too", so the figures docs/results.md gives for that row are the demo's.
    assert "lmrec-hf train training/configs/demo-bank.yaml" in (ROOT / "Makefile").read_text()
    grid = yaml.safe_load((ROOT / reproduce.DATASETS["or"]["recipe"]).read_text())
    demo = yaml.safe_load((ROOT / "training" / "configs" / "demo-bank.yaml").read_text())
    kind, overrides = reproduce.ROWS["LMRec, whole catalog too"]
    assert kind == "lmrec" and demo == {**grid, **overrides}
