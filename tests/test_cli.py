import subprocess
import sys
from pathlib import Path

import pytest

from lmrec_hf.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "presets" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: lmrec-hf" in capsys.readouterr().out


def test_presets_table(capsys):
    assert main(["presets", "--vocab-size", "8192", "--n-positions", "256"]) == 0
    out = capsys.readouterr().out
    assert "vocab_size=8,192" in out
    assert "| 125m | 12 | 768 | 12 | 2048 | 0.003 |" in out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "lmrec-hf"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "presets" in result.stdout


def test_unknown_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


def test_prepare_and_train_end_to_end(tmp_path, capsys):
    """`lmrec-hf prepare`, then a 2-step `lmrec-hf train` whose checkpoint loads in a fresh process."""
    import json
    import os

    from .toy_data import write_unisrec

    data = write_unisrec(tmp_path / "toy")
    prepared = tmp_path / "prepared"
    assert main(["prepare", str(data), "--output", str(prepared), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "3 users, 8 items, 14 interactions" in capsys.readouterr().out
    out = tmp_path / "run"
    code = main(["train", "--data", str(prepared), "--preset", "1.7m", "--vocab_size", "300", "--max_steps", "2",
                 "--rec_batch_size", "2", "--lm_batch_size", "2", "--max_length", "64", "--use_cpu", "true",
                 "--output_dir", str(out), "--disable_tqdm", "true"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| lmrec |" in printed and "| popularity |" in printed and "trust_remote_code=True" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["lmrec"]) >= {"recall@10", "ndcg@10", "recall@50", "ndcg@50"}
    assert metrics["data"]["users"] == 3 and metrics["world_size"] == 1
    script = ("import sys; sys.modules['lmrec_hf'] = None\n"
              "from transformers import AutoModel\n"
              f"m = AutoModel.from_pretrained({str(out / 'model')!r}, trust_remote_code=True)\n"
              "print(type(m).__name__)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                            env={**os.environ, "HF_HOME": str(tmp_path / "hf")}, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("LMRecModel")
    # Training left the model card (with the run's evaluation as model-index) and the item catalog beside it.
    model_dir = out / "model"
    for name in ("README.md", "lmrec_card.json", "catalog/items.json", "catalog/item_embeddings.safetensors",
                 "catalog/examples.json"):
        assert (model_dir / name).exists(), name
    readme = (model_dir / "README.md").read_text()
    assert "model-index:" in readme and "config: full-ranking" in readme and "| mode | joint |" in readme
    assert main(["evaluate", str(model_dir), "--data", str(prepared), "--output", str(tmp_path / "e.json"),
                 "--protocol", "sampled", "--num-negatives", "7"]) == 0
    record = json.loads((tmp_path / "e.json").read_text())
    assert record["split"] == "test" and "recall@10" in record["lmrec"] and record["protocol_id"] == "sampled-7"
    assert "config: sampled-7" in (model_dir / "README.md").read_text()  # evaluate added its record to the card


def test_prepare_reports_missing_input(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nothing"), "--output", str(tmp_path / "o")]) == 1
    assert "Data path" in capsys.readouterr().err


def test_evaluate_record_and_sampled_protocol(tmp_path, capsys, model, tokenizer):
    import json

    import numpy as np

    from .toy_data import write_unisrec

    data = write_unisrec(tmp_path / "toy")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    record = tmp_path / "full.json"
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(data), "--cache-dir", str(tmp_path / "c"),
                 "--output", str(record), "--mask-history"]) == 0
    full = json.loads(record.read_text())
    assert full["mask_history"] is True and "history items masked" in full["protocol"]
    assert set(full) >= {"model", "data", "split", "protocol", "seed", "lmrec", "popularity", "wall_time_s",
                         "git_commit"}
    assert {"recall@5", "ndcg@20", "mrr@50"} <= set(full["lmrec"])
    negatives = tmp_path / "neg.npy"
    np.save(negatives, np.array([[i for i in range(8) if i != t] for t in (5, 2, 5)]))
    sampled = tmp_path / "sampled.json"
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(data), "--cache-dir", str(tmp_path / "c"),
                 "--protocol", "sampled", "--negatives-file", str(negatives), "--output", str(sampled)]) == 0
    assert "target among 7 sampled negatives" in json.loads(sampled.read_text())["protocol"]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), "--data", str(data), "--cache-dir", str(tmp_path / "c"),
                 "--protocol", "sampled"]) == 1
    assert "Cannot draw 100 negatives from a catalog of 8 items" in capsys.readouterr().err


def test_evaluate_with_the_item_to_item_scorer(tmp_path, capsys, model, tokenizer):
    """`--scorer item-to-item` ranks by cosine to the last item, says so in the record and the table, and is kept
    apart from the two-tower entry in the card."""
    import json

    from lmrec_hf.data import load_unisrec
    from lmrec_hf.evaluation import evaluate_item_to_item
    from lmrec_hf.model_card import LMRecModelCardData

    from .toy_data import write_unisrec

    data = write_unisrec(tmp_path / "toy")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "c")]
    assert main(["evaluate", str(tmp_path / "m"), *common]) == 0
    assert main(["evaluate", str(tmp_path / "m"), *common, "--scorer", "item-to-item", "--ks", "1", "3",
                 "--output", str(tmp_path / "i2i.json")]) == 0
    assert "| lmrec (item-to-item) |" in capsys.readouterr().out
    record = json.loads((tmp_path / "i2i.json").read_text())
    expected = evaluate_item_to_item(model, tokenizer, load_unisrec(data), "test", ks=(1, 3))
    assert record["scorer"] == "item-to-item" and record["lmrec"] == expected
    scorers = [e["scorer"] for e in LMRecModelCardData.from_model_dir(tmp_path / "m").evaluations]
    assert scorers == ["user-item", "item-to-item"]
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "m"), *common, "--scorer", "nearest"])
    assert "invalid choice: 'nearest' (choose from 'user-item', 'item-to-item', 'last-item')" in capsys.readouterr().err
