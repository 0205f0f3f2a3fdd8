"""training/transfer.py's report: the transfer table with the cost ratio, the scarce-data table and its plot, from
records only."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import transfer  # noqa: E402


def _record(row, seed, share, recall, **facts):
    metrics = {"recall@10": recall, "ndcg@10": recall / 2, "recall@50": recall * 2, "ndcg@50": recall}
    return {"row_id": row, "row": transfer.ROWS[row], "seed": seed, "train_share": share, "metrics": metrics,
            "trainable_parameters": facts.pop("trainable_parameters", 10),
            "command": f"python training/transfer.py run --rows {row}", **facts}


def test_the_report_renders_the_tables_and_the_plot_from_records(tmp_path, monkeypatch):
    records = [_record("probe-tl", 0, 1.0, 0.02, epoch_time_s=2.0, train_time_s=20, extraction_time_s=300),
               _record("probe-tl", 1, 1.0, 0.04, epoch_time_s=2.0, train_time_s=20, extraction_time_s=300),
               _record("finetune", 42, 1.0, 0.05, epoch_time_s=400.0, train_time_s=900,
                       trainable_parameters=7_000_000),
               _record("probe-tl", 0, 0.01, 0.01), _record("id-transformer", 0, 0.01, 0.005),
               _record("id-transformer", 0, 1.0, 0.09),
               _record("id-transformer", 0, 1.0, 0.08, cold_fraction=0.1, cold_items=439,
                       metrics_cold={"recall@10": 0.0, "ndcg@10": 0.0, "users": 800},
                       metrics_warm={"recall@10": 0.1, "ndcg@10": 0.05, "users": 7642})]
    results_md = tmp_path / "results.md"
    results_md.write_text("# Results\n\nkept text\n")
    (tmp_path / "results").mkdir()
    transfer.write_report(records, results_md)
    text = results_md.read_text()
    assert text.startswith("# Results\n\nkept text\n") and transfer.BEGIN in text and transfer.END in text
    assert "| LMRec^TL probe | 0, 1 | 0.0300 ± 0.0141 | 0.0150 ± 0.0071 |" in text
    assert "| 10 | 2.00 ± 0.00 | 320 ± 0 | x200 |" in text  # 400 s over 2 s per epoch; total counts the extraction
    assert "| LMRec^TL full finetune | 42 | 0.0500 |" in text and "| 7,000,000 | 400.00 | 900 | x1.0 |" in text
    assert "| row | 0.01 | 1 |" in text and "| ID transformer | 0.0050 | 0.0900 |" in text
    assert "| ID transformer | 0 | 7,642 | 0.1000 | 0.0500 | 800 | 0.0000 | 0.0000 |" in text
    assert "439 items (10%, seed 0) held out" in text and "| ID transformer | 0.0050 | 0.0900 |" in text
    assert (tmp_path / "results" / "transfer-scarce-data.png").stat().st_size > 1000
    plotted = []
    monkeypatch.setattr(transfer, "plot_scarce", lambda rows, path: plotted.extend(rows))
    transfer.write_report(records, results_md)
    assert plotted and not any(r.get("cold_fraction") for r in plotted)  # the cold-start run is not on the curve
    transfer.write_report(records[:3], results_md)  # a second report replaces the section, never appends one
    assert results_md.read_text().count(transfer.BEGIN) == 1 and "| row | 0.01" not in results_md.read_text()


def test_the_from_scratch_row_comes_from_curve_runs_at_its_own_settings(tmp_path, monkeypatch):
    import json

    import curve
    import yaml

    monkeypatch.setattr(transfer, "RECORDS", tmp_path)
    (tmp_path / "finetune.json").write_text(json.dumps(_record("finetune", 42, 1.0, 0.05, steps_per_epoch=266,
                                                               epoch_time_s=400.0)))
    steps = transfer.SCRATCH_SETTINGS["max_steps"]
    run = {"model_id": "lmrec", "seed": 42, "recipe": "training/configs/scientific-best-cpu.yaml", "steps": steps,
           "train_time_s": 5000.0, "points": [{"train_s": 2000.0}, {"train_s": steps * 1.0}],
           "metrics": {"recall@10": 0.09}, "trainable_parameters": 123, "command": "python training/curve.py run",
           "overrides": [], "max_history_items": 20}
    recipe = yaml.safe_load((transfer.ROOT / "training/configs/scientific-best-cpu.yaml").read_text())
    now = {"steps": recipe["max_steps"], "max_history_items": recipe["max_history_items"],
           "vocab_size": recipe["vocab_size"]}
    assert now != {"steps": steps, "max_history_items": 20, "vocab_size": 8192}  # the recipe moved on; the row stays
    # the same settings set on the command line over the recipe as it stands: the same row
    pinned = dict(run, seed=44, overrides=["--max_history_items", "20", "--max_steps", str(steps)])
    not_rows = [dict(run, recipe="training/configs/scientific-cpu.yaml"),  # not the best recipe
                dict(run, steps=steps + 100),  # an older, longer run of the recipe
                dict(run, **now),  # the recipe as it stands now: another recipe than the row's
                dict(run, max_history_items=10),  # 10-item histories at the row's steps
                dict(run, vocab_size=4096, overrides=["--vocab_size", "4096"]),  # another vocabulary, ditto
                dict(run, rec_loss_weight=0.5, overrides=["--rec_loss_weight", "0.5"]),  # another λ, ditto
                dict(run, overrides=["--learning_rate", "5e-4"]),  # the recipe changed on the command line
                dict(run, keep_best="valid_recall@10"),  # picked by valid: another selection
                dict(run, model_id="id-transformer"),
                dict(run, overrides=["--init_from", "enc", "--learning_rate", "5e-4"]),  # a pretrained start, tuned
                dict(run, overrides=["--init_from"])]  # malformed
    not_rows += [dict(run, overrides=["--max_steps=1800", "--init_from"]),  # malformed, a state flag written with =
                 dict(run, overrides=["enc", "--init_from"])]  # a value where a flag belongs
    started = dict(run, seed=43, overrides=["--init_from", "enc", "--max_length", "128"], encoder="enc",
                   encoder_sha256="sha256:" + "c" * 64, metrics={"recall@10": 0.095})
    # the same start with each flag written `--name=value`, as curve.py's own reading of the overrides allows
    started_eq = dict(started, seed=45, overrides=[f"--max_steps={steps}", "--init_from=enc", "--max_length=128"])
    monkeypatch.setattr(curve, "load_records", lambda: [run, *not_rows, started, pinned, started_eq])
    records = transfer.load_records()
    scratch = [r for r in records if r["row_id"] == "scratch"]
    assert [r["seed"] for r in scratch] == [42, 44] and scratch[0]["row"] == transfer.ROWS["scratch"]
    finetuned = [r for r in records if r["row_id"] == "finetune-recipe"]
    assert [r["seed"] for r in finetuned] == [43, 45] and finetuned[0]["encoder_sha256"].endswith("c" * 64)
    assert finetuned[0]["metrics"]["recall@10"] == 0.095 and "encoder" not in scratch[0]
    # the training loop's clock (evaluations out), and the finetune's 266 steps per epoch at 1 s a step
    assert scratch[0]["train_time_s"] == steps and scratch[0]["epoch_time_s"] == 266.0
    assert scratch[0]["trainable_parameters"] == 123 and scratch[0]["metrics"]["recall@10"] == 0.09


def test_the_scratch_row_pins_the_same_fields_curve_py_calls_the_recipes_state():
    import curve

    # curve_row_id drops curve.py's state flags from a run's overrides and checks the record's values against
    # SCRATCH_SETTINGS instead; a field in one and not the other would let a changed run pass as the scratch row.
    assert set(curve.STATE_OPTIONS) == {f"--{name}" for name in transfer.SCRATCH_SETTINGS}


def test_the_runner_refuses_a_full_data_scratch_run_and_scales_from_scratch_steps_with_the_share():
    import pytest

    with pytest.raises(ValueError, match="read from issue 24's time-to-quality runs.*got 1"):
        transfer.check_row("scratch", 1.0, None)
    with pytest.raises(ValueError, match="'finetune-recipe' row is read from.*--init_from"):
        transfer.check_row("finetune-recipe", 0.1, None)
    transfer.check_row("scratch", 0.01, None)
    transfer.check_row("scratch", 1.0, 0.1)  # the curve runs hold no cold items out
    assert [transfer.scaled_steps(1800, s) for s in (0.01, 0.1, 0.25, 1.0)] == [200, 200, 450, 1800]
    assert transfer.scaled_steps(3000, 0.05) == 200 and transfer.scaled_steps(3000, 0.25) == 750  # the ID grid's


def test_a_lora_rate_sweep_is_its_own_row_and_file_never_pooled_with_the_default(tmp_path, monkeypatch):
    default = _record("lora", 42, 1.0, 0.02, learning_rate=3e-3, epoch_time_s=300.0)
    older = {k: v for k, v in _record("lora", 43, 1.0, 0.04, epoch_time_s=300.0).items()}  # no rate: the default
    swept = [_record("lora", 42, 1.0, 0.03, learning_rate=1e-2, epoch_time_s=300.0),
             _record("lora", 42, 0.1, 0.01, learning_rate=1e-2), _record("lora", 42, 0.1, 0.005, learning_rate=3e-3)]
    assert [transfer.row_key(r) for r in (default, older, swept[0])] == [
        ("lora", ""), ("lora", ""), ("lora", "learning rate 0.01")]
    assert transfer.row_key(_record("finetune", 42, 1.0, 0.05, learning_rate=1e-4)) == ("finetune", "")
    text = transfer.render([default, older, *swept])
    assert "| LMRec^TL + LoRA (r 8, attention) | 42, 43 | 0.0300 ± 0.0141 |" in text  # the default's two seeds
    assert "| LMRec^TL + LoRA (r 8, attention), learning rate 0.01 | 42 | 0.0300 |" in text
    assert "| LMRec^TL + LoRA (r 8, attention), learning rate 0.01 | 0.0100 | 0.0300 |" in text  # scarce table
    assert text.index("attention) | 42, 43") < text.index("learning rate 0.01 | 42 |")  # default first
    monkeypatch.setattr(transfer, "RECORDS", tmp_path)
    paths = {transfer.save_record(r).name for r in (default, swept[0])}
    assert paths == {"lora-share1-seed42.json", "lora-share1-lr0.01-seed42.json"}  # neither overwrites the other
    cold = dict(swept[0], cold_fraction=0.1)
    assert transfer.save_record(cold).name == "lora-share1-cold0.1-lr0.01-seed42.json"


def test_the_runner_refuses_a_rate_or_step_count_that_cannot_train(capsys):
    import pytest

    for bad, said in ((["--lora-learning-rate", "0"], "positive number, got 0; the default is 0.003"),
                      (["--lora-learning-rate", "nan"], "positive number, got nan"),
                      (["--max-steps", "0"], "at least 1, got 0; the default is 300")):
        with pytest.raises(SystemExit):  # refused before any data or encoder is loaded
            transfer.main(["run", "--rows", "lora", *bad])
        assert said in capsys.readouterr().err


def test_the_report_names_each_rows_encoder_and_calls_out_two_pretrainings_at_one_path(tmp_path):
    import pytest

    from lmrec_hf.transfer import encoder_fingerprint

    tl, lm = "outputs/pretrain-cpu/model", "outputs/pretrain-cpu-lm/model"
    one = [_record("probe-tl", 0, 1.0, 0.01, encoder=tl, encoder_sha256="sha256:" + "a" * 64),
           _record("finetune", 42, 1.0, 0.05, encoder=tl, encoder_sha256="sha256:" + "a" * 64),
           _record("probe-tl-lm", 0, 1.0, 0.01, encoder=lm, encoder_sha256="sha256:" + "b" * 64),
           _record("id-transformer", 0, 1.0, 0.09)]  # no encoder: not listed
    line = transfer.encoders_line(one)
    assert line == (f"Encoders (first 12 digits of the weights' sha256): `{lm}` bbbbbbbbbbbb (LMRec^TL-lm probe); "
                    f"`{tl}` aaaaaaaaaaaa (LMRec^TL probe; LMRec^TL full finetune).")
    assert line in transfer.render(one)
    older = _record("lora", 42, 1.0, 0.02, encoder=tl)  # from before the hash was kept
    line = transfer.encoders_line([*one, older])
    assert f"`{tl}` hash not recorded (LMRec^TL + LoRA (r 8, attention))" in line
    assert line.endswith(f"Rows read more than one pretraining at `{tl}`: compare across them with care.")
    assert transfer.encoders_line([_record("popularity", 0, 1.0, 0.03)]) == ""

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert encoder_fingerprint(tmp_path) == "sha256:" + __import__("hashlib").sha256(b"weights").hexdigest()
    with pytest.raises(ValueError, match="holds no model\\*.safetensors"):
        encoder_fingerprint(tmp_path / "empty")
