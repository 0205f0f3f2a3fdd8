"""
Bad input and faults (issue 21): each case a new user hit, and what it gets now. Every test is registered with
`case(...)`, and docs/reliability.md is the table of these registrations; `python -m tests.test_reliability`
rewrites it, and `test_the_catalogue_in_the_docs_is_current` fails when the two differ.

The cases cut across modules, so they live here together, as the catalogue the issue asks for; the behaviour each
one pins is owned by the module named in its row.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lmrec_hf import LMRecConfig, LMRecFeatureExtractionPipeline, format_history, format_item, train_tokenizer
from lmrec_hf.arguments import load_train_config
from lmrec_hf.cli import main
from lmrec_hf.data import load_interactions, load_unisrec
from lmrec_hf.losses import RecObjective
from lmrec_hf.modeling_lmrec import rec_bce_loss

from .conftest import ITEMS
from .toy_data import write_unisrec

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
CASES: list[dict] = []


def case(number: str, owner: str, before: str, now: str):
    """Registers a test as the check of one catalogue row."""
    def register(test):
        CASES.append({"case": number, "owner": owner, "before": before, "now": now, "test": test.__name__})
        return test
    return register


# ---------------------------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def toy_folder(tmp_path):
    return write_unisrec(tmp_path / "toy")


def _run_overrides(data: Path, output: Path, **extra) -> dict:
    overrides = {"data": str(data), "preset": "1.7m", "vocab_size": 300, "max_steps": 4, "lm_batch_size": 2,
                 "rec_batch_size": 2, "max_length": 64, "output_dir": str(output), "use_cpu": True,
                 "eval_strategy": "no", "save_strategy": "steps", "save_steps": 2, "disable_tqdm": True,
                 "write_catalog": False, "report_to": "none", "tokenizer_texts": 50, "eval_split": "",
                 "seed": 3}
    overrides.update(extra)
    return overrides


def _train(data: Path, output: Path, **extra) -> dict:
    from lmrec_hf.runner import train_from_args

    return train_from_args(*load_train_config(None, _run_overrides(data, output, **extra)))


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    left, right = _weights(a), _weights(b)
    return left.keys() == right.keys() and all(torch.allclose(left[k], right[k], atol=1e-6) for k in left)


def _write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def _cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def extractor(model, tokenizer):
    return LMRecFeatureExtractionPipeline(model=model, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def space_app():
    spec = importlib.util.spec_from_file_location("lmrec_space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = app  # dataclasses look their module up there
    spec.loader.exec_module(app)
    return app


# ---------------------------------------------------------------------------------------------------------------
# 1-10: silent wrong results


@case("1", "arguments.py", "`prefix_pairs: \"false\"` in YAML turned prefix training on; `use_cpu: maybe` was "
      "accepted", "booleans, numbers and enums are parsed strictly: \"false\" is false, `maybe` is refused with "
      "the field and the accepted spellings")
def test_booleans_and_enums_are_parsed_strictly(tmp_path):
    recipe = _write_yaml(tmp_path, 'prefix_pairs: "false"\nuse_cpu: "True"\nlm_on_rec_histories: "no"\n')
    _, _, objective, args = load_train_config(str(recipe))
    assert objective.prefix_pairs is False and objective.lm_on_rec_histories is False and args.use_cpu is True
    _, _, objective, _ = load_train_config(None, ["--prefix_pairs", "false"])
    assert objective.prefix_pairs is False
    with pytest.raises(ValueError, match=r"`use_cpu` must be true or false, got 'maybe'"):
        load_train_config(None, {"use_cpu": "maybe"})
    with pytest.raises(ValueError, match=r"`prefix_pairs` must be true or false, got 2"):
        load_train_config(None, {"prefix_pairs": 2})
    with pytest.raises(ValueError, match=r"`eval_strategy` must be one of \['no', 'steps', 'epoch'\], got 'maybe'"):
        load_train_config(None, ["--eval_strategy", "maybe"])
    _, _, _, args = load_train_config(None, ["--eval_strategy", "no"])
    assert args.eval_strategy == "no"
    data_args = load_train_config(None, ["--eval_split", ""])[1]
    assert data_args.eval_split == ""  # an empty value on the command line is the empty string, not null
    with pytest.raises(ValueError, match=r"`lr_scheduler_type` must be one of \['linear', .*got 'cosine_min'"):
        load_train_config(None, {"lr_scheduler_type": "cosine_min"})


@case("2", "runner.py, checkpoints.py", "a resume retrained the tokenizer, so the resumed weights ran under "
      "another token mapping", "a resume loads the tokenizer saved in the checkpoint, warns that it did (the "
      "recipe's tokenizer keys do not apply), and ends where the uninterrupted run ends")
def test_resume_loads_the_checkpoint_tokenizer(toy_folder, tmp_path, caplog):
    import shutil

    _train(toy_folder, tmp_path / "straight")
    # The same run, stopped after its first checkpoint.
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoint-4")
    shutil.rmtree(tmp_path / "resumed" / "model")
    # The same run resumed with another tokenizer sample (it would train another tokenizer) and vocabulary size.
    with caplog.at_level(logging.WARNING, logger="lmrec_hf"):
        _train(toy_folder, tmp_path / "resumed", tokenizer_texts=2, vocab_size=290,
               resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2"))
    assert "checkpoint-2: loaded the tokenizer saved in it" in caplog.text
    tokenizer_json = (tmp_path / "resumed" / "checkpoint-2" / "tokenizer.json").read_text()
    assert (tmp_path / "resumed" / "model" / "tokenizer.json").read_text() == tokenizer_json
    assert _same_weights(tmp_path / "straight" / "model", tmp_path / "resumed" / "model")


@case("3", "data/records.py", "a UniSRec folder with text-less items lost items that had text", "exactly the "
      "text-less items are dropped; the other items keep their keys and texts, and `info` counts the items and "
      "interactions dropped (not reproduced on e11c31f; pinned)")
def test_textless_unisrec_items_drop_only_themselves(tmp_path):
    texts = {i: f"item {i} text" for i in range(8)}
    texts[2] = texts[6] = "  "
    data = load_unisrec(write_unisrec(tmp_path / "toy", texts=texts))
    keys = data.items["item_id"]
    assert sorted(keys) == [f"A{i}" for i in range(8) if i not in (2, 6)]
    assert dict(zip(keys, data.items["text"])) == {f"A{i}": f"item {i} text" for i in range(8) if i not in (2, 6)}
    # users 0 and 1 each had item 2 (user 1 also item 6): 3 interactions went with the two items
    assert data.info == {"items_without_text": 2, "interactions_dropped_for_missing_text": 3}
    for user_texts, item_ids in zip(data.users["item_texts"], data.users["item_ids"]):
        assert user_texts == [data.items["text"][i] for i in item_ids]


@case("4", "evaluation.py, data/readers.py, cli.py", "`--ks 0` printed recall@0 = 0; `--k-core -3` was accepted "
      "and recorded", "both refused: a cutoff must be a positive integer, k-core at least 1 (1 keeps every user)")
def test_cutoffs_and_k_core_must_be_positive(tmp_path, capsys, space_checkpoint, toy_folder):
    from lmrec_hf.evaluation import metrics_from_ranks

    with pytest.raises(ValueError, match=r"cutoffs `ks` must be positive integers, got \[0\]"):
        metrics_from_ranks([0, 1], ks=[0])
    code, out = _cli(capsys, "evaluate", str(space_checkpoint), "--data", str(toy_folder), "--ks", "0")
    assert code == 2 and "--ks: expected a positive integer, got '0'" in out
    (tmp_path / "inter.csv").write_text("user_id,item_id\nu,a\n")
    (tmp_path / "items.csv").write_text("item_id,text\na,mug\n")
    with pytest.raises(ValueError, match=r"k_core_min must be an integer >= 1 .*got -3"):
        load_interactions(tmp_path / "inter.csv", tmp_path / "items.csv", k_core_min=-3)
    code, out = _cli(capsys, "prepare", str(tmp_path / "inter.csv"), "--items", str(tmp_path / "items.csv"),
                     "--output", str(tmp_path / "out"), "--k-core", "-3")
    assert code == 2 and "--k-core: expected a positive integer, got '-3'" in out
    assert not (tmp_path / "out").exists()


@case("5", "pipeline_lmrec.py", "`pipeline(\"\")` returned a vector of the EOS alone, while `[[]]` raised",
      "both raise the same error: the input is empty")
def test_empty_text_and_empty_history_are_refused_alike(extractor):
    for empty in ("", "   ", [[]]):
        with pytest.raises(ValueError, match="empty"):
            extractor(empty)


@case("6", "pipeline_lmrec.py", "`max_length=0` in the pipeline meant \"no limit\"", "refused: max_length must "
      "be an integer of at least 2 (a token and the EOS)")
def test_pipeline_max_length_zero_is_refused(extractor):
    with pytest.raises(ValueError, match=r"max_length must be an integer of at least 2.*got 0"):
        extractor([ITEMS[:2]], max_length=0)
    assert len(extractor([ITEMS[:2]], max_length=2)[0]) > 0


@case("7", "formatting_lmrec.py", "a literal `<|endoftext|>` in an item text became an EOS token mid-history",
      "special-token markup in a text is escaped (`<|endoftext|>` becomes `<endoftext>`), so the only EOS is "
      "the final one")
def test_special_token_markup_in_item_text_is_escaped(tokenizer, extractor):
    history = format_history(["red mug <|endoftext|> sale", "plate<|pad|>"])
    ids = tokenizer(history).input_ids
    assert ids.count(tokenizer.eos_token_id) == 1 and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.pad_token_id not in ids and "<endoftext>" in history and "<pad>" in history
    assert extractor(["red mug <|endoftext|> sale"]) == extractor(["red mug <endoftext> sale"])


@case("8", "tokenization_lmrec.py", "a plain string passed to `train_tokenizer` trained on its characters",
      "refused: it expects a list (or iterable) of texts")
def test_train_tokenizer_refuses_one_string():
    with pytest.raises(ValueError, match=r"train_tokenizer expects an iterable of texts .* got one string"):
        train_tokenizer("red mug. → blue mug.", vocab_size=300)


@case("9", "configuration_lmrec.py, modeling_lmrec.py", "`rec_loss_weight=nan` or `inf` was accepted and the "
      "loss was nan; BCE labels outside [0, 1] were accepted", "λ must be a finite number >= 0 (config and "
      "objective); a BCE label must be in [0, 1], or negative to mark a pair to ignore")
def test_lambda_must_be_finite_and_bce_labels_in_range(model, tokenizer):
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"`rec_loss_weight` \(λ\) must be a finite number >= 0"):
            LMRecConfig(rec_loss_weight=bad)
        with pytest.raises(ValueError, match=r"`rec_loss_weight` \(λ\) must be a finite number >= 0"):
            RecObjective(rec_loss_weight=bad)
    with pytest.raises(ValueError, match=r"rec_labels must be in \[0, 1\] .* got 2"):
        rec_bce_loss(torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 0.0]]))
    users = tokenizer([format_history(ITEMS[:2])], return_tensors="pt")
    items = tokenizer([format_item(ITEMS[3])], return_tensors="pt")
    with pytest.raises(ValueError, match=r"rec_labels must be in \[0, 1\]"):
        model(user_input_ids=users.input_ids, item_input_ids=items.input_ids, rec_labels=torch.tensor([1.5]))
    loss = model(user_input_ids=users.input_ids, item_input_ids=items.input_ids, rec_labels=torch.tensor([0.7])).loss
    assert math.isfinite(loss.item())  # soft labels in [0, 1] stay allowed


@case("10", "checkpoints.py", "a resume whose optimizer.pt was deleted ran on with no warning", "a warning: the "
      "optimizer state is fresh, so the run will not match an uninterrupted one")
def test_resume_without_optimizer_state_warns(toy_folder, tmp_path, caplog):
    _train(toy_folder, tmp_path / "run", max_steps=2)
    (tmp_path / "run" / "checkpoint-2" / "optimizer.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="lmrec_hf"):
        _train(toy_folder, tmp_path / "run", resume_from_checkpoint="true")
    assert "has no optimizer.pt" in caplog.text and "fresh" in caplog.text


# ---------------------------------------------------------------------------------------------------------------
# 11-19: tracebacks from deep inside a library become our own errors


@case("11", "data/readers.py, arguments.py", "non-UTF-8 bytes named neither file nor line; a truncated .csv.gz "
      "gave a bare EOFError; a broken YAML did not name its file", "each error names the file (and the line)")
def test_unreadable_files_are_named_with_their_line(tmp_path):
    import gzip

    (tmp_path / "items.csv").write_text("item_id,text\na,mug\n")
    (tmp_path / "bad.csv").write_bytes(b"user_id,item_id\nu,a\nu,\xff\xfe\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 3: not UTF-8 text \(byte 0xff"):
        load_interactions(tmp_path / "bad.csv", tmp_path / "items.csv", k_core_min=1)
    (tmp_path / "bad.jsonl").write_bytes(b'{"user_id": "u", "item_id": "a"}\n{"user_id": "\xe9"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: not UTF-8 text"):
        load_interactions(tmp_path / "bad.jsonl", tmp_path / "items.csv", k_core_min=1)
    whole = gzip.compress(b"user_id,item_id\n" + b"u,a\n" * 2000)
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut\.csv\.gz: the gzip file is truncated or corrupt"):
        load_interactions(tmp_path / "cut.csv.gz", tmp_path / "items.csv", k_core_min=1)
    recipe = _write_yaml(tmp_path, "max_steps: 3\nlearning_rate: [1, 2\n")
    with pytest.raises(ValueError, match=r"recipe\.yaml is not valid YAML \(line \d+"):
        load_train_config(str(recipe))


@case("12", "arguments.py, losses.py, configuration_lmrec.py", "`max_steps: thirty`, `--max_steps 1e3`, "
      "`learning_rate: [1, 2]` failed inside transformers or torch; `rec_loss_weight=\"abc\"` gave a TypeError; "
      "`resid_pdrop=1.5` failed only when the model was built", "numbers are checked by type at parse time "
      "(`1e3` is 1000 for an integer field); λ and dropout are checked when the config or objective is made")
def test_numbers_are_checked_at_parse_time(tmp_path):
    with pytest.raises(ValueError, match=r"`max_steps` must be an integer, got 'thirty'"):
        load_train_config(str(_write_yaml(tmp_path, "max_steps: thirty\n")))
    _, _, _, args = load_train_config(None, ["--max_steps", "1e3"])
    assert args.max_steps == 1000
    with pytest.raises(ValueError, match=r"`max_steps` must be an integer, got 2.5"):
        load_train_config(None, {"max_steps": 2.5})
    with pytest.raises(ValueError, match=r"`learning_rate` must be a number, got \[1, 2\]"):
        load_train_config(str(_write_yaml(tmp_path, "learning_rate: [1, 2]\n")))
    with pytest.raises(ValueError, match=r"`rec_loss_weight` must be a number, got 'abc'"):
        load_train_config(None, {"rec_loss_weight": "abc"})
    with pytest.raises(ValueError, match=r"`rec_loss_weight` \(λ\) must be a finite number >= 0, got 'abc'"):
        RecObjective(rec_loss_weight="abc")
    with pytest.raises(ValueError, match=r"`rec_loss_weight` \(λ\) must be a finite number >= 0, got 'abc'"):
        LMRecConfig(rec_loss_weight="abc")
    with pytest.raises(ValueError, match=r"`resid_pdrop` must be a probability in \[0, 1\], got 1.5"):
        LMRecConfig(resid_pdrop=1.5)
    with pytest.raises(ValueError, match=r"`dropout` must be a probability in \[0, 1\], got 1.5"):
        load_train_config(None, {"dropout": 1.5})


@case("13", "modeling_lmrec.py", "ids or labels outside the vocabulary, a mask of another shape, an empty batch "
      "and prefix positions out of range gave torch's bare message", "each is refused before the embedding, "
      "naming the argument, the bad value and the allowed range")
def test_model_inputs_are_checked(model, tokenizer):
    ids = tokenizer([format_history(ITEMS[:2])], return_tensors="pt").input_ids
    vocab = model.config.vocab_size
    with pytest.raises(ValueError, match=rf"`input_ids` must be token ids in \[0, {vocab}\).*got {vocab + 5}"):
        model(input_ids=torch.full_like(ids, vocab + 5))
    with pytest.raises(ValueError, match=rf"`labels` must be token ids in \[0, {vocab}\) or -100.*got -7"):
        model(input_ids=ids, labels=torch.full_like(ids, -7))
    with pytest.raises(ValueError, match=r"`attention_mask` has shape \(1, 3\), but `input_ids` has shape"):
        model(input_ids=ids, attention_mask=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`input_ids` is empty \(shape \(0, 5\)\)"):
        model(input_ids=torch.zeros(0, 5, dtype=torch.long))
    items = tokenizer([format_item(ITEMS[3])], return_tensors="pt").input_ids
    with pytest.raises(ValueError, match=rf"`user_positions` must be in \[-1, {ids.shape[1]}\).*got {ids.shape[1]}"):
        model(user_input_ids=ids, item_input_ids=items, user_positions=torch.tensor([[ids.shape[1]]]),
              rec_labels=torch.ones(1, 1, 1))
    with pytest.raises(ValueError, match=r"`item_input_ids` must be token ids"):
        model(user_input_ids=ids, item_input_ids=torch.full_like(items, -3))


@case("14", "formatting_lmrec.py, tokenization_lmrec.py, pipeline_lmrec.py", "a lone surrogate (\"\\ud800\") "
      "raised deep in the tokenizer, the pipeline or the Space's typed box", "it becomes U+FFFD (the Unicode "
      "replacement character) in every text LMRec formats, trains on or encodes")
def test_lone_surrogates_become_replacement_characters(tokenizer, extractor, space_app, space_checkpoint):
    assert format_history(["mug \ud800", "plate"]) == "mug \ufffd → plate"
    assert format_item("\ud83d\ude00 smile") == "\U0001F600 smile"  # a valid surrogate pair is joined, not replaced
    assert extractor(["mug \ud800"]) == extractor(["mug \ufffd"])
    assert extractor("mug \ud800") == extractor("mug \ufffd")
    assert len(train_tokenizer(["mug \ud800 → plate"] * 3, vocab_size=300)) > 258
    rows = space_app.recommend(str(space_checkpoint), [], "mug \ud800", 3, True)[0]
    assert len(rows) == 3


@case("15", "checkpoints.py, cli.py, hub.py", "`evaluate` on a folder that is not a checkpoint blamed "
      "sentencepiece; a truncated config.json gave a raw OSError in evaluate and push; `push <a file>` said the "
      "folder did not exist", "each names the folder or file, what it lacks, and what to pass instead")
def test_checkpoint_folders_are_checked_before_loading(tmp_path, capsys, space_checkpoint, toy_folder):
    import shutil

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    code, out = _cli(capsys, "evaluate", str(tmp_path / "notes"), "--data", str(toy_folder))
    assert code == 1 and "is not an LMRec checkpoint folder: it has no config.json" in out
    broken = tmp_path / "broken"
    shutil.copytree(space_checkpoint, broken)
    text = (broken / "config.json").read_text()
    (broken / "config.json").write_text(text[: len(text) // 2])
    code, out = _cli(capsys, "evaluate", str(broken), "--data", str(toy_folder))
    assert code == 1 and "config.json is not valid JSON" in out and "truncated" in out
    before = {p.name: p.read_bytes() for p in broken.rglob("*") if p.is_file()}
    code, out = _cli(capsys, "push", str(broken), "--repo-id", "org/x", "--token", "hf_x")
    assert code == 1 and "config.json is not valid JSON" in out
    assert {p.name: p.read_bytes() for p in broken.rglob("*") if p.is_file()} == before  # a failed push writes nothing
    code, out = _cli(capsys, "push", str(broken / "config.json"), "--repo-id", "org/x", "--token", "hf_x")
    assert code == 1 and "is a file, not a checkpoint folder" in out and str(broken) in out


@case("16", "evaluation.py, pipeline_lmrec.py, cli.py", "`--max-users 0` failed in torch.cat; `pipeline([])` "
      "raised IndexError; `max_length=-5` raised OverflowError", "`max_users` must be positive (library and CLI); "
      "`pipeline([])` returns []; a negative max_length is refused like 0")
def test_empty_requests(extractor, capsys, space_checkpoint, toy_folder):
    from lmrec_hf.evaluation import eval_targets

    data = load_unisrec(toy_folder)
    with pytest.raises(ValueError, match=r"max_users must be a positive integer or None.*got 0"):
        eval_targets(data, "test", max_users=0)
    code, out = _cli(capsys, "evaluate", str(space_checkpoint), "--data", str(toy_folder), "--max-users", "0")
    assert code == 2 and "--max-users: expected a positive integer, got '0'" in out
    assert extractor([]) == []
    with pytest.raises(ValueError, match=r"max_length must be an integer of at least 2.*got -5"):
        extractor([ITEMS[:2]], max_length=-5)


@case("17", "data/records.py", "`prepare --output <an existing file>` gave a raw FileExistsError", "refused "
      "before any work: the output must be a folder, and the file is left as it was")
def test_prepare_output_onto_a_file(tmp_path, capsys, toy_folder):
    (tmp_path / "taken").write_text("keep me")
    code, out = _cli(capsys, "prepare", str(toy_folder), "--output", str(tmp_path / "taken"))
    assert code == 1 and "is a file" in out and "folder" in out
    assert (tmp_path / "taken").read_text() == "keep me"


@case("18", "checkpoints.py, runner.py", "a resume with another vocab_size gave a size-mismatch traceback; a "
      "truncated model.safetensors a SafetensorError that did not name the file", "the checkpoint's tokenizer "
      "fixes the vocabulary (see 2); another model size is refused naming the fields; an unreadable weights file "
      "is named, with the checkpoints to resume from instead")
def test_resume_from_an_incompatible_or_broken_checkpoint(toy_folder, tmp_path):
    _train(toy_folder, tmp_path / "run", max_steps=2)
    with pytest.raises(ValueError, match=r"checkpoint-2 was trained with n_layer=4, n_embd=32.*asks for "
                                         r"n_layer=4, n_embd=128"):
        _train(toy_folder, tmp_path / "run", preset="7m", resume_from_checkpoint="true")
    weights = tmp_path / "run" / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"checkpoint-2/model\.safetensors cannot be read .*truncated"):
        _train(toy_folder, tmp_path / "run", resume_from_checkpoint="true")


@case("19", "space/app.py", "in the Space, a picked None or \"\", and top_k of nan or None, raised raw errors",
      "blank picks are skipped like blank typed lines; a top_k that is not a number from 1 to 50 gets the "
      "Space's message")
def test_space_odd_widget_values(space_app, space_checkpoint):
    import gradio as gr

    name = str(space_checkpoint)
    rows = space_app.recommend(name, [None, "", ITEMS[0]], "", 3, True)[0]
    assert len(rows) == 3
    for picked in (None, "", [None], [""]):
        with pytest.raises(gr.Error, match="The history is empty"):
            space_app.recommend(name, picked, "", 3, True)
    for top_k in (float("nan"), None, "many"):
        with pytest.raises(gr.Error, match=r"How many recommendations: expected a whole number from 1 to 50"):
            space_app.recommend(name, [ITEMS[0]], "", top_k, True)


# ---------------------------------------------------------------------------------------------------------------
# 20-22: checked too late, or costing others


@case("20", "arguments.py", "`--eval_split train` was refused only after the whole run had trained, which saved "
      "a model without metrics, card or catalog", "refused at parse time, with `protocol` and `data_format`")
def test_data_choices_are_checked_at_parse_time():
    with pytest.raises(ValueError, match=r"`eval_split` must be one of \['valid', 'test', ''\], got 'train'"):
        load_train_config(None, ["--eval_split", "train"])
    with pytest.raises(ValueError, match=r"`protocol` must be one of \['leave_one_out', 'user_split'\]"):
        load_train_config(None, {"protocol": "random"})
    with pytest.raises(ValueError, match=r"`data_format` must be one of"):
        load_train_config(None, {"data_format": "excel"})


@case("21", "space/app.py", "one request for an unknown repo id held the load lock while huggingface_hub "
      "retried, and every other user waited (22 s)", "a model is loaded under its own lock: a slow or failing "
      "load holds only the requests for that same model")
def test_space_slow_load_does_not_hold_other_models(space_app, space_checkpoint, monkeypatch):
    name = str(space_checkpoint)
    space_app.load_model(name)
    original = space_app._catalog_paths

    def slow(repo, revision):
        if repo == "org/slow":
            time.sleep(3)
            raise space_app.FriendlyError("no such model")
        return original(repo, revision)

    monkeypatch.setattr(space_app, "_catalog_paths", slow)
    worker = threading.Thread(target=lambda: pytest.raises(space_app.FriendlyError, space_app.load_model,
                                                           "org/slow"))
    worker.start()
    time.sleep(0.2)
    start = time.time()
    assert space_app.load_model(name).name == name
    waited = time.time() - start
    worker.join()
    assert waited < 1.0, f"the cached model waited {waited:.1f} s behind another model's load"


@case("22", "space/app.py", "the Space wrote a NamedTemporaryFile(delete=False) per request and never removed it",
      "user vectors go to one folder of the Space, named by content (a repeated request reuses its file), at "
      "most 16 kept, and the folder is removed when the Space exits")
def test_space_vector_files_are_bounded_and_removed(space_app, space_checkpoint, tmp_path, monkeypatch):
    import tempfile

    space_app.remove_vector_files()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    name = str(space_checkpoint)
    paths = [space_app.recommend(name, [ITEMS[i % 8], ITEMS[(i * 3 + 1) % 8]], f"typed {i}", 3, True)[2]
             for i in range(20)]
    again = space_app.recommend(name, [ITEMS[0], ITEMS[1]], "typed 0", 3, True)[2]
    assert again == paths[0] and json.loads(Path(again).read_text())["history"][-1] == "typed 0"
    left = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert 0 < len(left) <= space_app.MAX_VECTOR_FILES
    space_app.remove_vector_files()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------------------------------------------
# Beyond the list


@case("kill", "trainer.py, runner.py", "a run killed mid-way (SIGKILL) and resumed", "ends with the same weights "
      "as the uninterrupted run")
def test_a_killed_run_resumes_to_the_uninterrupted_result(toy_folder, tmp_path):
    import signal
    import subprocess

    _train(toy_folder, tmp_path / "straight", max_steps=6)
    overrides = _run_overrides(toy_folder, tmp_path / "killed", max_steps=6)
    argv = ["train"]
    for key, value in overrides.items():
        argv += [f"--{key}", str(value).lower() if isinstance(value, bool) else (str(value) or "''")]
    # One second per step, so the kill lands between the first checkpoint and the end.
    script = ("import sys, time\nfrom lmrec_hf.trainer import LMRecTrainer\nstep = LMRecTrainer.training_step\n"
              "LMRecTrainer.training_step = lambda self, *a, **k: (time.sleep(1), step(self, *a, **k))[1]\n"
              "from lmrec_hf.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    process = subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (tmp_path / "killed" / "checkpoint-2" / "trainer_state.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    resume = max((p for p in (tmp_path / "killed").glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                 key=lambda p: int(p.name.split("-")[1]))
    _train(toy_folder, tmp_path / "killed", max_steps=6, resume_from_checkpoint=str(resume))
    assert _same_weights(tmp_path / "straight" / "model", tmp_path / "killed" / "model")


# ---------------------------------------------------------------------------------------------------------------
# The catalogue in docs/reliability.md


def render_catalogue() -> str:
    lines = ["# Reliability: bad input and faults", "",
             "Each row is a bad input or fault a new user hit (issue 21), what it used to do, what it gets now, and",
             "the test that checks it (`tests/test_reliability.py`). This file is generated from those tests:",
             "`python -m tests.test_reliability` rewrites it, and `make test` fails when it is out of date.",
             "", "| case | owner | before | now | test |", "|---|---|---|---|---|"]
    for row in CASES:
        lines.append(f"| {row['case']} | {row['owner']} | {row['before']} | {row['now']} | `{row['test']}` |")
    lines += ["", "Kept from before (tests elsewhere): config sizes, a missing column, a corrupt JSONL line named by "
              "file and line, push without a token or network, the Space's limits, a resume that equals the "
              "uninterrupted run, a pickle in a .bin refused, and a folder byte-identical after every failed "
              "push (`tests/test_hub.py`).", ""]
    return "\n".join(lines)


def test_the_catalogue_in_the_docs_is_current():
    assert DOC.exists() and DOC.read_text() == render_catalogue(), \
        "docs/reliability.md is out of date; run `python -m tests.test_reliability`"


if __name__ == "__main__":
    DOC.write_text(render_catalogue())
    print(f"wrote {DOC}")
