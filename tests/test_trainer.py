"""LMRecTrainer: modes, λ schedule, logging, resume, arguments."""

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from lmrec_hf import LMRecConfig, LMRecForJointModeling, format_item
from lmrec_hf.data import lm_texts, load_unisrec
from lmrec_hf.encoding import embed_texts
from lmrec_hf.losses import RecObjective
from lmrec_hf.trainer import LMRecTrainer, LMRecWeightAverage, QualityCurveCallback
from lmrec_hf.training_args import LMRecTrainingArguments

from .toy_data import write_unisrec


@pytest.fixture
def toy(tmp_path):
    return load_unisrec(write_unisrec(tmp_path / "toy"))


def _model(tokenizer, seed=0):
    torch.manual_seed(seed)
    config = LMRecConfig.from_preset("1.7m", vocab_size=len(tokenizer), n_positions=64,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LMRecForJointModeling(config)


def _args(tmp_path, **overrides):
    defaults = dict(output_dir=str(tmp_path / "out"), max_steps=2, lm_batch_size=2, rec_batch_size=2, max_length=64,
                    logging_steps=1, save_strategy="no", eval_strategy="no",
                    use_cpu=True, disable_tqdm=True, learning_rate=1e-3, seed=3)
    defaults.update(overrides)
    return LMRecTrainingArguments(**defaults)


def _objective(**options):
    return RecObjective(**dict({"num_negatives": 2}, **options))


@pytest.mark.parametrize("mode", ["joint", "rec_only", "lm_only"])
@pytest.mark.parametrize("negatives", ["per_user", "shared"])
def test_two_steps_in_each_mode(toy, tokenizer, tmp_path, mode, negatives):
    model = _model(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = LMRecTrainer.from_data(model, _args(tmp_path, mode=mode), tokenizer, toy,
                                     _objective(negative_layout=negatives), lm_texts=lm_texts(toy), eval_split=None)
    trainer.train()
    assert trainer.state.global_step == 2
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    assert ("lm_loss" in logs[0]) == (mode != "rec_only")
    assert ("rec_loss" in logs[0]) == (mode != "lm_only")
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert ("user_projection.weight" in changed) == (mode != "lm_only")


def test_item_max_length_is_saved_in_the_config(toy, tokenizer, tmp_path):
    model = _model(tokenizer)
    trainer = LMRecTrainer.from_data(model, _args(tmp_path, mode="rec_only", item_max_length=4), tokenizer, toy,
                                     _objective(), eval_split=None)
    assert model.config.item_max_length == 4 and trainer.data_collator.item_max_length == 4
    trainer.train()
    model.save_pretrained(tmp_path / "saved")
    assert LMRecConfig.from_pretrained(tmp_path / "saved").item_max_length == 4


def test_group_by_length_batches_rec_pairs_of_similar_history_length(toy, tokenizer, tmp_path):
    model = _model(tokenizer)
    args = _args(tmp_path, mode="rec_only", train_sampling_strategy="group_by_length", eval_strategy="steps",
                 eval_steps=1, early_stopping_patience_steps=0)
    trainer = LMRecTrainer.from_data(model, args, tokenizer, toy, _objective())
    sampler = trainer.get_train_dataloader().batch_sampler
    assert sampler.rec_lengths is not None and len(sampler.rec_lengths) == len(trainer.train_dataset)
    trainer.train()  # the validation loss runs too, in order (no LengthGroupedSampler over rec-eval examples)
    assert any("eval_loss" in h for h in trainer.state.log_history)


def test_softmax_loss_option(toy, tokenizer, tmp_path):
    model = _model(tokenizer)
    objective = _objective(negative_layout="shared", rec_loss_type="softmax")
    trainer = LMRecTrainer.from_data(model, _args(tmp_path, mode="rec_only"), tokenizer, toy, objective,
                                     eval_split=None)
    trainer.train()
    assert trainer.card_data.training["rec_loss_type"] == "softmax"
    assert not hasattr(model.config, "rec_loss_type")  # the objective is the trainer's, not the checkpoint's
    assert math.isfinite(trainer.state.log_history[0]["rec_loss"])


def test_joint_loss_uses_scheduled_lambda(toy, tokenizer, tmp_path):
    model = _model(tokenizer)
    objective = _objective(rec_loss_weight=0.5)
    trainer = LMRecTrainer.from_data(model, _args(tmp_path, max_steps=4), tokenizer, toy, objective,
                                     lm_texts=lm_texts(toy), eval_split=None)
    assert model.config.rec_loss_weight == 0.5  # the checkpoint records the λ it was trained with
    trainer.train()
    logged = [h["rec_loss_weight"] for h in trainer.state.log_history if "rec_loss_weight" in h]
    assert logged == pytest.approx([objective.rec_loss_weight_at(s, 4, 0.5) for s in range(4)])
    for h in trainer.state.log_history:
        if "loss" in h:
            assert h["loss"] == pytest.approx(h["lm_loss"] + h["rec_loss_weight"] * h["rec_loss"], rel=1e-4)


def _resumable_run(toy, tokenizer, tmp_path, options: dict):
    """run(output, resume=None, stop_after=None): 4 steps with a checkpoint every 2, the model trained."""
    def run(output, resume=None, stop_after=None):
        # A resumed run starts from other random weights, so only the checkpoint can make it match.
        model = _model(tokenizer, seed=1 if resume else 0)
        args = _args(tmp_path, output_dir=str(tmp_path / output), max_steps=4, save_strategy="steps", save_steps=2,
                     **options)
        trainer = LMRecTrainer.from_data(model, args, tokenizer, toy, _objective(), lm_texts=lm_texts(toy),
                                         eval_split=None)
        if stop_after:
            trainer.add_callback(_StopAt(stop_after))
        trainer.train(resume_from_checkpoint=resume)
        return model

    return run


def test_resume_is_exact(toy, tokenizer, tmp_path):
    run = _resumable_run(toy, tokenizer, tmp_path, {})
    straight = run("straight")
    run("interrupted", stop_after=2)
    resumed = run("interrupted", resume=str(tmp_path / "interrupted" / "checkpoint-2"))
    for name, tensor in straight.state_dict().items():
        assert torch.allclose(tensor, resumed.state_dict()[name], atol=1e-6), name
    saved = load_file(str(tmp_path / "straight" / "checkpoint-4" / "model.safetensors"))
    assert "transformer.wte.weight" in saved


class _StopAt(TrainerCallback):
    """Stops training after `step` steps, as an interruption would (the checkpoint at that step is kept)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_early_stopping_on_rec_validation_loss(toy, tokenizer, tmp_path):
    model = _model(tokenizer)
    args = _args(tmp_path, max_steps=40, eval_strategy="steps", eval_steps=1, save_strategy="steps", save_steps=1,
                 load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
                 early_stopping_patience_steps=2, learning_rate=0.5, save_total_limit=2)
    trainer = LMRecTrainer.from_data(model, args, tokenizer, toy, _objective(), lm_texts=lm_texts(toy))
    trainer.train()
    evals = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    assert evals and trainer.state.global_step < 40  # a learning rate of 0.5 diverges, so patience runs out


@pytest.mark.parametrize("prefix_pairs,bank_loss", [(False, "fresh_over_bank"), (True, "separate")])
def test_item_bank_is_encoded_every_n_steps_and_used_in_training_only(toy, tokenizer, tmp_path, monkeypatch,
                                                                      prefix_pairs, bank_loss):
    import lmrec_hf.losses as losses_module

    encoded_at, banks = [], []
    real_encode = losses_module.embed_batches
    real_loss = RecObjective.loss

    def counting_encode(model, *args, **kwargs):
        encoded_at.append((trainer.state.global_step, model.training))
        return real_encode(model, *args, **kwargs)

    def watching_loss(self, model, outputs, targets, rec_loss_weight, item_bank=None, item_bank_excluded=None):
        banks.append((item_bank, model.training, "item_ids" in targets))
        assert item_bank_excluded is None  # no cold items held out here
        return real_loss(self, model, outputs, targets, rec_loss_weight, item_bank, item_bank_excluded)

    monkeypatch.setattr(losses_module, "embed_batches", counting_encode)
    monkeypatch.setattr(RecObjective, "loss", watching_loss)
    model = _model(tokenizer)
    objective = _objective(negative_layout="shared", rec_loss_type="softmax", item_bank_refresh_steps=2,
                           item_bank_loss=bank_loss, prefix_pairs=prefix_pairs,
                           logq_correction=bank_loss == "separate")
    args = _args(tmp_path, mode="rec_only", max_steps=5, eval_strategy="steps", eval_steps=5,
                 early_stopping_patience_steps=0)
    trainer = LMRecTrainer.from_data(model, args, tokenizer, toy, objective)
    trainer.train()
    assert encoded_at == [(0, False), (2, False), (4, False)]  # encoded in eval mode, every 2 steps
    bank = trainer.item_bank.bank
    assert bank.shape == (len(toy.item_texts), model.config.n_embd)
    training, evaluation = banks[:5], banks[5:]
    # back in train mode after each encoding, with the catalog rows of the batch's items
    assert all(b is not None and b.shape == bank.shape and mode and ids for b, mode, ids in training)
    assert evaluation and all(b is None for b, _, _ in evaluation)  # the validation loss stays over the batch's items
    assert math.isfinite(trainer.state.log_history[0]["rec_loss"])
    model.eval()
    with torch.no_grad():
        expected = embed_texts(model, tokenizer, [format_item(t) for t in toy.item_texts], None, max_length=64,
                               cut="right")
    trainer.item_bank.bank = None  # the next step re-encodes the catalog with the current weights
    trainer.item_bank.on_step_begin(args, trainer.state, trainer.control, model=model)
    assert torch.allclose(trainer.item_bank.bank, expected, atol=1e-5)


def test_lm_on_rec_histories_is_off_outside_joint_training(toy, tokenizer, tmp_path):
    objective = _objective(lm_on_rec_histories=True)
    trainer = LMRecTrainer.from_data(_model(tokenizer), _args(tmp_path, mode="rec_only"), tokenizer, toy, objective,
                                     eval_split=None)
    assert not trainer.objective.lm_on_rec_histories and objective.lm_on_rec_histories
    batch = next(iter(trainer.get_train_dataloader()))
    assert "user_labels" not in batch


def test_joint_without_lm_loss_is_refused(toy, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="mode='joint' with lm_batch_size=0 has no LM loss"):
        LMRecTrainer.from_data(_model(tokenizer), _args(tmp_path, lm_batch_size=0), tokenizer, toy, _objective(),
                               eval_split=None)


def test_lm_mode_needs_lm_texts(toy, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="mode='joint' trains the LM loss, so it needs `lm_texts`"):
        LMRecTrainer.from_data(_model(tokenizer), _args(tmp_path), tokenizer, toy, _objective(), eval_split=None)


def test_checkpoint_trained_with_the_cpu_objectives_runs_on_the_shipped_files_alone(toy, tokenizer, tmp_path):
    """The objectives of losses.py add no weight and no config the shipped code needs: a process that cannot
    import lmrec_hf loads the checkpoint and extracts features with the four custom-code files."""
    import subprocess
    import sys
    import textwrap

    model = _model(tokenizer)
    objective = _objective(rec_loss_type="softmax", negative_layout="shared", prefix_pairs=True, logq_correction=True,
                           lm_on_rec_histories=True, item_bank_refresh_steps=1, rec_loss_weight=1.0)
    trainer = LMRecTrainer.from_data(model, _args(tmp_path, lm_batch_size=0), tokenizer, toy, objective,
                                     eval_split=None)
    trainer.train()
    trainer.save_model(str(tmp_path / "model"))
    tokenizer.save_pretrained(str(tmp_path / "model"))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["lmrec_hf"] = None  # the package is not importable here
        from transformers import AutoModelForCausalLM, pipeline
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True)
        fe = pipeline("feature-extraction", model={str(tmp_path / "model")!r}, trust_remote_code=True)
        print(len(fe([["red ceramic mug.", "tea pot."]], projection="user")[0]), model.config.rec_loss_weight)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == [str(model.config.projection_dim), "1.0"]


def test_lm_loss_is_logged_per_source_with_the_tokens_seen(toy, tokenizer, tmp_path):
    """A multi-corpus LM stream logs L1 per source: the mean over its rows' tokens, so a step with one source logs
    its lm_loss, and a step with both logs values either side of it. The token count covers every input stream."""
    from lmrec_hf.runner import build_lm_stream

    other = load_unisrec(write_unisrec(tmp_path / "other", "Other", texts={i: f"zebra crossing {i}" for i in range(8)}))
    stream = build_lm_stream(toy, [other], 0.5, seed=0)
    assert stream.features["source"].names == ["Toy", "Other"]
    assert build_lm_stream(toy, [toy], 0.5, seed=0).features["source"].names == ["Toy-0", "Toy-1"]
    assert "source" not in build_lm_stream(toy, [other], 1.0, seed=0).column_names  # one source: nothing to split
    trainer = LMRecTrainer.from_data(_model(tokenizer), _args(tmp_path, mode="lm_only", max_steps=6, lm_batch_size=3),
                                     tokenizer, toy, _objective(), lm_texts=stream, eval_split=None)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 6
    seen = set()
    for log in logs:
        parts = [value for name, value in log.items() if name.startswith("lm_loss/")]
        seen |= {name for name in log if name.startswith("lm_loss/")}
        if len(parts) == 1:
            assert parts[0] == pytest.approx(log["lm_loss"], abs=1e-5)
        else:
            assert len(parts) == 2 and min(parts) - 1e-5 <= log["lm_loss"] <= max(parts) + 1e-5
    assert seen == {"lm_loss/Toy", "lm_loss/Other"}
    tokens = [log["num_input_tokens_seen"] for log in logs]
    assert tokens[0] > 0 and all(b > a for a, b in zip(tokens, tokens[1:]))
    assert trainer.state.num_input_tokens_seen == tokens[-1]


def test_tokens_seen_count_users_and_items_too(toy, tokenizer, tmp_path):
    trainer = LMRecTrainer.from_data(_model(tokenizer), _args(tmp_path, max_steps=1), tokenizer, toy, _objective(),
                                     lm_texts=lm_texts(toy), eval_split=None)
    batch = trainer.data_collator([trainer.train_dataset[key] for key in next(iter(trainer.get_train_dataloader(
        ).batch_sampler))])
    expected = sum(int(batch[m].sum()) for m in ("attention_mask", "user_attention_mask", "item_attention_mask"))
    assert expected > int(batch["attention_mask"].sum())
    trainer.train()
    assert trainer.state.num_input_tokens_seen == expected


class _Weights(TrainerCallback):
    """The model's parameters after each optimizer step, as training left them."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps.append([p.detach().clone() for p in model.parameters()])


def test_weight_average_is_scored_and_kept_while_training_runs_on_the_step_weights(toy, tokenizer, tmp_path):
    def run(output, **options):
        model = _model(tokenizer)
        initial = [p.detach().clone() for p in model.parameters()]
        scored = []  # what each curve point evaluated: the first parameter's values
        curve = QualityCurveCallback(lambda m, t: scored.append(next(m.parameters()).detach().clone()) or
                                     {"valid_recall@10": 0.0}, every_s=1e-9)
        weights = _Weights()
        trainer = LMRecTrainer.from_data(model, _args(tmp_path, output_dir=str(tmp_path / output), max_steps=3,
                                                      **options),
                                         tokenizer, toy, _objective(), lm_texts=lm_texts(toy), eval_split=None,
                                         callbacks=[curve])
        trainer.add_callback(weights)
        trainer.train()
        return model, trainer, initial, weights.steps, scored

    plain, _, _, plain_steps, _ = run("plain")
    model, trainer, initial, steps, scored = run("averaged", ema_decay=0.5)
    # training never reads the average: the step weights are the plain run's, bit for bit
    for a, b in zip(plain_steps, steps):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    # by hand: the average starts at the initial weights and moves by 1 - min(0.5, (1 + n) / (10 + n))
    average = [w.clone() for w in initial]
    expected_scored = []
    for n, step in enumerate(steps):
        decay = min(0.5, (1 + n) / (10 + n))
        average = [a + (1 - decay) * (w - a) for a, w in zip(average, step)]
        expected_scored.append(average[0])
    assert len(scored) == 3 and all(torch.allclose(s, e, atol=1e-6) for s, e in zip(scored, expected_scored))
    # the average is left in the model at the end, and it is not the last step's weights
    assert all(torch.allclose(p, a, atol=1e-6) for p, a in zip(model.parameters(), average))
    assert not torch.equal(next(model.parameters()), steps[-1][0])
    assert trainer.card_data.training["ema_decay"] == 0.5


def test_resume_keeps_the_weight_average(toy, tokenizer, tmp_path, caplog):
    run = _resumable_run(toy, tokenizer, tmp_path, {"ema_decay": 0.9})
    straight = run("straight")
    run("interrupted", stop_after=2)
    checkpoint = tmp_path / "interrupted" / "checkpoint-2"
    assert (checkpoint / "weight_average.pt").is_file()
    resumed = run("interrupted", resume=str(checkpoint))
    for name, tensor in straight.state_dict().items():
        assert torch.allclose(tensor, resumed.state_dict()[name], atol=1e-6), name

    # a checkpoint saved without the average: the resume goes on, says so, and starts the average there
    (checkpoint / "weight_average.pt").unlink()
    with caplog.at_level("WARNING", logger="lmrec_hf.trainer"):
        run("interrupted", resume=str(checkpoint))
    assert "has no weight_average.pt (it was saved without ema_decay)" in caplog.text


def test_weight_average_refuses_bad_decays():
    with pytest.raises(ValueError, match=r"`ema_decay` must be in \[0, 1\) .*got 1.0"):
        LMRecTrainingArguments("unused", ema_decay=1.0)
    with pytest.raises(ValueError, match=r"`ema_decay` must be in \[0, 1\) .*got -0.1"):
        LMRecTrainingArguments("unused", ema_decay=-0.1)
    with pytest.raises(ValueError, match="Set ema_decay=0 or load_best_model_at_end=False"):
        LMRecTrainingArguments("unused", ema_decay=0.99, load_best_model_at_end=True, eval_strategy="steps",
                               save_strategy="steps", use_cpu=True)
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\), e.g. 0.995, got 0"):
        LMRecWeightAverage(0)
