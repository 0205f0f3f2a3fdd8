"""training/report.py: docs/results.md's generated part from run records (fake ones here; records written
before rows had ids name their row by its display name, as these do)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))  # training/ holds scripts, not a package

import grid  # noqa: E402
import report  # noqa: E402


def _fake(row, seed, recall, sampled, data="Scientific", parameters=1000):
    metrics = {"recall@10": recall, "ndcg@10": recall / 2, "recall@50": recall * 2, "ndcg@50": recall}
    return {"data": data, "data_key": data.lower(), "row": row, "seed": seed, "wall_time_s": 10.0 * seed,
            "parameters": parameters, "steps": 5, "command": f"python training/reproduce.py run --data x --rows "
                                                             f"{row} --seeds {seed}",
            "metrics": {"full-ranking": metrics, "sampled-100": {**metrics, "recall@10": sampled}}}


def test_report_tables_mean_std_paper_and_order(tmp_path):
    records = [_fake("LMRec", 1, 0.10, 0.50), _fake("LMRec", 2, 0.12, 0.52), _fake("LMRec-lm", 1, 0.08, 0.60),
               _fake("LMRec 1.7m", 1, 0.05, 0.4, parameters=300), _fake("LMRec 20m", 1, 0.13, 0.6, parameters=9000)]
    text, figures = report.render_report(records)
    assert text.startswith(report.BEGIN) and text.endswith(report.END)
    assert "| LMRec | 2 | 1,000 | 5 | 0.1100 ± 0.0141 |" in text  # mean ± sample std over two seeds
    assert "| LMRec-lm | 1 | 1,000 | 5 | 0.0800 |" in text
    assert "0.1264 / 0.0695 (paper)" in text and "0.0951 / 0.0428 (paper)" in text
    assert "| ID transformer | not run |" in text
    assert ("Not run yet: `python training/reproduce.py run --data scientific --rows popularity id-transformer "
            "lmrec-agnostic-70 --seeds 42 43 44`") in text
    # Full ranking puts LMRec first; sampled-100 puts LMRec-lm first: the report says the order moved.
    assert "By sampled-100: LMRec-lm > LMRec (a different order)" in text
    assert [(name, png) for name, _, _, png, _ in figures] == [("Scientific", "figure4-scientific.png")]
    # A table limited to some data sets (the item text cap, Scientific only) is not printed for the others.
    assert ("### Cheaper steps: item texts cut to 32 tokens, batches grouped by history length (options, not the "
            "paper's), Scientific") in text
    assert "grouped by history length (options, not the paper's), OR" not in text

    results_md = tmp_path / "results.md"
    results_md.write_text(f"# Results\n\nhand-written part\n\n{report.BEGIN}\nold\n{report.END}\ntail\n")
    (tmp_path / "results").mkdir()
    report.write_report(records, results_md)
    written = results_md.read_text()
    assert "hand-written part" in written and written.rstrip().endswith("tail") and "\nold\n" not in written
    assert (tmp_path / "results" / "figure4-scientific.png").stat().st_size > 1000


def test_cheaper_size_rows_get_a_figure_labelled_by_size():
    rows = [grid.ROWS[r].name for r in grid.TABLES["figure4-cheaper"][1]]
    records = [_fake(row, 1, 0.05 + i / 100, 0.4, parameters=300 * 10 ** i) for i, row in enumerate(rows)]
    text, figures = report.render_report(records)
    assert [(name, png) for name, _, _, png, _ in figures] == [
        ("Scientific, cheaper steps at 1e-3", "figure4-cheaper-scientific.png")]
    assert "Figure 4 on the cheaper steps at learning rate 1e-3 (not the paper's recipe), OR" not in text
    # The options every row shares are cut from the plot's labels; rows that differ keep theirs.
    assert report._short_labels(rows) == ["LMRec 1.7m", "LMRec", "LMRec 20m"]
    assert report._short_labels(["LMRec 1.7m, learning rate 1e-2", "LMRec, learning rate 1e-3"]) == [
        "LMRec 1.7m, learning rate 1e-2", "LMRec, learning rate 1e-3"]
    assert report._short_labels(["LMRec 1.7m", "LMRec"]) == ["LMRec 1.7m", "LMRec"]
    # Shared options go wherever they stand: the cheaper sweep's picked rows differ only in size and rate.
    assert report._short_labels([f"{size}, items cut to 32 tokens, grouped by length, learning rate {rate}"
                                    for size, rate in [("LMRec 1.7m", "1e-2"), ("LMRec", "1e-3")]]) == [
        "LMRec 1.7m, learning rate 1e-2", "LMRec, learning rate 1e-3"]


def test_gpu_records_get_tables_of_their_own(tmp_path):
    gpu = "1x NVIDIA H200, fp32"
    records = [_fake("LMRec", 1, 0.10, 0.5), _fake("LMRec-lm", 1, 0.06, 0.4)]
    records += [dict(_fake(row, seed, recall, 0.5, parameters=parameters), machine=gpu, device="cuda")
                for row, seed, recall, parameters in [("LMRec", 1, 0.20, 1000), ("LMRec", 2, 0.22, 1000),
                                                      ("LMRec 1.7m", 1, 0.15, 300)]]
    text, figures = report.render_report(records)
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


def test_learning_rate_picked_per_size_on_the_valid_split():
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
    text, figures = report.render_report(records)
    assert ("- LMRec 20m: valid Recall@10 by learning rate 3e-4: 0.0400 (1 seed), 1e-3: 0.0900 (1 seed), "
            "3e-3: 0.0600 (2 seeds). Picked 1e-3: test Recall@10 0.1000.") in text
    assert ("- LMRec: valid Recall@10 by learning rate 1e-3: 0.0800 (1 seed); 3e-3 ran without a valid score and "
            "is left out. Picked 1e-3: test Recall@10 0.0900.") in text
    assert "LMRec 1.7m:" not in text  # no size row ran
    picked = [(name, sorted(recalls)) for name, recalls, _, png, _ in figures if "picked-lr" in png]
    assert picked == [("OR, learning rate picked per size", ["LMRec 20m, learning rate 1e-3",
                                                            "LMRec, learning rate 1e-3"])]


def test_cheaper_steps_learning_rate_picked_per_size_on_scientific():
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
    row = grid.ROWS[grid.resolve_row(records[5]["row"])]
    assert (row.kind, row.options) == ("lmrec", {"preset": "20m", "item_max_length": 32,
                                                 "train_sampling_strategy": "group_by_length", "learning_rate": 3e-4})
    text, figures = report.render_report(records)
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
