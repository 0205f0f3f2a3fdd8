"""The model card: data from training and evaluation records, the rendered text, model-index, validation."""

import json
import math
import re

import pytest
from huggingface_hub import ModelCard

from lmrec_hf.model_card import (
    LMRecModelCardData,
    render_model_card,
    validate_model_card,
)


def _record(protocol="full ranking, ties against the model, history items not masked", recall=0.1234, **extra):
    return {"data": {"name": "OR", "users": 10, "items": 8, "interactions": 40}, "split": "test",
            "protocol": protocol, "protocol_id": "sampled-100" if "sampled" in protocol else "full-ranking",
            "mask_history": False, "seed": 0, "git_commit": "abc",
            "lmrec": {"recall@10": recall, "ndcg@10": 0.05, "recall@50": 0.3, "ndcg@50": 0.09, "users": 10},
            "popularity": {"recall@10": 0.04, "ndcg@10": 0.02, "users": 10}, **extra}


def _card_data():
    card_data = LMRecModelCardData(model_name="lmrec-test", repo_id="org/lmrec-test", preset="1.7m",
                                   example_items=["red mug", "tea pot", "kettle"])
    card_data.set_dataset("OR", {"users": 10, "items": 8, "interactions": 40})
    card_data.training.update(mode="joint", rec_loss_weight=0.01, rec_loss_type="bce", steps=2, prefix_pairs=True)
    card_data.add_evaluation(_record())
    card_data.add_evaluation(_record(protocol="target among 100 sampled negatives, ties against the model, "
                                              "history items not masked", recall=0.5))
    return card_data


def test_card_renders_what_a_user_needs(model):
    card = render_model_card(_card_data(), model.config)
    text = str(card)
    for expected in (
        "# lmrec-test",
        'AutoModel.from_pretrained(repo_id, revision=revision, trust_remote_code=True)',
        'pipeline("feature-extraction", model=repo_id, revision=revision, trust_remote_code=True)',
        'repo_id = "org/lmrec-test"',
        "Pin `revision`",
        '["red mug", "tea pot"]',
        "OR, 10 users, 8 items, 40 interactions",
        "| rec_loss_weight | 0.01 |",
        "Options beyond the paper's recipe: prefix_pairs",
        "| OR | test | full-ranking | no | 10 | 0.1234 |",
        "| OR | test | sampled-100 | no | 10 | 0.5000 |",
        "UCI Online Retail data set (CC BY 4.0)",
        "shin-etal-2023-pivotal",
    ):
        assert expected in text, expected
    validate_model_card(card)


def test_card_says_when_the_score_is_a_cosine(model):
    assert "cosine" not in str(render_model_card(_card_data(), model.config))
    model.config.rec_similarity, model.config.rec_temperature = "cosine", 0.05
    assert ("both projected vectors are scaled to length\n1 / sqrt(0.05), so that their dot product is their cosine "
            "divided by the temperature\n0.05" in str(render_model_card(_card_data(), model.config)))


def test_card_names_the_item_bank_only_when_it_is_on(model):
    card_data = _card_data()
    card_data.training.update(item_bank_refresh_steps=0, item_bank_loss="separate")
    assert "Options beyond the paper's recipe: prefix_pairs." in str(render_model_card(card_data, model.config))
    card_data.training.update(item_bank_refresh_steps=25)
    assert ("Options beyond the paper's recipe: prefix_pairs, item_bank_refresh_steps=25, item_bank_loss=separate."
            in str(render_model_card(card_data, model.config)))


def test_model_index_carries_the_protocol(model):
    card = ModelCard(str(render_model_card(_card_data(), model.config)))  # parse the rendered text back
    results = card.data.eval_results
    assert card.data.model_name == "lmrec-test"
    by_protocol = {(r.metric_type, r.metric_config): r.metric_value for r in results}
    assert by_protocol[("recall_at_10", "full-ranking")] == pytest.approx(0.1234)
    assert by_protocol[("recall_at_10", "sampled-100")] == pytest.approx(0.5)
    assert all(r.dataset_split == "test" and r.dataset_name == "OR" for r in results)
    assert {r.metric_args["history_masked"] for r in results} == {False}


def test_newer_record_replaces_same_protocol_only():
    card_data = _card_data()
    card_data.add_evaluation(_record(recall=0.2))
    full = [e for e in card_data.evaluations if e["protocol_id"] == "full-ranking"]
    assert len(card_data.evaluations) == 2 and full[0]["metrics"]["recall@10"] == 0.2
    card_data.add_evaluation({**_record(), "mask_history": True})
    assert len(card_data.evaluations) == 3


def test_a_record_without_protocol_id_is_refused():
    card_data = LMRecModelCardData()
    card_data.add_evaluation({"lmrec": {"recall@10": 0.1}, "protocol_id": "sampled-7", "protocol": "whatever"})
    assert card_data.evaluations[0]["protocol_id"] == "sampled-7"
    with pytest.raises(ValueError, match="no 'protocol_id'.*Evaluate the checkpoint again"):
        card_data.add_evaluation({"lmrec": {"recall@10": 0.1}, "protocol": "target among 100 sampled negatives"})


def test_bad_record_is_refused():
    with pytest.raises(ValueError, match="needs an 'lmrec' entry.*lmrec-hf evaluate --output"):
        LMRecModelCardData().add_evaluation({"metrics": {}})


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("license: apache-2.0", "license: my-own"), "license 'my-own' is not one of"),
    (lambda t: t.replace("value: 0.1234", "value: .nan"), "non-numeric value"),
    (lambda t: re.sub(r"\n +config: full-ranking", "", t, count=1), "does not name its protocol"),
    (lambda t: t.replace("## Limitations", "## Caveats"), "no '## Limitations' section"),
])
def test_validation_catches_broken_cards(model, edit, message):
    text = str(render_model_card(_card_data(), model.config))
    with pytest.raises(ValueError, match=message):
        validate_model_card(edit(text))


def test_save_writes_card_and_keeps_a_hand_written_readme(model, tmp_path):
    model.config.save_pretrained(tmp_path)
    card_data = _card_data()
    assert card_data.save(tmp_path, config=model.config) == tmp_path / "README.md"
    assert LMRecModelCardData.from_model_dir(tmp_path) == card_data  # lmrec_card.json round-trips
    (tmp_path / "README.md").write_text("# My own notes\n")
    assert card_data.save(tmp_path, config=model.config) is None
    assert (tmp_path / "README.md").read_text() == "# My own notes\n"


def test_trainer_callback_fills_the_card(tmp_path, tokenizer):
    from lmrec_hf.data import lm_texts, load_unisrec
    from lmrec_hf.trainer import LMRecTrainer

    from .test_trainer import _args, _model
    from .toy_data import write_unisrec

    data = load_unisrec(write_unisrec(tmp_path / "toy"))
    trainer = LMRecTrainer.from_data(_model(tokenizer), _args(tmp_path, max_steps=2, logging_steps=1), tokenizer,
                                     data, lm_texts=lm_texts(data))
    trainer.train()
    training = trainer.card_data.training
    assert training["steps"] == 2 and training["mode"] == "joint" and training["rec_loss_weight"] == 0.01
    assert math.isfinite(training["final_lm_loss"]) and math.isfinite(training["final_rec_loss"])
    json.dumps(trainer.card_data.training)  # everything in it is JSON


def test_git_commit_names_the_environment_commit_first(monkeypatch):
    import subprocess

    from lmrec_hf import model_card

    def no_git(*args, **kwargs):
        raise subprocess.CalledProcessError(128, "git")

    monkeypatch.delenv("LMREC_GIT_COMMIT", raising=False)
    checkout = model_card.git_commit()
    assert checkout and len(checkout) == 40  # this test runs from the git checkout
    monkeypatch.setenv("LMREC_GIT_COMMIT", "d4e3ede")  # a copy whose .git is another commit's says so
    assert model_card.git_commit() == "d4e3ede"
    monkeypatch.delenv("LMREC_GIT_COMMIT")
    monkeypatch.setattr(subprocess, "run", no_git)
    assert model_card.git_commit() is None
