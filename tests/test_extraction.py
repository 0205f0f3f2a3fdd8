"""`lmrec-hf extract` (extraction.py): streamed features that agree with the pipeline."""

import json

import numpy as np
import pytest
import torch
from transformers import pipeline

from lmrec_hf.cli import main
from lmrec_hf.extraction import FeatureWriter, extract_features, history_rows, item_rows

from .conftest import HISTORIES, ITEMS

LONG = [f"{ITEMS[i % 8]} number {i}" for i in range(60)]  # far over the toy model's 64 positions


@pytest.fixture(scope="module")
def extractor(space_checkpoint):
    return pipeline("feature-extraction", model=str(space_checkpoint), trust_remote_code=True)


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_extract_agrees_with_the_pipeline(space_checkpoint, extractor, tmp_path, capsys):
    histories = HISTORIES + [LONG]
    users = _write_jsonl(tmp_path / "users.jsonl",
                         [{"user_id": f"u{i}", "history": h} for i, h in enumerate(histories)])
    items = _write_jsonl(tmp_path / "items.jsonl", [{"item_id": f"i{i}", "text": t} for i, t in enumerate(ITEMS)]
                         + [{"item_id": "long", "text": " ".join(LONG)}])
    assert main(["extract", str(space_checkpoint), "--histories", str(users), "--users-output",
                 str(tmp_path / "users.parquet"), "--items", str(items), "--items-output",
                 str(tmp_path / "items.safetensors"), "--batch-size", "2"]) == 0
    assert "Wrote 6 user rows (z, projection)" in capsys.readouterr().out

    import pyarrow.parquet as pq
    from safetensors import safe_open

    table = pq.read_table(tmp_path / "users.parquet").to_pydict()
    assert table["user_id"] == [f"u{i}" for i in range(len(histories))]
    for name, projection in (("user_features", None), ("user_embeds", "user")):
        expected = torch.tensor([extractor([h], projection=projection)[0] for h in histories])
        assert torch.allclose(torch.tensor(table[name]), expected, atol=1e-5), name
    with safe_open(str(tmp_path / "items.safetensors"), framework="pt") as handle:
        ids = json.loads(handle.metadata()["item_ids"])
        got = handle.get_tensor("item_embeds")
    texts = ITEMS + [" ".join(LONG)]
    assert ids == [f"i{i}" for i in range(8)] + ["long"]
    expected = torch.tensor([extractor([t], projection="item")[0] for t in texts])
    assert torch.allclose(got, expected, atol=1e-5)


def test_rows_from_a_prepared_folder(space_checkpoint, tmp_path):
    from lmrec_hf.data import load_unisrec

    from .toy_data import write_unisrec

    data = load_unisrec(write_unisrec(tmp_path / "toy", texts={i: ITEMS[i] for i in range(8)}))
    data.save(tmp_path / "prepared")
    rows = list(history_rows(tmp_path / "prepared", "test"))
    assert [r[0] for r in rows] == data.users["user_id"]
    assert rows[0][1] == " → ".join(ITEMS[:5])  # user 0's items before its test target
    assert list(item_rows(tmp_path / "prepared"))[3] == ("A3", ITEMS[3])


def test_chunks_stream_in_input_order(space_checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(space_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(space_checkpoint)
    rows = [(f"i{i}", ITEMS[i % 8] * (1 + i % 3)) for i in range(11)]
    chunks = list(extract_features(model, tokenizer, iter(rows), "item", ("z", "item"), batch_size=2, chunk_rows=4,
                                   progress=False))
    assert [len(c["ids"]) for c in chunks] == [4, 4, 3]
    whole = next(extract_features(model, tokenizer, rows, "item", ("z",), batch_size=11, progress=False))
    assert np.allclose(np.concatenate([c["z"] for c in chunks]), whole["z"], atol=1e-5)


def test_bad_extract_requests(space_checkpoint, tmp_path, capsys):
    users = _write_jsonl(tmp_path / "users.jsonl", [{"user": "u0", "history": ["a mug"]}])
    code = main(["extract", str(space_checkpoint), "--histories", str(users), "--users-output",
                 str(tmp_path / "u.parquet")])
    assert code == 1 and "users.jsonl, row 1: missing ['user_id']" in capsys.readouterr().err
    assert not (tmp_path / "u.parquet").exists() and not (tmp_path / "u.parquet.partial").exists()
    (tmp_path / "taken.parquet").write_text("keep")
    with pytest.raises(ValueError, match="exists; pick a new output file"):
        FeatureWriter(tmp_path / "taken.parquet", "user")
    assert (tmp_path / "taken.parquet").read_text() == "keep"
    with pytest.raises(ValueError, match=r"must end in \.parquet or \.safetensors"):
        FeatureWriter(tmp_path / "x.csv", "user")
    assert main(["extract", str(space_checkpoint), "--histories", str(users)]) == 1
    assert "need both --histories and --users-output" in capsys.readouterr().err
