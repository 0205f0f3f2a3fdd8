"""The hybrid item representation (UniSRec's transductive setting): W_i z_i + a learned item-id embedding, off by
default; on, it starts at the text-only model, learns for the training catalogue, and leaves other items to text."""

import pytest
import torch

from lmrec_hf import LMRecConfig, LMRecForJointModeling, LMRecModel, catalog_fingerprint
from lmrec_hf.arguments import ModelArguments
from lmrec_hf.data import lm_texts, load_unisrec
from lmrec_hf.evaluation import encode_items, evaluate_model, uses_item_ids
from lmrec_hf.losses import RecObjective
from lmrec_hf.trainer import LMRecTrainer
from lmrec_hf.training_args import LMRecTrainingArguments

from .conftest import ITEMS
from .toy_data import write_unisrec


def _hybrid(model):
    config = LMRecConfig(**{**model.config.to_dict(), "item_id_embeddings": len(ITEMS),
                            "item_id_catalog": catalog_fingerprint(ITEMS)})
    hybrid = LMRecForJointModeling(config)
    missing, _ = hybrid.load_state_dict(model.state_dict(), strict=False)
    assert missing == ["item_id_embedding.weight"]
    return hybrid.eval()


def test_off_by_default_and_the_hybrid_starts_as_the_text_only_model(model, batch, items):
    assert model.config.item_id_embeddings == 0 and not hasattr(model, "item_id_embedding")
    hybrid = _hybrid(model)
    ids = torch.arange(len(ITEMS))
    assert torch.equal(hybrid.item_id_embedding.weight, torch.zeros(len(ITEMS), model.config.projection_dim))
    text = model.embed(items["input_ids"], items["attention_mask"], projection="item")
    assert torch.allclose(hybrid.embed(items["input_ids"], items["attention_mask"], "item", item_ids=ids), text)


def test_the_id_embedding_is_added_to_known_items_only(model, items):
    hybrid = _hybrid(model)
    with torch.no_grad():
        hybrid.item_id_embedding.weight.normal_()
    text = model.embed(items["input_ids"], items["attention_mask"], projection="item")
    ids = torch.tensor([0, 1, 2, 3, -1, 5, 6, 7])  # row 4: an item outside the catalogue
    out = hybrid.embed(items["input_ids"], items["attention_mask"], "item", item_ids=ids)
    expected = text + hybrid.item_id_embedding.weight * (ids >= 0).unsqueeze(-1)
    assert torch.allclose(out, expected, atol=1e-6) and torch.allclose(out[4], text[4])
    assert torch.allclose(hybrid.embed(items["input_ids"], items["attention_mask"], "item"), text)  # no ids: text
    with pytest.raises(ValueError, match=r"catalogue rows in \[0, 8\) or -1 .*got -2 to 7"):
        hybrid.project_items(torch.zeros(8, model.config.n_embd), ids.masked_fill(ids == 0, -2))
    with pytest.raises(ValueError, match=r"one catalogue row per item row, shape \(8,\), got \(3,\)"):
        hybrid.project_items(torch.zeros(8, model.config.n_embd), ids[:3])
    with pytest.raises(ValueError, match="`item_id_embeddings` needs `item_id_catalog`"):
        LMRecConfig(**{**model.config.to_dict(), "item_id_embeddings": 8})


def test_a_hybrid_trains_its_ids_scores_its_own_catalogue_with_them_and_reloads(tokenizer, tmp_path):
    toy = load_unisrec(write_unisrec(tmp_path / "toy"))
    torch.manual_seed(0)
    config = LMRecConfig.from_preset("1.7m", vocab_size=len(tokenizer), n_positions=64,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                     item_id_embeddings=len(toy.item_texts),
                                     item_id_catalog=catalog_fingerprint(toy.item_texts))
    model = LMRecForJointModeling(config)
    args = LMRecTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, lm_batch_size=0, rec_batch_size=2,
                                  max_length=64, logging_steps=1, save_strategy="no", eval_strategy="no",
                                  use_cpu=True, disable_tqdm=True, learning_rate=1e-2, seed=3)
    objective = RecObjective(negative_layout="shared", rec_loss_type="softmax", prefix_pairs=True,
                             lm_on_rec_histories=True, num_negatives=2, item_bank_refresh_steps=2)
    trainer = LMRecTrainer.from_data(model, args, tokenizer, toy, objective, lm_texts=lm_texts(toy), eval_split=None)
    assert "item_ids" in trainer.data_collator([{"kind": "rec_eval", "index": 0, "user_row": 0, "position": 4}])
    trainer.train()
    table = model.item_id_embedding.weight.detach()
    assert table.abs().sum(-1).gt(0).all()  # every catalogue row learned (batch rows and the bank's softmax)
    model.eval()
    text_only = encode_items(model, tokenizer, toy) - table  # what the text gives, without the ids
    assert uses_item_ids(model, toy) and torch.allclose(encode_items(model, tokenizer, toy), text_only + table)
    other = load_unisrec(write_unisrec(tmp_path / "other", texts={i: f"other {i}" for i in range(8)}))
    assert not uses_item_ids(model, other)  # the same size, another catalogue: text alone
    record = evaluate_model(model, tokenizer, toy, "test")
    model.save_pretrained(tmp_path / "saved")
    reloaded = LMRecForJointModeling.from_pretrained(tmp_path / "saved").eval()
    assert torch.equal(reloaded.item_id_embedding.weight, table)
    assert evaluate_model(reloaded, tokenizer, toy, "test") == record
    LMRecModel.from_pretrained(tmp_path / "saved")  # the trunk alone loads past the id table


def test_the_recipe_option_is_for_a_model_trained_from_scratch(tokenizer, tmp_path):
    from lmrec_hf.runner import _new_model

    toy = load_unisrec(write_unisrec(tmp_path / "toy"))
    args = LMRecTrainingArguments(output_dir=str(tmp_path / "out"), max_length=64, use_cpu=True)
    model = _new_model(ModelArguments(preset="1.7m", item_id_embeddings=True), args, tokenizer, toy)
    assert model.item_id_embedding.num_embeddings == 8 and uses_item_ids(model, toy)
    assert not hasattr(_new_model(ModelArguments(preset="1.7m"), args, tokenizer, toy), "item_id_embedding")
    with pytest.raises(ValueError, match="`item_id_embeddings` adds an id table .* but `init_from` \\(enc\\)"):
        ModelArguments(item_id_embeddings=True, init_from="enc")
