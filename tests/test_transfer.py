"""Downstream transfer (issue 23): the linear probe on frozen cached features, LoRA adapters through peft with their
merged export, and the checks on the checkpoints a transfer starts from."""

import json

import pytest
import torch
from safetensors.torch import save_file

from lmrec_hf.arguments import load_train_config
from lmrec_hf.data import load_unisrec, subsample_training_users
from lmrec_hf.runner import train_from_args
from lmrec_hf.transfer import (
    FEATURES_FILE,
    ProbeArguments,
    ProbeFeatures,
    ProbeHeads,
    check_encoder_checkpoint,
    run_probe,
    train_probe,
)

from .conftest import HISTORIES, ITEMS
from .toy_data import write_unisrec


@pytest.fixture
def toy(tmp_path):
    return load_unisrec(write_unisrec(tmp_path / "toy", texts={i: ITEMS[i] for i in range(8)}))


@pytest.fixture
def base(model, tokenizer, tmp_path):
    folder = tmp_path / "base"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_probe_trains_new_heads_and_saves_a_checkpoint_that_loads_like_any_other(base, toy, model, tmp_path,
                                                                                     monkeypatch):
    from transformers import AutoModel, AutoModelForCausalLM, pipeline

    record = run_probe(base, toy, tmp_path / "probe", ProbeArguments(epochs=3, batch_size=2, learning_rate=0.05),
                       max_length=64, ks=(5, 10))
    assert record["method"] == "linear-probe" and record["lmrec"]["users"] == 3 and "popularity" in record
    assert record["trainable_parameters"] == 2 * model.config.n_embd * model.config.projection_dim
    assert record["training_pairs"] == 5 and 1 <= record["best_epoch"] <= record["epochs"] <= 3
    assert json.loads((tmp_path / "probe" / "metrics.json").read_text()) == record
    probed = AutoModelForCausalLM.from_pretrained(tmp_path / "probe" / "model")
    # New heads, the same frozen trunk.
    assert not torch.equal(probed.user_projection.weight, model.user_projection.weight)
    for name, tensor in model.transformer.state_dict().items():
        torch.testing.assert_close(probed.transformer.state_dict()[name], tensor, rtol=0, atol=0)
    assert probed.config.lmrec_transfer["method"] == "linear-probe"
    assert type(AutoModel.from_pretrained(tmp_path / "probe" / "model")).__name__ == "LMRecModel"
    extractor = pipeline("feature-extraction", model=str(tmp_path / "probe" / "model"), trust_remote_code=True)
    from lmrec_hf import format_history

    enc = extractor.tokenizer([format_history(HISTORIES[0])], return_tensors="pt")
    torch.testing.assert_close(torch.tensor(extractor([HISTORIES[0]], projection="user")[0]),
                               probed.embed(enc.input_ids, projection="user")[0].detach(), atol=1e-5, rtol=0)

    # The features are cached: a second probe (a scarce-data share) reads them back instead of encoding.
    assert (tmp_path / "probe" / FEATURES_FILE).exists()
    monkeypatch.setattr("lmrec_hf.transfer.embed_texts", lambda *a, **k: pytest.fail("features were re-encoded"))
    scarce = run_probe(base, subsample_training_users(toy, 0.34, seed=1), tmp_path / "probe-half",
                       ProbeArguments(epochs=1, batch_size=2), max_length=64,
                       features_cache=tmp_path / "probe" / FEATURES_FILE)
    assert scarce["train_share"] == 0.34 and scarce["training_pairs"] < record["training_pairs"]
    with pytest.raises(ValueError, match="already exists; a probe never overwrites a checkpoint"):
        run_probe(base, toy, tmp_path / "probe", ProbeArguments(epochs=1))


def test_probe_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`loss` must be one of \('softmax', 'bce'\), got 'hinge'"):
        ProbeArguments(loss="hinge")
    with pytest.raises(ValueError, match="`epochs` must be a positive integer, got 0"):
        ProbeArguments(epochs=0)


def test_a_layernorm_probe_starts_at_the_inverse_ln_f_scale_and_never_ends_below_it_on_valid(toy):
    from lmrec_hf.data import eval_pairs, train_pairs

    # Features as a final LayerNorm writes them (gamma times a normalised vector), where the start is already
    # perfect: undoing gamma leaves the target's own direction plus a shared offset.
    n_items, d = len(toy.items), 16
    gamma = torch.linspace(0.5, 2.0, d)
    items = gamma * (torch.eye(n_items, d) + 0.1)
    keys = sorted({(r, p) for part in (train_pairs(toy), eval_pairs(toy, "valid"), eval_pairs(toy, "test"))
                   for r, p in zip(part["user_row"][:], part["position"][:])})
    users = torch.stack([items[toy.sequences[r][p]] for r, p in keys])
    features = ProbeFeatures(users=users, rows=torch.tensor([r for r, _ in keys]),
                             positions=torch.tensor([p for _, p in keys]), items=items)
    # A rate that wrecks the heads: only the start can hold the valid pick (strictly better is needed to move it).
    args = ProbeArguments(init="layernorm", epochs=2, batch_size=2, learning_rate=5.0)
    heads, facts = train_probe(features, toy, args, ks=(1,), layernorm_weight=gamma)
    assert facts["history"][0]["epoch"] == 0 and facts["best_epoch"] == 0 and facts["epochs"] == 2
    assert facts["valid"]["recall@1"] == 1.0 and facts["test"]["recall@1"] == 1.0
    torch.testing.assert_close(heads.user_projection.weight, torch.diag(1 / gamma))
    torch.testing.assert_close(heads.item_projection.weight, torch.diag(1 / gamma))
    # The paper's random start is not a candidate: its pick is a trained epoch.
    _, facts = train_probe(features, toy, ProbeArguments(epochs=2, batch_size=2), ks=(1,))
    assert facts["best_epoch"] >= 1 and facts["history"][0]["epoch"] == 1


def test_the_last_item_user_feature_is_the_item_towers_z_of_the_item_before_the_target(toy):
    from lmrec_hf.data import train_pairs

    pairs = train_pairs(toy)
    rows, positions = torch.tensor(pairs["user_row"][:]), torch.tensor(pairs["position"][:])
    items = torch.randn(len(toy.items), 4)
    features = ProbeFeatures(users=torch.zeros(len(rows), 4), rows=rows, positions=positions, items=items,
                             meta={"data": "toy"})
    last = features.last_item_users(toy.sequences)
    for k, (r, p) in enumerate(zip(rows.tolist(), positions.tolist())):
        assert torch.equal(last.users[k], items[toy.sequences[r][p - 1]])
    assert last.meta == {"data": "toy", "user_feature": "last-item"} and torch.equal(last.items, items)


def test_a_last_item_probe_checkpoint_is_evaluated_with_its_own_user_feature(base, toy, tmp_path, monkeypatch):
    from lmrec_hf.runner import evaluate_checkpoint

    args = ProbeArguments(epochs=2, batch_size=2, learning_rate=1e-3, init="layernorm", user_feature="last-item")
    with monkeypatch.context() as patch:  # the items are encoded, no history is
        patch.setattr("lmrec_hf.transfer.embed_texts", lambda *a, **k: pytest.fail("a history was encoded"))
        probed = run_probe(base, toy, tmp_path / "probe", args, max_length=64, ks=(1, 5))
    record, _ = evaluate_checkpoint(tmp_path / "probe" / "model", toy, "test", ks=(1, 5), max_length=64)
    assert record["scorer"] == "last-item"
    for k in ("recall@1", "recall@5", "ndcg@5"):
        assert record["lmrec"][k] == pytest.approx(probed["lmrec"][k], abs=1e-9), k
    # The history's EOS, as an unprobed checkpoint is scored, only when asked for.
    plain, _ = evaluate_checkpoint(tmp_path / "probe" / "model", toy, "test", ks=(1, 5), max_length=64,
                                   scorer="user-item")
    assert "scorer" not in plain


def test_a_layernorm_probe_needs_square_heads_a_usable_weight_and_a_known_init(toy):
    with pytest.raises(ValueError, match=r"needs square heads \(projection_dim = n_embd\) and a LayerNorm weight of "
                                         r"8, got heads 4 x 8 and a weight of \(8,\). Pass --init random"):
        ProbeHeads(8, 4).start_from_layernorm(torch.ones(8))
    with pytest.raises(ValueError, match=r"weight is near zero at dimensions \[2\], so its inverse is unbounded"):
        ProbeHeads(4, 4).start_from_layernorm(torch.tensor([1.0, 1.0, 0.0, 1.0]))
    features = ProbeFeatures(users=torch.zeros(1, 4), rows=torch.tensor([0]), positions=torch.tensor([1]),
                             items=torch.zeros(len(toy.items), 4))
    with pytest.raises(ValueError, match="init 'layernorm' starts the heads from the trunk's final LayerNorm, but no "
                                         "`layernorm_weight` was given"):
        train_probe(features, toy, ProbeArguments(init="layernorm"))
    with pytest.raises(ValueError, match=r"`init` must be one of \('random', 'layernorm'\), got 'identity'"):
        ProbeArguments(init="identity")
    with pytest.raises(ValueError, match=r"`user_feature` must be one of \('history', 'last-item'\), got 'mean'"):
        ProbeArguments(user_feature="mean")


def test_the_paper_bce_probe_trains_too(base, toy, tmp_path):
    record = run_probe(base, toy, tmp_path / "probe", ProbeArguments(loss="bce", epochs=2, batch_size=2),
                       max_length=64)
    assert record["probe"]["loss"] == "bce" and "recall@10" in record["lmrec"]


def test_a_transfer_refuses_a_checkpoint_without_a_trunk(base, toy, tmp_path):
    heads = tmp_path / "heads"
    heads.mkdir()
    (heads / "config.json").write_text((base / "config.json").read_text())
    save_file({"user_projection.weight": torch.zeros(2, 2)}, str(heads / "model.safetensors"))
    with pytest.raises(ValueError, match=r"has no LMRec trunk: its weights lack \['wte.weight'"):
        check_encoder_checkpoint(heads)
    with pytest.raises(ValueError, match="has no LMRec trunk"):
        run_probe(heads, toy, tmp_path / "probe")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    with pytest.raises(ValueError, match=r"is a LoRA adapter, not an encoder with a trunk.*'org/base'"):
        check_encoder_checkpoint(adapter)
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="holds a 'gpt2' model, not an LMRec encoder"):
        check_encoder_checkpoint(other)
    folder = write_unisrec(tmp_path / "toy-data")
    with pytest.raises(ValueError, match="has no LMRec trunk"):
        train_from_args(*load_train_config(None, {**_TINY, "data": str(folder), "init_from": str(heads),
                                                  "lora_r": 2, "output_dir": str(tmp_path / "lora")}))
    with pytest.raises(ValueError, match="`lora_r` 4 adapts a pretrained encoder, but no `init_from` was given"):
        load_train_config(None, {"lora_r": 4})
    with pytest.raises(ValueError, match=r"max_length 128 is longer than the 64 positions of the encoder at .*"
                                         r"Pass --max_length 64 \(or less\)"):  # refused before any training
        train_from_args(*load_train_config(None, {**_TINY, "data": str(folder), "init_from": str(base),
                                                  "max_length": 128, "output_dir": str(tmp_path / "long")}))
    assert not (tmp_path / "long" / "model").exists()


_TINY = {"preset": "1.7m", "vocab_size": 300, "max_steps": 2, "lm_batch_size": 2, "rec_batch_size": 2,
         "max_length": 64, "use_cpu": True, "eval_strategy": "no", "save_strategy": "no", "disable_tqdm": True,
         "write_catalog": False, "report_to": "none", "tokenizer_texts": 50, "learning_rate": 0.05}


def test_the_probe_and_finetune_commands(base, tmp_path, capsys):
    from lmrec_hf.cli import main

    folder = write_unisrec(tmp_path / "toy-cli", texts={i: ITEMS[i] for i in range(8)})
    common = ["--data", str(folder), "--cache-dir", str(tmp_path / "cache")]
    assert main(["probe", str(base), *common, "-o", str(tmp_path / "probe"), "--epochs", "1", "--max-length",
                 "64"]) == 0
    out = capsys.readouterr().out
    assert "Linear probe: 2,048 trainable parameters, 1 epochs" in out and (tmp_path / "probe/model").is_dir()
    with pytest.raises(SystemExit):
        main(["probe", str(base), *common, "-o", str(tmp_path / "p2"), "--train-share", "0"])
    assert "expected a share of the training users in (0, 1], got '0'" in capsys.readouterr().err
    assert main(["probe", str(tmp_path / "probe" / "nothing"), *common, "-o", str(tmp_path / "p3")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["probe", str(base), *common, "-o", str(tmp_path / "p4"), "--epochs", "1", "--max-length", "64",
                 "--cold", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "warm users (" in out and "cold users (" in out
    assert main(["probe", str(base), *common, "-o", str(tmp_path / "p5"), "--cold", "1.5"]) == 1
    assert "the cold-item fraction must be in (0, 1), got 1.5" in capsys.readouterr().err
    assert main(["probe", str(base), *common, "-o", str(tmp_path / "p6"), "--epochs", "1", "--max-length", "64",
                 "--init", "layernorm", "--user-feature", "last-item", "--features-cache",
                 str(tmp_path / "probe" / FEATURES_FILE)]) == 0
    started = json.loads((tmp_path / "p6" / "metrics.json").read_text())
    assert started["probe"]["init"] == "layernorm" and [h["epoch"] for h in started["history"]] == [0, 1]
    assert json.loads((tmp_path / "p6" / "model" / "config.json").read_text())["lmrec_transfer"]["user_feature"] \
        == "last-item"

    code = main(["finetune", str(base), "--data", str(folder), "--lora", "-o", str(tmp_path / "lora"),
                 "--max_steps", "1", "--rec_batch_size", "2", "--max_length", "64", "--eval_split", "test",
                 "--report_to", "none", "--disable_tqdm", "true"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "lora" / "model" / "model.safetensors").exists()
    metrics = json.loads((tmp_path / "lora" / "metrics.json").read_text())
    assert metrics["method"] == "lora-r8-attention" and metrics["init_from"] == str(base)


def test_a_probe_on_cold_start_data_never_trains_on_cold_items_and_reports_both_groups(base, toy, tmp_path,
                                                                                       monkeypatch):
    from lmrec_hf.data import cold_items, hold_out_cold_items

    data = hold_out_cold_items(toy, 0.25, seed=0)
    cold = cold_items(data)
    seen = []
    real = torch.nn.functional.cross_entropy

    def spy(scores, targets):
        seen.append((scores.detach().clone(), targets.clone()))
        return real(scores, targets)

    monkeypatch.setattr("lmrec_hf.transfer.F.cross_entropy", spy)
    record = run_probe(base, data, tmp_path / "probe", ProbeArguments(epochs=1, batch_size=2), max_length=64)
    assert record["cold"]["users"] == data.info["cold_test_users"]
    assert record["warm"]["users"] == data.info["warm_test_users"]
    assert seen and all(bool(torch.isinf(scores[:, sorted(cold)]).all()) for scores, _ in seen)
    assert all(t not in cold for _, targets in seen for t in targets.tolist())


def test_training_with_cold_items_never_draws_them_as_negatives_nor_takes_them_from_the_bank(base, tmp_path,
                                                                                           monkeypatch):
    import lmrec_hf.collators
    import lmrec_hf.losses
    from lmrec_hf.data import cold_items, hold_out_cold_items

    folder = write_unisrec(tmp_path / "toy", texts={i: ITEMS[i] for i in range(8)})
    cold = cold_items(hold_out_cold_items(load_unisrec(folder), 0.25, seed=0))
    drawn, spreads = [], []
    real_sample, real_spread = lmrec_hf.collators.sample_negatives, lmrec_hf.losses.spread_over_catalog

    def sample(*args, **kwargs):
        out = real_sample(*args, **kwargs)
        drawn.append(out.tolist())
        return out

    def spread(*args, **kwargs):
        candidates, labels = real_spread(*args, **kwargs)
        spreads.append(labels.detach().clone())
        return candidates, labels

    monkeypatch.setattr(lmrec_hf.collators, "sample_negatives", sample)
    monkeypatch.setattr(lmrec_hf.losses, "spread_over_catalog", spread)
    overrides = {**_TINY, "data": str(folder), "init_from": str(base), "output_dir": str(tmp_path / "ft"),
                 "cold_fraction": 0.25, "lm_batch_size": 0, "lm_on_rec_histories": True, "prefix_pairs": True,
                 "negative_layout": "shared", "rec_loss_type": "softmax", "num_negatives": 3,
                 "item_bank_refresh_steps": 1, "max_steps": 3, "eval_split": "test"}
    record = train_from_args(*load_train_config(None, overrides))
    assert drawn and not cold & {i for negatives in drawn for i in negatives}
    assert spreads and all(bool((labels[..., sorted(cold)] == -1).all()) for labels in spreads)
    assert record["cold_items"] == len(cold) == 2 and record["cold_fraction"] == 0.25
    assert record["cold"]["users"] + record["warm"]["users"] == record["lmrec"]["users"]
    with pytest.raises(ValueError, match=r"`cold_fraction` must be in \[0, 1\).*got 1.0"):
        load_train_config(None, {"cold_fraction": 1.0})
    with pytest.raises(ValueError, match="`cold_fraction` holds items out of one task's catalogue"):
        load_train_config(None, {"cold_fraction": 0.1, "rec_tasks": [str(folder), str(folder)]})


def test_negatives_drawn_from_the_allowed_items_skip_the_positive_and_keep_the_plain_draw():
    import numpy as np

    from lmrec_hf.collators import sample_negatives

    warm = np.array([0, 2, 3, 5, 7])
    for index in range(50):
        negatives = sample_negatives(8, 3, 6, seed=1, example_index=index, allowed=warm)
        assert set(negatives.tolist()) <= {0, 2, 5, 7}  # warm, never the positive
        assert set(sample_negatives(8, 4, 6, seed=1, example_index=index, allowed=warm).tolist()) <= set(warm)
    plain = [sample_negatives(8, 3, 6, seed=1, example_index=i).tolist() for i in range(5)]
    assert plain == [sample_negatives(8, 3, 6, seed=1, example_index=i, allowed=None).tolist() for i in range(5)]
    with pytest.raises(ValueError, match="at least one allowed item besides the positive, got 1 allowed"):
        sample_negatives(8, 3, 2, seed=1, example_index=0, allowed=np.array([3]))


def test_a_lora_run_resumes_from_its_adapter_checkpoint_to_the_uninterrupted_result(base, tmp_path):
    from safetensors.torch import load_file

    folder = write_unisrec(tmp_path / "toy", texts={i: ITEMS[i] for i in range(8)})
    common = {**_TINY, "data": str(folder), "init_from": str(base), "lora_r": 2, "max_steps": 3,
              "save_strategy": "steps", "save_steps": 1, "eval_split": ""}
    train_from_args(*load_train_config(None, {**common, "output_dir": str(tmp_path / "straight")}))
    checkpoint = tmp_path / "straight" / "checkpoint-1"
    assert (checkpoint / "adapter_model.safetensors").exists() and not (checkpoint / "config.json").exists()
    record = train_from_args(*load_train_config(None, {**common, "output_dir": str(tmp_path / "resumed"),
                                                       "resume_from_checkpoint": str(checkpoint)}))
    assert record["steps"] == 3
    straight, resumed = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)
    with pytest.raises(ValueError, match="holds a LoRA adapter \\(r=2\\), but the recipe trains the whole model"):
        train_from_args(*load_train_config(None, {**common, "lora_r": 0, "output_dir": str(tmp_path / "x"),
                                                  "resume_from_checkpoint": str(checkpoint)}))
    with pytest.raises(ValueError, match="holds a LoRA adapter of r=2 .* but the recipe asks for r=4"):
        train_from_args(*load_train_config(None, {**common, "lora_r": 4, "output_dir": str(tmp_path / "x"),
                                                  "resume_from_checkpoint": str(checkpoint)}))
    from lmrec_hf.checkpoints import check_resume_matches

    with pytest.raises(ValueError, match="holds a whole model, but the recipe asks for LoRA \\(lora_r=2\\)"):
        check_resume_matches(base, 2, None)
    (checkpoint / "adapter_model.safetensors").unlink()
    with pytest.raises(ValueError, match="has no adapter_model.safetensors to resume from"):
        train_from_args(*load_train_config(None, {**common, "output_dir": str(tmp_path / "x"),
                                                  "resume_from_checkpoint": str(checkpoint)}))
