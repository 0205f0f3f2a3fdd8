"""Time to quality: the callback's clock leaves evaluation out, and training/curve.py's report renders from records."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lmrec_hf.trainer import LMRecWeightAverage, QualityCurveCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import curve  # noqa: E402


def test_the_curve_evaluates_on_schedule_and_keeps_evaluation_out_of_the_clock(monkeypatch):
    import lmrec_hf.trainer

    # a clock the test moves by hand, so the check holds however busy the cores are
    now = [100.0]
    monkeypatch.setattr(lmrec_hf.trainer.time, "perf_counter", lambda: now[0])
    model = torch.nn.Linear(2, 2).train()
    seen = []

    def evaluate(model, tokenizer):
        seen.append(model.training)
        now[0] += 0.2  # a slow evaluation: it must not count as training time
        return {"valid_recall@10": 0.1, "test_recall@10": 0.2}

    callback = QualityCurveCallback(evaluate, every_s=0.05)
    callback.on_train_begin(None, None, None)
    for step in range(1, 4):
        now[0] += 0.06  # "training"
        callback.on_step_end(None, SimpleNamespace(global_step=step), None, model=model)
    callback.on_train_end(None, SimpleNamespace(global_step=3), None, model=model)  # step 3 has its point already
    assert [p["step"] for p in callback.points] == [1, 2, 3] and seen == [True] * 3 and model.training
    # each point's clock holds the steps' 0.06 s, never the earlier 0.2 s evaluations (which would add 0.2 per point)
    assert [p["train_s"] for p in callback.points] == pytest.approx([0.06, 0.12, 0.18], abs=0.01)
    assert all(p["eval_s"] == pytest.approx(0.2, abs=0.01) and p["test_recall@10"] == 0.2 for p in callback.points)
    with pytest.raises(ValueError, match="every_s must be a positive number of seconds, got 0"):
        QualityCurveCallback(evaluate, every_s=0)


def test_keep_best_puts_back_the_weights_of_the_best_valid_point_at_the_end():
    model = torch.nn.Linear(2, 2)
    scores = iter([0.1, 0.3, 0.2])  # the best valid point is step 2, not the last one
    callback = QualityCurveCallback(lambda model, tokenizer: {"valid_recall@10": next(scores)}, every_s=1e-9,
                                    keep_best="valid_recall@10")
    callback.on_train_begin(None, None, None)
    weights = {}
    for step in range(1, 4):
        with torch.no_grad():
            model.weight.fill_(float(step))  # "training" moves the weights
        weights[step] = model.weight.detach().clone()
        callback.on_step_end(None, SimpleNamespace(global_step=step), None, model=model)
    callback.on_train_end(None, SimpleNamespace(global_step=3), None, model=model)
    assert callback.best_point["step"] == 2 and callback.best_point["valid_recall@10"] == 0.3
    assert torch.equal(model.weight, weights[2]) and not torch.equal(model.weight, weights[3])
    assert [p["step"] for p in callback.points] == [1, 2, 3]  # the curve itself keeps every point

    # the best point is the last one: the weights stay as trained
    scores = iter([0.1, 0.2])
    callback = QualityCurveCallback(lambda model, tokenizer: {"valid_recall@10": next(scores)}, every_s=1e-9,
                                    keep_best="valid_recall@10")
    callback.on_train_begin(None, None, None)
    callback.on_step_end(None, SimpleNamespace(global_step=1), None, model=model)
    with torch.no_grad():
        model.weight.fill_(7.0)
    callback.on_train_end(None, SimpleNamespace(global_step=2), None, model=model)
    assert callback.best_point["step"] == 2 and bool((model.weight == 7.0).all())

    callback = QualityCurveCallback(lambda model, tokenizer: {"valid_recall@10": 0.1}, every_s=1e-9,
                                    keep_best="valid_ndcg@10")
    callback.on_train_begin(None, None, None)
    with pytest.raises(ValueError, match=r"keep_best='valid_ndcg@10' is not among the figures that `evaluate` "
                                       r"returned \(\['valid_recall@10'\]\)"):
        callback.on_step_end(None, SimpleNamespace(global_step=1), None, model=model)


def test_keep_best_with_a_weight_average_scores_and_keeps_the_average():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = LMRecWeightAverage(0.5)
    scores = iter([0.1, 0.3, 0.2])
    scored = []

    def evaluate(model, tokenizer):
        scored.append(model.weight.item())
        return {"valid_recall@10": next(scores)}

    curve_callback = QualityCurveCallback(evaluate, every_s=1e-9, keep_best="valid_recall@10")
    curve_callback.average = average
    average.on_train_begin(None, None, None, model=model)
    curve_callback.on_train_begin(None, None, None)
    for step in range(1, 4):
        with torch.no_grad():
            model.weight.fill_(float(step) * 10)  # "training"
        average.on_step_end(None, None, None, model=model)
        curve_callback.on_step_end(None, SimpleNamespace(global_step=step), None, model=model)
        assert model.weight.item() == step * 10  # the step's weights are back after each point
    # decays min(0.5, (1 + n) / (10 + n)) = 0.1, 2/11, 0.25: the average of 0 then 10, 20, 30
    expected = [9.0, 9.0 + (9 / 11) * 11.0]
    expected.append(expected[1] + 0.75 * (30 - expected[1]))
    assert scored == pytest.approx(expected)
    average.on_train_end(None, None, None, model=model)  # the trainer puts the average's callback first
    assert model.weight.item() == pytest.approx(expected[2])
    curve_callback.on_train_end(None, SimpleNamespace(global_step=3), None, model=model)
    assert curve_callback.best_point["step"] == 2 and model.weight.item() == pytest.approx(expected[1])


def _record(model_id, seed, final, recipe=None):
    points = [{"train_s": 600.0, "step": 500, "valid_recall@10": final / 2, "test_recall@10": final / 2,
               "eval_s": 80.0},
              {"train_s": 1200.0, "step": 1000, "valid_recall@10": final, "test_recall@10": final, "eval_s": 80.0}]
    return {"model_id": model_id, "seed": seed, "recipe": recipe, "points": points, "steps": 1000,
            "train_time_s": 1500.0, "metrics": {"recall@10": final, "ndcg@10": final / 2},  # 1,500 s with setup
            "command": f"python training/curve.py run --model {model_id} --seeds {seed}"}


def test_the_report_renders_the_curve_table_and_plot_from_records(tmp_path):
    recipe = "training/configs/scientific-best-cpu.yaml"
    records = [_record("lmrec", 42, 0.08, recipe), _record("lmrec", 43, 0.1, recipe), _record("id-transformer", 42,
                                                                                               0.09)]
    results_md = tmp_path / "results.md"
    results_md.write_text("# Results\n\nkept\n")
    curve.write_report(records, results_md)
    text = results_md.read_text()
    assert text.startswith("# Results\n\nkept\n") and curve.BEGIN in text and curve.END in text
    assert ("| LMRec (scientific-best-cpu.yaml, 1,000 steps) | 42 | 1,000 | 1,200 | 600: 0.0400 / 0.0400; "
            "1,200: 0.0800 / ") in text
    assert "LMRec (scientific-best-cpu.yaml, 1,000 steps): 0.0900 ± 0.0141 (2 seeds)" in text
    assert "ID transformer: 0.0900 (1 seed)" in text
    assert "| 0.0800 (1,200) | 0.0800 | 0.0400 |" in text  # picked by valid: the last point here

    # a run that overfits: valid peaks mid-run, and "picked by valid" takes that point's test figure, never the best
    # test figure
    overfit = _record("lmrec", 44, 0.06, recipe)
    first, last = overfit["points"]
    overfit["points"] = [dict(first, **{"valid_recall@10": 0.11, "test_recall@10": 0.09}),
                         dict(first, train_s=900.0, **{"valid_recall@10": 0.11, "test_recall@10": 0.095}),
                         dict(last, **{"valid_recall@10": 0.07, "test_recall@10": 0.1})]
    assert curve.best_valid_point(overfit)["train_s"] == 600.0  # the earliest of a tie
    curve.write_report([overfit, dict(overfit, seed=45, keep_best="valid_recall@10")], results_md)
    text = results_md.read_text()
    assert "| 0.0900 (600) | 0.0600 | 0.0300 |" in text
    assert ("picked by valid, mean ± std over seeds: LMRec (scientific-best-cpu.yaml, 1,000 steps): 0.0900 (1 seed)"
            in text)
    assert "LMRec (scientific-best-cpu.yaml, 1,000 steps, best valid kept): 0.0900 (1 seed)" in text
    curve.write_report(records[:1], results_md)  # a second report replaces the section, never appends one
    assert results_md.read_text().count(curve.BEGIN) == 1 and "ID transformer: 0.0900" not in results_md.read_text()
    assert (tmp_path / "results" / "time-to-quality.png").stat().st_size > 1000


def test_a_keep_best_run_gets_its_own_record_file(tmp_path, monkeypatch):
    monkeypatch.setattr(curve, "RECORDS", tmp_path)
    record = _record("lmrec", 42, 0.08, "training/configs/scientific-best-cpu.yaml")
    assert curve.save_record(record).name == "lmrec-scientific-best-cpu-1000-steps-seed42.json"
    kept = curve.save_record(dict(record, keep_best="valid_recall@10"))
    assert kept.name == "lmrec-scientific-best-cpu-1000-steps-keep-best-seed42.json"
    changed = curve.save_record(dict(record, overrides=["--item_id_embeddings", "true"]))
    assert changed.name == "lmrec-scientific-best-cpu-1000-steps-item_id_embeddings-true-seed42.json"
    assert len(curve.load_records()) == 3  # the plain run's record is not overwritten
    # a JSON value on the command line: no quotes, braces, colons or spaces in the file's name
    kwargs = curve.save_record(dict(record, overrides=["--lr_scheduler_kwargs", '{"num_decay_steps": 440}']))
    assert kwargs.name == "lmrec-scientific-best-cpu-1000-steps-lr_scheduler_kwargs-num_decay_steps_440-seed42.json"
    assert curve._label(json.loads(changed.read_text())) == ("LMRec (scientific-best-cpu.yaml, 1,000 steps, "
                                                             "--item_id_embeddings true)")


def test_a_change_to_the_recipe_is_judged_on_valid_against_the_plain_run_of_its_seed():
    recipe = "training/configs/scientific-best-cpu.yaml"
    plain = [_record("lmrec", 42, 0.10, recipe), _record("lmrec", 43, 0.102, recipe)]  # best valid 0.100 / 0.102
    # better on valid but worse on test: the verdict follows valid, never test
    better = dict(_record("lmrec", 42, 0.12, recipe), overrides=["--vocab_size", "4096"],
                  metrics={"recall@10": 0.05, "ndcg@10": 0.02})
    noise = dict(_record("lmrec", 43, 0.1035, recipe), overrides=["--num_negatives", "0"])
    worse = dict(_record("lmrec", 42, 0.08, recipe), overrides=["--max_history_items", "10"])
    unmatched = dict(_record("lmrec", 44, 0.2, recipe), overrides=["--max_history_items", "10"])
    lines = curve.render_changes([*plain, better, noise, worse, unmatched, _record("id-transformer", 42, 0.3)])
    text = "\n".join(lines)
    assert "best valid points read 0.1010 ± 0.0014 over 2 seeds at 1.20 s a step" in text
    assert "past twice that spread (0.0028)" in text
    rows = {(line.split(" | ")[0], line.split(" | ")[1]): line for line in lines if line.startswith("| `")}
    assert rows[("| `--vocab_size 4096`", "42")].endswith(
        "| 0.1200 (1,000) | +0.0200 | 0.1200 | better | 0.1200 | 0.0500 |")
    assert "| +0.0015 | 0.1035 | seed noise |" in rows[("| `--num_negatives 0`", "43")]
    assert "| -0.0200 | 0.0800 | worse |" in rows[("| `--max_history_items 10`", "42")]
    assert "| no plain run of this seed | 0.2000 | not compared |" in rows[("| `--max_history_items 10`", "44")]
    assert curve.render_changes(plain) == []  # nothing changed: no table
    single = "\n".join(curve.render_changes([plain[0], better]))
    assert "(unknown (one plain seed))" in single and "| +0.0200 | 0.1200 | not judged: one plain seed |" in single


def test_an_option_over_an_adopted_state_of_the_recipe_is_judged_against_that_states_runs():
    recipe = "training/configs/scientific-best-cpu.yaml"
    plain = [dict(_record("lmrec", seed, valid, recipe), max_history_items=20)
             for seed, valid in ((42, 0.10), (43, 0.102), (44, 0.104))]  # the file before the adoption
    state = ["--max_history_items", "10", "--max_steps", "2200"]  # adopted: the file now resolves to these runs
    adopted = [dict(_record("lmrec", seed, valid, recipe), overrides=state, steps=2200, max_history_items=10)
               for seed, valid in ((42, 0.110), (43, 0.113), (44, 0.116))]  # best valid 0.113 ± 0.003
    hybrid = ["--item_id_embeddings", "true"]
    over_new = [dict(_record("lmrec", seed, valid, recipe), overrides=hybrid, steps=2200, max_history_items=10)
                for seed, valid in ((42, 0.111), (43, 0.114))]  # +0.001 on the new state, +0.0115 on the old one
    over_old = dict(_record("lmrec", 42, 0.103, recipe), overrides=hybrid, max_history_items=20)
    # an option with its own steps over a state without plain runs: against the reference, as before
    stretched = dict(_record("lmrec", 42, 0.105, recipe), overrides=[*hybrid, "--max_steps", "2700"], steps=2700,
                     max_history_items=20)
    # the same over the new file, with a state of its own that has no plain runs: against the state its file held
    longer = dict(_record("lmrec", 42, 0.108, recipe), overrides=["--dropout", "0.1", "--max_steps", "3000"],
                  steps=3000, max_history_items=10, recipe_state=[2200, 10])
    lines = curve.render_changes([*plain, *adopted, *over_new, over_old, stretched, longer])
    text = "\n".join(lines)
    headings = [line for line in lines if line.startswith("### ")]
    assert headings == [
        "### Changes to scientific-best-cpu.yaml against its plain run at 1,000 steps and 20-item histories, picked "
        "on valid (generated)",
        "### Changes to scientific-best-cpu.yaml against its plain run at 2,200 steps and 10-item histories, picked "
        "on valid (generated)"]
    first, second = text.split(headings[1])
    # the adopted runs are still the change judged against the file before it, and the base of what comes after
    assert "| `--max_history_items 10 --max_steps 2200` | 42 | 2,200 |" in first
    assert "| `--item_id_embeddings true` | 42 | 1,000 | 1.20 | 0.1030 (1,000) | +0.0030 |" in first
    assert "| `--item_id_embeddings true --max_steps 2700` | 42 | 2,700 |" in first
    assert "(the runs of `--max_history_items 10 --max_steps 2200`, adopted into the file)" in second
    assert "read 0.1130 ± 0.0030 over 3 seeds" in second and "past twice that spread (0.0060)" in second
    per_seed, over_seeds = second.split("Over seeds")
    rows = [line for line in per_seed.split("\n") if line.startswith("| `")]
    assert [line.split(" | ")[:2] for line in rows] == [["| `--dropout 0.1 --max_steps 3000`", "42"],
                                                      ["| `--item_id_embeddings true`", "42"],
                                                      ["| `--item_id_embeddings true`", "43"]]
    assert "| 3,000 |" in rows[0] and "| -0.0020 |" in rows[0]  # against the adopted seed 42's 0.110
    assert "| +0.0010 | 0.1110 | seed noise |" in rows[1]
    mean = [line for line in over_seeds.split("\n") if line.startswith("| `")]
    assert len(mean) == 1 and "| 0.1125 ± 0.0021 | 0.1115 ± 0.0021 | +0.0010 |" in mean[0]
    # a run of the new file without overrides resolves to the adopted runs' arguments: it joins them as a plain run
    fresh = dict(_record("lmrec", 45, 0.119, recipe), steps=2200, max_history_items=10)
    text = "\n".join(curve.render_changes([*plain, *adopted, *over_new, fresh]))
    assert "read 0.1145 ± 0.0039 over 4 seeds" in text.split("at 2,200 steps and 10-item histories, picked")[1]


def test_a_runs_recipe_state_is_read_from_the_file_at_its_commit_when_the_record_lacks_it(tmp_path, monkeypatch):
    import subprocess

    import yaml

    recipe = "training/configs/scientific-best-cpu.yaml"
    # what a run records: the file as the trainer resolves it, before the command line
    config = yaml.safe_load((curve.ROOT / recipe).read_text())
    assert curve._file_state(recipe) == [config["max_steps"], config["max_history_items"], config["vocab_size"],
                                         config["rec_loss_weight"]]
    assert curve._recipe_state({"recipe_state": [3000, 10, 4096, 0.5], "git_commit": "0" * 40,
                                "recipe": recipe}) == (3000, 10, 4096, 0.5)
    # records made before the vocabulary, or λ, joined the state
    assert curve._recipe_state({"recipe_state": [3000, 10], "git_commit": "0" * 40, "recipe": recipe}) == (3000, 10,
                                                                                                           None, None)
    assert curve._recipe_state({"recipe_state": [3000, 10, 4096], "recipe": recipe}) == (3000, 10, 4096, None)
    assert curve._recipe_state({"git_commit": "0" * 40, "recipe": recipe}) is None  # a commit this clone lacks

    # an older record: the file at its commit, read from a repository of the test's own (any clone depth will do)
    def commit(text: str) -> str:
        (tmp_path / recipe).write_text(text)
        git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "add", recipe], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", "recipe"], check=True, capture_output=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
    (tmp_path / recipe).parent.mkdir(parents=True)
    before = commit("max_history_items: 20\nmax_steps: 1800\n")
    after = commit("max_history_items: 10\nmax_steps: 2200\nvocab_size: 4096\nrec_loss_weight: 1.0\n")
    monkeypatch.setattr(curve, "ROOT", tmp_path)
    assert curve._recipe_state({"git_commit": before, "recipe": recipe}) == (1800, 20, None, None)
    assert curve._recipe_state({"git_commit": after, "recipe": recipe}) == (2200, 10, 4096, 1.0)


def test_a_vocabulary_over_an_adopted_state_is_judged_against_that_state_and_once_adopted_is_its_own():
    recipe = "training/configs/scientific-best-cpu.yaml"

    def run(seed, valid, overrides, steps, items, vocab, file_state, day):
        return dict(_record("lmrec", seed, valid, recipe), overrides=overrides, steps=steps, max_history_items=items,
                    vocab_size=vocab, recipe_state=file_state, date=f"2026-12-0{day} 10:00 UTC")

    seeds = (42, 43, 44)
    plain = [run(seed, 0.100 + 0.002 * i, [], 1000, 20, 8192, [1000, 20, 8192], 1) for i, seed in enumerate(seeds)]
    state = ["--max_history_items", "10", "--max_steps", "2200"]
    adopted = [run(seed, 0.110 + 0.003 * i, state, 2200, 10, 8192, [1000, 20, 8192], 2)
               for i, seed in enumerate(seeds)]
    vocab = ["--vocab_size", "4096"]  # state-only, over the 2,200-step file: against its runs, not the reference
    smaller = [run(seed, 0.109 + 0.003 * i, vocab, 2200, 10, 4096, [2200, 10, 8192], 3)
               for i, seed in enumerate(seeds)]
    early = run(42, 0.101, vocab, 1000, 20, 4096, [1000, 20, 8192], 1)  # the same flag over the earlier file
    # once the file holds vocabulary 4,096, an option over it is judged against the three vocabulary runs
    option = run(42, 0.112, ["--item_bank_negatives", "512"], 2200, 10, 4096, [2200, 10, 4096], 4)
    lines = curve.render_changes([*plain, *adopted, *smaller, early, option])
    headings = [line for line in lines if line.startswith("### ")]
    assert headings == [f"### Changes to scientific-best-cpu.yaml against its plain run at {at}, picked on valid "
                        "(generated)" for at in ("1,000 steps, 20-item histories and vocabulary 8,192",
                                                 "2,200 steps, 10-item histories and vocabulary 8,192",
                                                 "2,200 steps, 10-item histories and vocabulary 4,096")]
    text = "\n".join(lines)
    first, second, third = (text.split(h)[1].split("### ")[0] for h in headings)
    assert "| `--vocab_size 4096` | 42 | 1,000 |" in first and "| +0.0010 |" in first
    assert "| `--vocab_size 4096` | 42 | 2,200 |" not in first
    assert "| `--vocab_size 4096` | 43 | 2,200 | 0.55 | 0.1120 (1,000) | -0.0010 |" in second
    assert "| `--vocab_size 4096` | 2,200 | 42, 43, 44 |" in second and "| -0.0010 | 0.0035 | seed noise |" in second
    assert "(the runs of `--vocab_size 4096`, adopted into the file)" in third
    # a run made from the file once it holds the state joins them, and the table says so
    made = run(45, 0.111, [], 2200, 10, 4096, [2200, 10, 4096], 5)
    third = "\n".join(curve.render_changes([*plain, *adopted, *smaller, early, option, made])).split(headings[2])[1]
    assert "(the runs of `--vocab_size 4096`, adopted into the file, and runs made from the file since)" in third
    assert "over 4 seeds" in third and "over 3 seeds" not in third
    assert "| `--item_bank_negatives 512` | 42 | 2,200 | 0.55 | 0.1120 (1,000) | +0.0030 |" in third
    # as many runs made from the file as the reference has, and more: the reference stays the recipe before any
    # adoption, and the vocabulary runs stay among the file's plain runs
    more = [run(seed, 0.111, [], 2200, 10, 4096, [2200, 10, 4096], 6) for seed in (46, 47, 48)]
    for extra in (more[:2], more):
        lines = curve.render_changes([*plain, *adopted, *smaller, early, option, made, *extra])
        assert [line for line in lines if line.startswith("### ")] == headings
        third = "\n".join(lines).split(headings[2])[1]
        assert f"over {4 + len(extra)} seeds" in third and "adopted into the file, and runs made" in third


def test_the_recipe_row_pools_the_runs_at_the_state_the_file_holds_now(monkeypatch):
    recipe = "training/configs/scientific-best-cpu.yaml"

    def run(seed, final, overrides, vocab, file_state):
        return dict(_record("lmrec", seed, final, recipe), overrides=overrides, steps=2200, max_history_items=10,
                    vocab_size=vocab, recipe_state=file_state, date="2026-12-04 10:00 UTC")

    reference = [dict(_record("lmrec", seed, 0.09, recipe), max_history_items=20, vocab_size=8192) for seed in (42, 43)]
    older = run(42, 0.2, ["--max_history_items", "10", "--max_steps", "2200"], 8192, [1000, 20, 8192])
    adopted = [run(seed, final, ["--vocab_size", "4096"], 4096, [2200, 10, 8192])
               for seed, final in ((42, 0.08), (43, 0.1))]
    plain = run(45, 0.09, [], 4096, [2200, 10, 4096])  # made from the file once it held vocabulary 4,096
    option = run(42, 0.5, ["--ema_decay", "0.995"], 4096, [2200, 10, 4096])  # a change, not the recipe
    kept = dict(plain, keep_best="valid_recall@10", seed=46)  # another checkpoint of a run, not another run
    records = [*reference, older, *adopted, plain, option, kept]
    monkeypatch.setattr(curve, "_current_state", lambda path: (2200, 10, 4096, None))
    (line,) = [line for line in curve.render_recipe_rows(records) if line]
    assert line.startswith("**The recipe as scientific-best-cpu.yaml holds it now** (2,200 steps, 10-item histories "
                           "and vocabulary 4,096; its runs without overrides and those whose overrides only set this "
                           "state), 3 seeds (42, 43, 45): final test Recall@10 0.0900 ± 0.0100, NDCG@10 0.0450 ± "
                           "0.0050; picked by valid, test Recall@10 0.0900 ± 0.0100; best valid Recall@10 0.0900 ± "
                           "0.0100; 1,200 to 1,200 s of training.")
    assert line in "\n".join(curve.render(records).splitlines())
    # the file at a state no run was made at: no row
    monkeypatch.setattr(curve, "_current_state", lambda path: (3000, 10, 4096))
    assert curve.render_recipe_rows(records) == []


def test_a_change_on_several_seeds_is_judged_by_its_mean_against_the_plain_mean_of_the_same_seeds():
    recipe = "training/configs/scientific-best-cpu.yaml"
    plain = [_record("lmrec", 42, 0.10, recipe), _record("lmrec", 43, 0.102, recipe),
             _record("lmrec", 44, 0.104, recipe)]  # best valid 0.100 ± 0.002: one seed's bar 0.004
    # +0.003 on each seed: noise for one seed (0.003 < 0.004), past the bar for the mean of three (0.004 / √3 = 0.0023)
    change = [dict(_record("lmrec", seed, valid, recipe), overrides=["--vocab_size", "4096"])
              for seed, valid in ((42, 0.103), (43, 0.105), (44, 0.107))]
    worse = [dict(_record("lmrec", seed, valid, recipe), overrides=["--num_negatives", "0"])
             for seed, valid in ((42, 0.095), (43, 0.097))]  # -0.005 on the mean of two: past 0.004 / √2 = 0.0028
    noise = [dict(_record("lmrec", seed, valid, recipe), overrides=["--max_history_items", "10"])
             for seed, valid in ((42, 0.101), (43, 0.102))]  # +0.0005 on the mean
    lone = dict(_record("lmrec", 45, 0.2, recipe), overrides=["--item_max_length", "64"])  # no plain seed 45
    # the same option over a longer recipe (the file's steps moved): its own change, never pooled with the above
    longer = dict(_record("lmrec", 42, 0.2, recipe), overrides=["--vocab_size", "4096"], steps=2200)
    lines = curve.render_changes([*plain, *change, *worse, *noise, lone, dict(lone, seed=46), longer])
    per_seed = [line for line in lines if line.split(" | ")[:3] in (["| `--vocab_size 4096`", f"{seed}", "1,000"]
                                                                    for seed in (42, 43, 44))]
    assert len(per_seed) == 3 and all("| +0.0030 |" in line and "| seed noise |" in line for line in per_seed)
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| `") and " | 42, " in line}
    assert rows["| `--vocab_size 4096`"].startswith(
        "| `--vocab_size 4096` | 1,000 | 42, 43, 44 | 1.20 | 0.1050 ± 0.0020 | 0.1020 ± 0.0020 | +0.0030 | 0.0023 | "
        "better |")
    assert "| 42, 43 | 1.20 | 0.0960 ± 0.0014 | 0.1010 ± 0.0014 | -0.0050 | 0.0028 | worse |" in rows[
        "| `--num_negatives 0`"]
    assert "| +0.0005 | 0.0028 | seed noise |" in rows["| `--max_history_items 10`"]
    lone_rows = [line for line in lines if line.startswith("| `--item_max_length 64`")]
    assert len(lone_rows) == 2 and all("not compared" in line for line in lone_rows)  # no plain run: no mean row
    single_seed = [*plain, change[0]]
    assert "Over seeds" not in "\n".join(curve.render_changes(single_seed))


def test_lambda_is_part_of_the_recipe_state_so_a_lambda_run_is_a_state_only_change_and_once_adopted_the_recipe(
        monkeypatch):
    recipe = "training/configs/scientific-best-cpu.yaml"

    def run(seed, valid, overrides, weight, file_weight):
        return dict(_record("lmrec", seed, valid, recipe), overrides=overrides, steps=2200, max_history_items=10,
                    vocab_size=4096, rec_loss_weight=weight, recipe_state=[2200, 10, 4096, file_weight],
                    date="2026-12-04 10:00 UTC")

    plain = [run(seed, 0.100 + 0.002 * i, [], 1.0, 1.0) for i, seed in enumerate((42, 43, 44))]
    halved = [run(seed, 0.108 + 0.002 * i, ["--rec_loss_weight", "0.5"], 0.5, 1.0)
              for i, seed in enumerate((42, 43, 44))]
    assert curve.options_beyond_state(halved[0]) == []
    text = "\n".join(curve.render_changes([*plain, *halved]))
    assert ("### Changes to scientific-best-cpu.yaml against its plain run at 2,200 steps, 10-item histories, "
            "vocabulary 4,096 and λ 1, picked on valid (generated)") in text
    assert "| `--rec_loss_weight 0.5` | 2,200 | 42, 43, 44 |" in text and "| +0.0080 |" in text
    # the file at λ 0.5: the three runs are its row; at λ 1 the earlier runs are
    monkeypatch.setattr(curve, "_current_state", lambda path: (2200, 10, 4096, 0.5))
    (line,) = [line for line in curve.render_recipe_rows([*plain, *halved]) if line]
    assert "(2,200 steps, 10-item histories, vocabulary 4,096 and λ 0.5;" in line and "3 seeds (42, 43, 44)" in line
    assert "best valid Recall@10 0.1100 ± 0.0020" in line
    monkeypatch.setattr(curve, "_current_state", lambda path: (2200, 10, 4096, 1.0))
    (line,) = [line for line in curve.render_recipe_rows([*plain, *halved]) if line]
    assert "best valid Recall@10 0.1020 ± 0.0020" in line
