"""The rec head's score: the paper's <W_u z_u, W_i z_i> by default, or, as an option, their cosine over a temperature
(`LMRecConfig.rec_similarity="cosine"`), which every projected vector the model returns follows."""

import pytest
import torch
import torch.nn.functional as F

from lmrec_hf import LMRecConfig, LMRecForJointModeling
from lmrec_hf.arguments import ModelArguments, load_train_config
from lmrec_hf.data import load_unisrec
from lmrec_hf.evaluation import encode_items, evaluate_last_item
from lmrec_hf.training_args import LMRecTrainingArguments

from .toy_data import write_unisrec


def _cosine(model, temperature=0.05):
    config = LMRecConfig(**{**model.config.to_dict(), "rec_similarity": "cosine", "rec_temperature": temperature})
    cosine = LMRecForJointModeling(config)
    cosine.load_state_dict(model.state_dict())
    return cosine.eval()


def test_dot_is_the_default_and_cosine_scores_the_cosine_over_the_temperature(model, batch, items):
    assert model.config.rec_similarity == "dot"
    model.eval()
    cosine = _cosine(model, temperature=0.1)
    users = {"user_input_ids": batch["input_ids"], "user_attention_mask": batch["attention_mask"]}
    both = {**users, "item_input_ids": items["input_ids"], "item_attention_mask": items["attention_mask"]}
    with torch.no_grad():
        dot, cos = model(**both), cosine(**both)
        z_u = model.embed(batch["input_ids"], batch["attention_mask"])
        z_i = model.embed(items["input_ids"], items["attention_mask"])
    expected = F.normalize(model.user_projection(z_u), dim=-1) @ F.normalize(model.item_projection(z_i), dim=-1).T
    assert torch.allclose(dot.rec_logits, model.user_projection(z_u) @ model.item_projection(z_i).T, atol=1e-5)
    assert torch.allclose(cos.rec_logits, expected / 0.1, atol=1e-4)
    assert not torch.allclose(cos.rec_logits, dot.rec_logits, atol=1e-2)
    # every projected vector follows the score: embed, the item and user projections, the item encodings
    user_vectors = cosine.embed(batch["input_ids"], batch["attention_mask"], projection="user")
    assert torch.allclose(user_vectors.norm(dim=-1), torch.full((len(user_vectors),), 0.1 ** -0.5), atol=1e-5)
    assert torch.allclose(cosine.project_items(z_i), F.normalize(model.item_projection(z_i), dim=-1) / 0.1 ** 0.5)
    assert torch.allclose(cosine.embed(batch["input_ids"], batch["attention_mask"]), z_u)  # z itself is unscaled


def test_the_option_round_trips_and_the_last_item_scorer_projects_alike(model, tokenizer, tmp_path, monkeypatch):
    from lmrec_hf import evaluation

    toy = load_unisrec(write_unisrec(tmp_path / "toy"))
    cosine = _cosine(model)
    cosine.save_pretrained(tmp_path / "saved")
    reloaded = LMRecForJointModeling.from_pretrained(tmp_path / "saved").eval()
    assert (reloaded.config.rec_similarity, reloaded.config.rec_temperature) == ("cosine", 0.05)
    length = torch.full((len(toy.item_texts),), 0.05 ** -0.5)
    assert torch.allclose(encode_items(reloaded, tokenizer, toy).norm(dim=-1), length, atol=1e-4)
    seen = []  # the last-item scorer's user and item vectors, scaled as the model's own
    monkeypatch.setattr(evaluation, "_evaluate_by_last_item", lambda users, items, *rest: seen.extend([users, items]))
    evaluate_last_item(reloaded, tokenizer, toy, "test")
    assert all(torch.allclose(vectors.norm(dim=-1), length, atol=1e-4) for vectors in seen) and len(seen) == 2


@pytest.mark.parametrize("field, value, match", [
    ("rec_similarity", "euclid", r"`rec_similarity` must be one of \('dot', 'cosine'\), got 'euclid'"),
    ("rec_temperature", 0.0, r"`rec_temperature` must be a finite number > 0 .* got 0.0"),
    ("rec_temperature", float("nan"), r"`rec_temperature` must be a finite number > 0 .* got nan"),
])
def test_the_config_refuses_a_bad_similarity_or_temperature(field, value, match):
    with pytest.raises(ValueError, match=match):
        LMRecConfig.from_preset("1.7m", **{field: value})


def test_the_recipe_sets_the_similarity_of_a_new_model_and_refuses_a_temperature_without_cosine(tokenizer, tmp_path):
    from lmrec_hf.runner import _new_model

    toy = load_unisrec(write_unisrec(tmp_path / "toy"))
    args = LMRecTrainingArguments(output_dir=str(tmp_path / "out"), max_length=64, use_cpu=True)
    model = _new_model(ModelArguments(preset="1.7m", rec_similarity="cosine", rec_temperature=0.07), args, tokenizer,
                       toy)
    assert (model.config.rec_similarity, model.config.rec_temperature) == ("cosine", 0.07)
    assert _new_model(ModelArguments(preset="1.7m"), args, tokenizer, toy).config.rec_similarity == "dot"
    model_args, *_ = load_train_config(None, ["--data", str(tmp_path / "toy"), "--rec_similarity", "cosine"])
    assert model_args.rec_similarity == "cosine" and model_args.rec_temperature is None
    with pytest.raises(ValueError, match=r"`rec_similarity` must be one of \[.dot., .cosine.\], got .Cosine."):
        ModelArguments(rec_similarity="Cosine")
    with pytest.raises(ValueError, match=r"`rec_temperature` 0.1 divides cosine scores, but `rec_similarity` is "
                                         r"'dot' .* Set rec_similarity: cosine, or drop rec_temperature"):
        ModelArguments(rec_temperature=0.1)
    with pytest.raises(ValueError, match=r"`rec_temperature` must be a finite number > 0 .* got -1"):
        ModelArguments(rec_similarity="cosine", rec_temperature=-1)


def test_a_finetune_from_a_dot_checkpoint_can_switch_to_cosine(model, tokenizer, tmp_path):
    from lmrec_hf.runner import _tokenizer_and_model

    toy = load_unisrec(write_unisrec(tmp_path / "toy"))
    model.save_pretrained(tmp_path / "enc")
    tokenizer.save_pretrained(tmp_path / "enc")
    args = LMRecTrainingArguments(output_dir=str(tmp_path / "out"), max_length=64, use_cpu=True)
    _, switched = _tokenizer_and_model(ModelArguments(init_from=str(tmp_path / "enc"), rec_similarity="cosine"),
                                       args, toy, None)
    assert (switched.config.rec_similarity, switched.config.rec_temperature) == ("cosine", 0.05)
    _, kept = _tokenizer_and_model(ModelArguments(init_from=str(tmp_path / "enc")), args, toy, None)
    assert kept.config.rec_similarity == "dot"


def test_a_cosine_model_trains_with_the_recipe_objective_and_the_item_bank(tokenizer, tmp_path):
    from lmrec_hf.data import lm_texts
    from lmrec_hf.losses import RecObjective
    from lmrec_hf.trainer import LMRecTrainer

    toy = load_unisrec(write_unisrec(tmp_path / "toy"))
    torch.manual_seed(0)
    config = LMRecConfig.from_preset("1.7m", vocab_size=len(tokenizer), n_positions=64, rec_similarity="cosine",
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LMRecForJointModeling(config)
    args = LMRecTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, lm_batch_size=0, rec_batch_size=2,
                                  max_length=64, logging_steps=1, save_strategy="no", eval_strategy="no",
                                  use_cpu=True, disable_tqdm=True, learning_rate=1e-2, seed=3)
    objective = RecObjective(negative_layout="shared", rec_loss_type="softmax", prefix_pairs=True, logq_correction=True,
                             lm_on_rec_histories=True, num_negatives=2, item_bank_refresh_steps=2)
    before = model.user_projection.weight.detach().clone()
    trainer = LMRecTrainer.from_data(model, args, tokenizer, toy, objective, lm_texts=lm_texts(toy), eval_split=None)
    trainer.train()
    rec_losses = [entry["rec_loss"] for entry in trainer.state.log_history if "rec_loss" in entry]
    assert len(rec_losses) == 4 and all(torch.isfinite(torch.tensor(rec_losses)))
    assert not torch.equal(model.user_projection.weight, before)  # W_u learns through the normalisation
    model.eval()
    length = torch.full((len(toy.item_texts),), 0.05 ** -0.5)
    assert torch.allclose(encode_items(model, tokenizer, toy).norm(dim=-1), length, atol=1e-4)
