"""training/reproduce.py: one toy run of each row kind, and the records it saves."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))  # training/ holds scripts, not a package

import grid  # noqa: E402
import reproduce  # noqa: E402

from .test_report import _fake  # noqa: E402
from .toy_data import write_unisrec  # noqa: E402


def test_cuda_device_without_a_gpu_says_so(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device.*drop --device"):
        reproduce.machine_name("cuda")
    assert reproduce.machine_name("cpu") == "2-core CPU"


def test_save_and_load_records(tmp_path):
    path = reproduce.save_record(_fake("LMRec", 7, 0.1, 0.5), tmp_path)
    assert path.name == "scientific-lmrec-seed7-steps5.json"
    assert reproduce.load_records(tmp_path)[0]["seed"] == 7


@pytest.mark.parametrize("row", ["popularity", "id-transformer", "lmrec", "lmrec-lm", "selfpretrain", "lmrec-2x",
                                 "LMRec 1.7m, learning rate 1e-2"])
def test_each_row_kind_runs_two_steps_on_toy_data(row, tmp_path, monkeypatch):
    toy = write_unisrec(tmp_path / "toy", texts={i: f"item number {i}" for i in range(8)})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: '1.7m'\nvocab_size: 300\nrec_batch_size: 2\nlm_batch_size: 2\nmax_length: 64\n"
                      "max_steps: 2\nuse_cpu: true\nlogging_steps: 1\nprefix_pairs: true\nrec_loss_type: softmax\n"
                      "negative_layout: shared\n")
    monkeypatch.setattr(reproduce, "DATASETS", {"toy": {"name": "Toy", "path": str(toy), "recipe": str(recipe)}})
    monkeypatch.setattr(reproduce, "NEGATIVES", tmp_path / "negatives")
    monkeypatch.setattr(reproduce, "ID_TRANSFORMER", dict(reproduce.ID_TRANSFORMER, max_steps=2, batch_size=2,
                                                          n_embd=16, n_layer=1))

    def seven_negatives(data, key):  # a toy catalog of 8 items has only 7 negatives per user
        from lmrec_hf.evaluation import draw_sampled_negatives, eval_targets

        _, _, targets = eval_targets(data, "test", None, 0)
        return draw_sampled_negatives(len(data.items), targets.tolist(), 7, seed=0)

    monkeypatch.setattr(reproduce, "sampled_negatives", seven_negatives)
    record = reproduce.run_row("toy", row, seed=1, max_steps=2 if row != "popularity" else None, work=tmp_path / "w")
    json.dumps(record)
    row = record["row_id"]  # a display name runs its row too
    assert record["row"] == grid.ROWS[row].name and record["data"] == "Toy" and record["seed"] == 1
    assert set(record["metrics"]) == {"full-ranking", "sampled-7"}  # the grid's own runs draw 100
    assert record["metrics"]["full-ranking"]["users"] == 3
    assert f"--rows {row} --seeds 1" in record["command"]
    if row == "lmrec-2x":  # twice the budget, as SelfPretrain's two stages spend
        assert record["steps"] == 4
    elif row == "selfpretrain":
        assert record["steps"] == {"lm_only": 2, "rec_only": 2}
    if record["kind"] in ("lmrec", "selfpretrain"):  # a valid-split score to pick settings on, kept apart
        assert record["valid_metrics"]["full-ranking"]["users"] == 3 and record["valid_time_s"] >= 0
    if row == "lmrec-1.7m-lr1e-2":
        assert record["learning_rate"] == 1e-2 and record["overrides"] == {"preset": "1.7m", "learning_rate": 1e-2}


def test_gpu_records_never_replace_the_cpus(tmp_path):
    cpu = _fake("LMRec", 1, 0.10, 0.5)
    cpu_path = reproduce.save_record(cpu, tmp_path)
    gpu_path = reproduce.save_record(dict(cpu, machine="1x NVIDIA H200, fp32", device="cuda"), tmp_path)
    assert gpu_path.name == "scientific-lmrec-seed1-steps5-cuda.json" and cpu_path.exists()  # not overwritten


def test_unknown_rows_are_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit, match="unknown row 'lmrec-99m'.*reproduce.py list"):
        reproduce.main(["run", "--data", "or", "--rows", "lmrec-99m"])

