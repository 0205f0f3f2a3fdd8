"""benchmarks/gpu_scientific.py: the steps a run plans in its window, and the table rendered from its records."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_scientific  # noqa: E402


def test_a_run_plans_the_steps_its_window_leaves_after_setup_evaluations_and_the_save():
    # 400 s left, 5 s setup, 25 s reserve, two evaluations of 10 s: 350 s split between training and an evaluation
    # every 90 s of it, so 350 / (1 + 10/90) = 315 s of training at 0.2 s a step
    assert gpu_scientific.plan_steps(400, 0.2, 5, 10, 90, 25, 1.0) == 1575
    assert gpu_scientific.plan_steps(400, 0.2, 5, 10, 90, 25, 0.5) == 787  # `fill` of it
    assert gpu_scientific.plan_steps(400, 0.2, 5, 10, 90, 25, 1.0, fixed_steps=1000) == 1000  # a run's own steps cap it
    assert gpu_scientific.plan_steps(400, 0.2, 5, 10, 90, 25, 1.0, fixed_steps=2200) == 1575  # what fits caps them
    assert gpu_scientific.plan_steps(30, 0.2, 5, 10, 90, 25, 1.0) == 1  # no time left: one step, never zero or less
    # the second window's 125m run, from its record: 238 s left at 0.3287 s a step and 25.7 s an evaluation
    assert gpu_scientific.plan_steps(238, 0.3287, 2.6, 25.7, 60, 25, 0.95) == 321


def _record(run, points, metrics=None, **extra):
    return {"run": run, "preset": "125m", "learning_rate": 1e-4, "seed": 42, "device": "NVIDIA H200", "torch": "2.11",
            "transformers": "5.24.0", "git_commit": "0123456789", "window_s": 310, "every_s": 60,
            "calibration": {"s_per_step": 0.33}, "planned_steps": 300, "points": points,
            **({"steps": 300, "metrics": metrics} if metrics else {}), **extra}


def test_the_table_picks_each_run_on_valid_and_says_when_a_run_was_stopped(tmp_path):
    points = [{"train_s": 30.0, "step": 100, "valid_recall@10": 0.05, "test_recall@10": 0.09},
              {"train_s": 60.0, "step": 200, "valid_recall@10": 0.07, "test_recall@10": 0.06},
              {"train_s": 90.0, "step": 300, "valid_recall@10": 0.07, "test_recall@10": 0.05}]
    finished = _record("125m-lr1e-4", points, {"recall@10": 0.05, "ndcg@10": 0.025})
    stopped = _record("20m-lr3e-4", points[:1])
    empty = _record("7m-recipe", [])
    for record in (finished, stopped, empty):
        (tmp_path / f"{record['run']}.json").write_text(json.dumps(record))
    records = gpu_scientific.load(tmp_path)
    assert [r["run"] for r in records] == ["7m-recipe", "20m-lr3e-4", "125m-lr1e-4"]  # RUNS' order
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in gpu_scientific.render(records).splitlines()[2:]}
    # picked on valid: the earliest of the two best valid points (step 200), whose test is 0.06, not test's best 0.09
    assert rows["125m-lr1e-4"][7:9] == ["0.0700 (200)", "0.0600"]
    assert rows["125m-lr1e-4"][4] == "0.33, 0.300" and rows["125m-lr1e-4"][9] == "0.0500 / 0.0250 |"
    assert rows["20m-lr3e-4"][3] == "stopped (300)" and rows["20m-lr3e-4"][9] == "stopped before its end |"
    assert rows["7m-recipe"][6] == "no point taken"


def test_the_report_writes_its_section_and_refuses_a_folder_without_records(tmp_path, monkeypatch):
    results = tmp_path / "results.md"
    results.write_text(f"# Results\n\nbefore\n\n{gpu_scientific.BEGIN}\nold\n{gpu_scientific.END}\n\nafter\n")
    monkeypatch.setattr(gpu_scientific, "RESULTS_MD", results)
    window = tmp_path / "window-1"
    window.mkdir()
    point = {"train_s": 30.0, "step": 100, "valid_recall@10": 0.05, "test_recall@10": 0.04}
    (window / "a.json").write_text(json.dumps(_record("125m-lr1e-4", [point], {"recall@10": 0.04, "ndcg@10": 0.02})))
    assert gpu_scientific.main(["report", str(window)]) == 0
    text = results.read_text()
    assert "old" not in text and text.startswith("# Results\n\nbefore") and text.endswith("after\n")
    assert "**window-1**: 1 runs in a 310 s window" in text and "| 125m-lr1e-4 | 125m | 0.0001 |" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no run records"):
        gpu_scientific.main(["report", str(empty)])


def test_a_calibration_of_fewer_than_two_steps_is_refused(capsys):
    with pytest.raises(SystemExit):
        gpu_scientific.main(["run", "--calibrate-steps", "1"])
    assert "--calibrate-steps must be at least 2" in capsys.readouterr().err
