import pytest
import torch

from lmrec_hf import LMRecConfig, LMRecForJointModeling, LMRecModel, format_history

from .conftest import HISTORIES


def _rec_inputs(batch, items, n_users=None):
    n = n_users or batch["input_ids"].shape[0]
    return {
        "user_input_ids": batch["input_ids"][:n],
        "user_attention_mask": batch["attention_mask"][:n],
        "item_input_ids": items["input_ids"][:n],
        "item_attention_mask": items["attention_mask"][:n],
    }


def test_shapes(model, batch, items):
    b, t = batch["input_ids"].shape
    out = model(**batch, **_rec_inputs(batch, items), rec_labels=torch.ones(b))
    d = model.config.projection_dim
    assert out.logits.shape == (b, t, model.config.vocab_size)
    assert out.user_embeds.shape == (b, d) and out.item_embeds.shape == (b, d)
    assert out.rec_logits.shape == (b,)
    trunk = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert trunk.last_hidden_state.shape == (b, t, model.config.n_embd)
    assert trunk.pooler_output.shape == (b, model.config.n_embd)


def test_base_model_is_the_trunk(model):
    assert isinstance(model.base_model, LMRecModel)
    assert model.lm_head.weight is model.base_model.wte.weight


def test_losses_only_when_labels_given(model, batch, items):
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert out.loss is None and out.lm_loss is None and out.logits is not None and out.rec_logits is None
    out = model(**_rec_inputs(batch, items))
    assert out.loss is None and out.rec_loss is None and out.logits is None
    assert out.rec_logits.shape == (batch["input_ids"].shape[0], batch["input_ids"].shape[0])  # every pair
    out = model(**batch)
    assert out.loss is not None and out.loss == out.lm_loss and out.rec_loss is None
    out = model(**_rec_inputs(batch, items), rec_labels=torch.ones(batch["input_ids"].shape[0]))
    assert out.loss == out.rec_loss and out.lm_loss is None


def test_loss_algebra(model, batch, items):
    b = batch["input_ids"].shape[0]
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])[:b]
    out = model(**batch, **_rec_inputs(batch, items), rec_labels=labels)
    assert torch.allclose(out.loss, out.lm_loss + model.config.rec_loss_weight * out.rec_loss)
    expected = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out.rec_logits), labels)
    assert torch.allclose(out.rec_loss, expected, atol=1e-6)
    pairs = (out.user_embeds * out.item_embeds).sum(-1)
    assert torch.allclose(out.rec_logits, pairs, atol=1e-6)


def test_lm_loss_matches_shifted_cross_entropy(model, batch):
    out = model(**batch)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(out.lm_loss, expected, atol=1e-6)


def test_grouped_items_per_user(model, batch, items):
    users = {k: batch[k][:2] for k in ("input_ids", "attention_mask")}
    item_ids = items["input_ids"][:6]
    item_mask = items["attention_mask"][:6]
    labels = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    out = model(user_input_ids=users["input_ids"], user_attention_mask=users["attention_mask"],
                item_input_ids=item_ids, item_attention_mask=item_mask, rec_labels=labels)
    assert out.rec_logits.shape == (2, 3)
    full = out.user_embeds @ out.item_embeds.T  # (2, 6)
    assert torch.allclose(out.rec_logits[0], full[0, :3], atol=1e-6)
    assert torch.allclose(out.rec_logits[1], full[1, 3:], atol=1e-6)


def test_backward_reaches_every_head(model, batch, items):
    model.train()
    b = batch["input_ids"].shape[0]
    out = model(**batch, **_rec_inputs(batch, items), rec_labels=torch.ones(b))
    out.loss.backward()
    params = dict(model.named_parameters())  # lm_head.weight is tied to transformer.wte.weight
    for name in ("transformer.wte.weight", "user_projection.weight", "item_projection.weight",
                 "transformer.h.0.attn.c_attn.weight"):
        grad = params[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_pooling_is_invariant_to_padding(model, tokenizer):
    texts = [format_history(h) for h in HISTORIES]
    singles = torch.cat([model.embed(tokenizer(t, return_tensors="pt").input_ids) for t in texts])
    right = tokenizer(texts, padding=True, return_tensors="pt")
    batched = model.embed(right.input_ids, right.attention_mask)
    assert torch.allclose(singles, batched, atol=1e-5)
    tokenizer.padding_side = "left"
    try:
        left = tokenizer(texts, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = "right"
    assert left.input_ids[2, 0] == tokenizer.pad_token_id  # the one-item history really is left-padded
    assert torch.allclose(singles, model.embed(left.input_ids, left.attention_mask), atol=1e-5)


def test_pooler_reads_the_final_eos(model):
    ids = torch.tensor([[5, 0, 6, 7, 0, 1, 1]])  # two EOS (0), then padding (1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]])
    out = model.base_model(input_ids=ids, attention_mask=mask)
    assert torch.equal(out.pooler_output[0], out.last_hidden_state[0, 4])


def test_eos_as_padding_is_not_pooled(model):
    ids = torch.tensor([[5, 6, 0, 0, 0]])  # pad with the EOS id itself, masked out
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    out = model.base_model(input_ids=ids, attention_mask=mask)
    assert torch.equal(out.pooler_output[0], out.last_hidden_state[0, 2])


def test_embed_projections(model, batch):
    z = model.embed(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(model.embed(batch["input_ids"], batch["attention_mask"], projection="user"),
                          model.user_projection(z))
    assert torch.allclose(model.embed(batch["input_ids"], batch["attention_mask"], projection="item"),
                          model.item_projection(z))
    with pytest.raises(ValueError, match="projection must be 'user', 'item' or None, got 'both'"):
        model.embed(batch["input_ids"], projection="both")


def test_projection_dim():
    config = LMRecConfig.from_preset("1.7m", vocab_size=300, n_positions=32, projection_dim=8)
    model = LMRecForJointModeling(config)
    assert model.user_projection.weight.shape == (8, 32)
    out = model(user_input_ids=torch.tensor([[5, 0]]), item_input_ids=torch.tensor([[6, 0]]), rec_labels=torch.ones(1))
    assert out.user_embeds.shape == (1, 8)


def test_gradient_checkpointing_gives_same_loss_and_grads(model, batch):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # train mode without randomness, so both passes compute the same thing
    model.train()
    reference = model(**batch).loss
    reference.backward()
    expected = model.transformer.h[0].mlp.c_fc.weight.grad.clone()
    model.zero_grad()
    model.activation_checkpointing_enable()
    assert all(block.gradient_checkpointing for block in model.transformer.h)
    loss = model(**batch).loss
    loss.backward()
    assert torch.allclose(loss, reference, atol=1e-6)
    assert torch.allclose(model.transformer.h[0].mlp.c_fc.weight.grad, expected, atol=1e-6)


def test_the_fused_tanh_gelu_is_gpt2s_gelu_new(model, batch, items, tmp_path):
    """The default activation computes GPT-2's gelu_new to float rounding; a checkpoint naming gelu_new keeps it."""
    assert model.config.activation_function == "gelu_pytorch_tanh"
    old = LMRecForJointModeling(LMRecConfig(**{**model.config.to_dict(), "activation_function": "gelu_new"}))
    old.load_state_dict(model.state_dict())
    model.eval(), old.eval()
    inputs = dict(**batch, user_input_ids=batch["input_ids"], item_input_ids=items["input_ids"],
                  item_attention_mask=items["attention_mask"], user_attention_mask=batch["attention_mask"])
    new_out, old_out = model(**inputs), old(**inputs)
    assert torch.allclose(new_out.logits, old_out.logits, atol=1e-5)
    assert torch.allclose(new_out.item_embeds, old_out.item_embeds, atol=1e-5)
    old.save_pretrained(tmp_path / "old")
    assert LMRecForJointModeling.from_pretrained(tmp_path / "old").config.activation_function == "gelu_new"


def test_user_without_item(model, batch):
    with pytest.raises(ValueError, match=r"got `user_input_ids` without `item_input_ids`.*pass both"):
        model(user_input_ids=batch["input_ids"])


def test_item_without_user(model, batch):
    with pytest.raises(ValueError, match=r"got `item_input_ids` without `user_input_ids`"):
        model(item_input_ids=batch["input_ids"])


def test_rec_labels_without_inputs(model, batch):
    with pytest.raises(ValueError, match="got `rec_labels` without `user_input_ids` and `item_input_ids`"):
        model(**batch, rec_labels=torch.ones(2))


def test_labels_without_input_ids(model, batch):
    with pytest.raises(ValueError, match="got `labels` without `input_ids`"):
        model(labels=batch["labels"])


def test_mismatched_pair_batch(model, batch, items):
    message = r"need as many user rows and item rows as labels, got 5 user rows and 3 item rows"
    with pytest.raises(ValueError, match=message):
        model(user_input_ids=batch["input_ids"], item_input_ids=items["input_ids"][:3], rec_labels=torch.ones(5))


def test_mismatched_grouped_batch(model, batch, items):
    message = r"shape \(2, 3\) need 2 user rows and either 3 item rows .* or 6 .*got 2 user rows and 5 item rows"
    with pytest.raises(ValueError, match=message):
        model(user_input_ids=batch["input_ids"][:2], item_input_ids=items["input_ids"][:5],
              rec_labels=torch.ones(2, 3))


def test_bad_rec_label_rank(model, batch, items):
    with pytest.raises(ValueError, match=r"must have shape \(B,\), \(B, N\) or \(B, P, M\), got \(1, 1, 1\)"):
        model(user_input_ids=batch["input_ids"][:1], item_input_ids=items["input_ids"][:1],
              rec_labels=torch.ones(1, 1, 1))


def test_row_without_eos(model):
    ids = torch.tensor([[5, 6, 0], [5, 6, 7]])
    with pytest.raises(ValueError, match=r"must contain the EOS token \(id 0\).*rows \[1\] have none"):
        model(user_input_ids=ids, item_input_ids=ids)


def test_too_long(model):
    ids = torch.ones(1, model.config.n_positions + 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"sequence length 65 is longer than n_positions=64"):
        model(input_ids=ids)


def test_cache_matches_full_forward(model):
    ids = torch.tensor([[5, 6, 7, 8, 0]])
    full = model.base_model(input_ids=ids).last_hidden_state
    first = model.base_model(input_ids=ids[:, :3], use_cache=True, return_pooler=False)
    rest = model.base_model(input_ids=ids[:, 3:], cache=first.cache, use_cache=True, return_pooler=False)
    assert torch.allclose(rest.last_hidden_state, full[:, 3:], atol=1e-5)


def test_shared_items_for_all_users(model, batch, items):
    labels = torch.zeros(5, 8)
    labels[torch.arange(5), torch.tensor([0, 3, 5, 2, 7])] = 1.0
    out = model(user_input_ids=batch["input_ids"], user_attention_mask=batch["attention_mask"],
                item_input_ids=items["input_ids"], item_attention_mask=items["attention_mask"], rec_labels=labels)
    assert out.rec_logits.shape == (5, 8)
    assert torch.allclose(out.rec_logits, out.user_embeds @ out.item_embeds.T, atol=1e-6)


def test_prefix_positions_score_every_prefix(model, batch, items):
    positions = torch.tensor([[2, 5, -1], [1, 3, 4]])
    users = {"user_input_ids": batch["input_ids"][:2], "user_attention_mask": batch["attention_mask"][:2]}
    labels = torch.zeros(2, 3, 8)
    labels[0, 0, 1] = labels[0, 1, 2] = labels[1, 0, 3] = labels[1, 1, 4] = labels[1, 2, 5] = 1.0
    labels[1, :, 7] = -1.0  # ignored pairs
    out = model(**users, user_positions=positions, item_input_ids=items["input_ids"],
                item_attention_mask=items["attention_mask"], rec_labels=labels)
    assert out.rec_logits.shape == (2, 3, 8) and out.user_embeds.shape == (2, 3, model.config.projection_dim)
    hidden = model.base_model(**{"input_ids": users["user_input_ids"],
                                 "attention_mask": users["user_attention_mask"]}).last_hidden_state
    assert torch.allclose(out.user_embeds[1, 2], model.user_projection(hidden[1, 4]), atol=1e-5)
    keep = labels[positions >= 0]  # (5, 8) rows of real positions
    logits = out.rec_logits[positions >= 0]
    mask = keep >= 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], keep[mask])
    assert torch.allclose(out.rec_loss, expected, atol=1e-6)


def test_user_hidden_states_come_back_with_the_users(model, batch, items):
    out = model(**_rec_inputs(batch, items))
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.allclose(out.user_hidden_states, hidden, atol=1e-6)


def test_prefix_labels_shape_mismatch(model, batch, items):
    with pytest.raises(ValueError, match=r"`rec_labels` must have shape \(1, 2, 8\), got \(1, 8\)"):
        model(user_input_ids=batch["input_ids"][:1], user_positions=torch.tensor([[1, 2]]),
              item_input_ids=items["input_ids"], rec_labels=torch.ones(1, 8))


def test_positions_without_users(model, batch):
    with pytest.raises(ValueError, match="got `user_positions` without `user_input_ids`"):
        model(**batch, user_positions=torch.tensor([[1]]))


def test_forward_takes_the_contract_inputs_only(model):
    import inspect

    params = list(inspect.signature(model.forward).parameters)
    assert params == ["input_ids", "attention_mask", "labels", "user_input_ids", "user_attention_mask",
                      "item_input_ids", "item_attention_mask", "rec_labels", "user_positions", "kwargs"]
