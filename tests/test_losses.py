import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from lmrec_hf.encoding import encode_item_texts
from lmrec_hf.losses import LMRecItemBank, RecObjective, draw_bank_rows, linear_cross_entropy
from lmrec_hf.modeling_lmrec import causal_lm_loss

SHARED_TARGETS = torch.tensor([0, 3, 5, 2, 7])


def _shared(batch, items):
    """Five users against the same 8 items, each with one positive."""
    labels = torch.zeros(5, 8)
    labels[torch.arange(5), SHARED_TARGETS] = 1.0
    inputs = dict(user_input_ids=batch["input_ids"], user_attention_mask=batch["attention_mask"],
                  item_input_ids=items["input_ids"], item_attention_mask=items["attention_mask"])
    return inputs, labels


def _bank(model):
    """The 8 item rows as catalog rows [9, 2, 0, 5, 11, 3, 7, 1] of a 12-item bank."""
    torch.manual_seed(1)
    return torch.tensor([9, 2, 0, 5, 11, 3, 7, 1]), torch.randn(12, model.config.n_embd)


def test_paper_objective_is_the_models_own_loss(model, batch, items):
    inputs, labels = _shared(batch, items)
    out = model(**inputs, **batch, rec_labels=labels)
    loss, parts = RecObjective().loss(model, model(**inputs, input_ids=batch["input_ids"],
                                                   attention_mask=batch["attention_mask"]),
                                      {"labels": batch["labels"], "rec_labels": labels},
                                      model.config.rec_loss_weight)
    assert torch.allclose(parts["rec_loss"], out.rec_loss) and torch.allclose(parts["lm_loss"], out.lm_loss)
    assert torch.allclose(loss, out.loss)


def test_softmax_over_shared_items(model, batch, items):
    inputs, labels = _shared(batch, items)
    out = model(**inputs)
    loss, _ = RecObjective(rec_loss_type="softmax").loss(model, out, {"rec_labels": labels}, 1.0)
    assert torch.allclose(loss, F.cross_entropy(out.rec_logits, SHARED_TARGETS), atol=1e-6)
    with pytest.raises(ValueError, match=r"exactly one positive per row, got shape \(5,\)"):
        pairs = model(**dict(inputs, item_input_ids=items["input_ids"][:5], item_attention_mask=None))
        RecObjective(rec_loss_type="softmax").rec_loss(model, pairs.user_embeds, pairs.item_embeds, torch.ones(5))


def test_softmax_over_prefixes_keeps_the_real_positions(model, batch, items):
    positions = torch.tensor([[2, 5, -1], [1, 3, 4]])
    labels = torch.zeros(2, 3, 8)
    labels[0, 0, 1] = labels[0, 1, 2] = labels[1, 0, 3] = labels[1, 1, 4] = labels[1, 2, 5] = 1.0
    labels[1, :, 7] = -1.0  # ignored pairs
    out = model(user_input_ids=batch["input_ids"][:2], user_attention_mask=batch["attention_mask"][:2],
                item_input_ids=items["input_ids"], item_attention_mask=items["attention_mask"],
                user_positions=positions)
    loss, _ = RecObjective(rec_loss_type="softmax").loss(model, out, {"rec_labels": labels,
                                                                      "user_positions": positions}, 1.0)
    keep, logits = labels[positions >= 0], out.rec_logits[positions >= 0]
    expected = F.cross_entropy(logits.masked_fill(keep < 0, float("-inf")), keep.argmax(-1))
    assert torch.allclose(loss, expected, atol=1e-5)


def test_lm_on_rec_histories_is_one_cross_entropy_over_both_streams(model, batch, items):
    inputs, labels = _shared(batch, items)
    out = model(**inputs, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    objective = RecObjective(rec_loss_type="softmax", negative_layout="shared", lm_on_rec_histories=True)
    loss, parts = objective.loss(model, out, {"labels": batch["labels"], "user_labels": batch["labels"],
                                              "rec_labels": labels}, 0.3)
    # the same tokens twice: the mean over both streams is the mean over one
    assert torch.allclose(parts["lm_loss"], model(**batch).lm_loss, atol=1e-6)
    assert torch.allclose(loss, parts["lm_loss"] + 0.3 * parts["rec_loss"])


@pytest.mark.parametrize("chunk_rows", [None, 7, 64, 1000])
def test_linear_cross_entropy_equals_the_plain_loss_and_its_gradients(chunk_rows):
    torch.manual_seed(0)
    hidden, weight = torch.randn(150, 16), torch.randn(50, 16) * 0.3
    labels = torch.randint(0, 50, (150,))
    h1, w1 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    (0.7 * F.cross_entropy(h1 @ w1.T, labels, reduction="sum")).backward()
    h2, w2 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = linear_cross_entropy(h2, w2, labels, chunk_rows)
    (0.7 * loss).backward()
    assert torch.allclose(loss, F.cross_entropy(hidden @ weight.T, labels, reduction="sum"), rtol=1e-5)
    assert torch.allclose(h2.grad, h1.grad, atol=1e-5) and torch.allclose(w2.grad, w1.grad, atol=1e-5)
    with torch.no_grad():  # an evaluation loss builds no gradients
        assert torch.allclose(linear_cross_entropy(h2, w2, labels, chunk_rows), loss)
    h3 = hidden.clone().requires_grad_()  # a frozen head (as under LoRA) gets no gradient, the rows still do
    (0.7 * linear_cross_entropy(h3, weight, labels, chunk_rows)).backward()
    assert torch.allclose(h3.grad, h1.grad, atol=1e-5) and weight.grad is None


@pytest.mark.parametrize("change, message", [
    (lambda h, w, y: (h, w, y.masked_fill(y == y[0], -100)), r"must lie in \[0, 50\), got -100 .*drop ignored"),
    (lambda h, w, y: (h, w, y[:-1]), r"`labels` must be \(150,\), one per row, got \(149,\)"),
    (lambda h, w, y: (h, w[:, :8], y), r"`hidden` must be \(N, d\) and `weight` \(V, d\), got \(150, 16\)"),
])
def test_linear_cross_entropy_bad_inputs(change, message):
    hidden, weight, labels = torch.randn(150, 16), torch.randn(50, 16), torch.randint(0, 50, (150,))
    with pytest.raises(ValueError, match=message):
        linear_cross_entropy(*change(hidden, weight, labels))


def test_l1_on_rec_histories_equals_the_lm_head_over_every_position(model, batch, items):
    """The fused route (labelled positions only, no (B, T, V) logits) against the plain one, on padded rows."""
    assert (batch["labels"] == -100).any()  # the batch has padding, which the fused route skips
    inputs, labels = _shared(batch, items)
    objective = RecObjective(rec_loss_type="softmax", negative_layout="shared", lm_on_rec_histories=True)
    targets = {"user_labels": batch["labels"], "rec_labels": labels}
    model.zero_grad()
    _, parts = objective.loss(model, model(**inputs), targets, 1.0)
    parts["lm_loss"].backward()
    fused = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    plain = causal_lm_loss([(model.lm_head(model(**inputs).user_hidden_states), batch["labels"])])
    plain.backward()
    assert torch.allclose(parts["lm_loss"], plain, atol=1e-6)
    assert fused.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(fused[name], p.grad, atol=1e-6), name
    model.zero_grad()


def test_log_q_correction_changes_the_loss_only(model, batch, items):
    inputs, labels = _shared(batch, items)
    out = model(**inputs)
    log_q = torch.log(torch.tensor([8.0, 1, 1, 1, 1, 1, 1, 0.5]))
    objective = RecObjective(prefix_pairs=True, logq_correction=True)
    corrected = objective.rec_loss(model, out.user_embeds, out.item_embeds, labels, item_log_q=log_q)
    expected = F.binary_cross_entropy_with_logits(out.rec_logits - log_q, labels)
    assert torch.allclose(corrected, expected, atol=1e-6)


def test_item_bank_separate_loss_averages_the_batch_and_the_bank(model, batch, items):
    inputs, labels = _shared(batch, items)
    labels[0, 6] = -1.0  # ignored: catalog row 7 for user 0
    item_ids, bank = _bank(model)
    log_q = torch.log(torch.tensor([8.0, 1, 1, 1, 1, 1, 1, 0.5]))
    out = model(**inputs)
    objective = RecObjective(rec_loss_type="softmax", prefix_pairs=True, logq_correction=True,
                             item_bank_refresh_steps=25)
    batch_only = objective.rec_loss(model, out.user_embeds, out.item_embeds, labels, item_log_q=log_q)
    loss = objective.rec_loss(model, out.user_embeds, out.item_embeds, labels, item_log_q=log_q, item_ids=item_ids,
                              item_bank=bank)
    bank_logits = out.user_embeds @ model.item_projection(bank).T  # every row from the bank
    bank_logits[0, 7] = float("-inf")
    bank_loss = F.cross_entropy(bank_logits, item_ids[SHARED_TARGETS])
    assert torch.allclose(loss, (batch_only + bank_loss) / 2, atol=1e-5)
    loss.backward()
    assert model.item_projection.weight.grad.abs().sum() > 0 and bank.grad is None


def test_item_bank_fresh_over_bank_scores_the_whole_catalog(model, batch, items):
    inputs, labels = _shared(batch, items)
    labels[0, 6] = -1.0
    item_ids, bank = _bank(model)
    out = model(**inputs)
    objective = RecObjective(rec_loss_type="softmax", negative_layout="shared", item_bank_refresh_steps=25,
                             item_bank_loss="fresh_over_bank")
    loss = objective.rec_loss(model, out.user_embeds, out.item_embeds, labels, item_ids=item_ids, item_bank=bank)
    # the batch's rows are its fresh encodings; the others are W_i applied to the bank
    candidates = model.item_projection(bank).detach().clone()
    candidates[item_ids] = out.item_embeds.detach()
    logits = out.user_embeds.detach() @ candidates.T
    logits[0, 7] = float("-inf")
    assert torch.allclose(loss, F.cross_entropy(logits, item_ids[SHARED_TARGETS]), atol=1e-5)
    loss.backward()
    assert model.item_projection.weight.grad.abs().sum() > 0  # W_i learns from the bank rows too


def test_item_bank_with_prefix_positions(model, batch, items):
    item_ids, bank = _bank(model)
    positions = torch.tensor([[2, 5, -1], [1, 3, 4]])
    labels = torch.zeros(2, 3, 8)
    labels[0, 0, 1] = labels[0, 1, 2] = labels[1, 0, 3] = labels[1, 1, 4] = labels[1, 2, 5] = 1.0
    out = model(user_input_ids=batch["input_ids"][:2], user_attention_mask=batch["attention_mask"][:2],
                item_input_ids=items["input_ids"], item_attention_mask=items["attention_mask"],
                user_positions=positions)
    objective = RecObjective(rec_loss_type="softmax", prefix_pairs=True, item_bank_refresh_steps=5,
                             item_bank_loss="fresh_over_bank")
    loss = objective.rec_loss(model, out.user_embeds, out.item_embeds, labels, positions, item_ids=item_ids,
                              item_bank=bank)
    candidates = model.item_projection(bank).detach().clone()
    candidates[item_ids] = out.item_embeds.detach()
    logits = torch.einsum("bpd,md->bpm", out.user_embeds.detach(), candidates)[positions >= 0]
    assert torch.allclose(loss, F.cross_entropy(logits, item_ids[torch.tensor([1, 2, 3, 4, 5])]), atol=1e-5)


def test_bank_rows_drawn_are_the_batchs_rows_and_distinct_others_outside_the_cold_ones():
    item_ids = torch.tensor([9, 2, 0, 5, 11, 3, 7, 1])  # the pool is rows 4, 6, 8, 10; row 4 is cold
    torch.manual_seed(0)
    rows, log_share = draw_bank_rows(12, item_ids, 2, excluded=torch.tensor([4]))
    assert rows[:8].tolist() == sorted(item_ids.tolist())  # every positive stays a candidate
    drawn = rows[8:].tolist()
    assert len(set(drawn)) == 2 and set(drawn) <= {6, 8, 10}
    assert log_share[:8].abs().sum() == 0 and torch.allclose(log_share[8:], torch.full((2,), math.log(3 / 2)))
    assert draw_bank_rows(12, item_ids, 0) == (None, None)  # 0: the whole catalog
    assert draw_bank_rows(12, item_ids, 3, excluded=torch.tensor([4])) == (None, None)  # the pool holds only 3


@pytest.mark.parametrize("bank_loss", ["separate", "fresh_over_bank"])
def test_item_bank_negatives_score_the_batchs_rows_and_the_drawn_ones_with_their_log_share(model, batch, items,
                                                                                          bank_loss):
    inputs, labels = _shared(batch, items)
    item_ids, bank = _bank(model)
    out = model(**inputs)
    whole = RecObjective(rec_loss_type="softmax", negative_layout="shared", item_bank_refresh_steps=5,
                         item_bank_loss=bank_loss)
    drawn = dataclasses.replace(whole, item_bank_negatives=2)
    kwargs = dict(item_ids=item_ids, item_bank=bank)
    # a pool of 4 (rows 4, 6, 8, 10) and 4 draws or more is the whole catalog
    assert torch.equal(dataclasses.replace(whole, item_bank_negatives=4).rec_loss(
        model, out.user_embeds, out.item_embeds, labels, **kwargs), whole.rec_loss(
        model, out.user_embeds, out.item_embeds, labels, **kwargs))
    torch.manual_seed(3)
    loss = drawn.rec_loss(model, out.user_embeds, out.item_embeds, labels, **kwargs)
    torch.manual_seed(3)
    rows, _ = draw_bank_rows(12, item_ids, 2)
    candidates = model.item_projection(bank).detach().clone()
    if bank_loss == "fresh_over_bank":
        candidates[item_ids] = out.item_embeds.detach()
    logits = out.user_embeds.detach() @ candidates[rows].T
    logits[:, 8:] += math.log(4 / 2)
    position = {int(r): i for i, r in enumerate(rows)}
    bank_part = F.cross_entropy(logits, torch.tensor([position[int(r)] for r in item_ids[SHARED_TARGETS]]))
    if bank_loss == "separate":
        bank_part = (whole.rec_loss(model, out.user_embeds, out.item_embeds, labels) + bank_part) / 2
    assert torch.allclose(loss, bank_part, atol=1e-5)
    assert not torch.allclose(loss, whole.rec_loss(model, out.user_embeds, out.item_embeds, labels, **kwargs))


@pytest.mark.parametrize("change,message", [
    (dict(item_ids=torch.tensor([0, 1])), r"`item_ids` must have shape \(8,\), one catalog row per item"),
    (dict(item_ids=torch.tensor([9, 2, 0, 5, 12, 3, 7, 1])), r"must lie in \[0, 12\).*got 0 to 12"),
    (dict(item_bank=torch.zeros(12, 3)), r"the bank must have shape \(N, 32\).*got \(12, 3\)"),
])
def test_item_bank_bad_inputs(model, batch, items, change, message):
    inputs, labels = _shared(batch, items)
    item_ids, bank = _bank(model)
    out = model(**inputs)
    objective = RecObjective(negative_layout="shared", item_bank_refresh_steps=5)
    with pytest.raises(ValueError, match=message):
        objective.rec_loss(model, out.user_embeds, out.item_embeds, labels,
                           **dict(dict(item_ids=item_ids, item_bank=bank), **change))


@pytest.mark.parametrize("options,message", [
    (dict(rec_loss_type="hinge"), r"`rec_loss_type` must be one of \('bce', 'softmax'\), got 'hinge'"),
    (dict(negative_layout="batch"), r"`negative_layout` must be one of \('per_user', 'shared'\)"),
    (dict(item_bank_loss="replace"), r"`item_bank_loss` must be one of \('separate', 'fresh_over_bank'\)"),
    (dict(rec_loss_weight_schedule="linear"), r"`rec_loss_weight_schedule` must be one of"),
    (dict(rec_loss_weight=-1.0), r"`rec_loss_weight` \(λ\) must be a finite number >= 0, got -1.0"),
    (dict(rec_loss_weight=float("nan")), r"must be a finite number >= 0, got nan"),
    (dict(rec_loss_weight_min_ratio=2.0), r"`rec_loss_weight_min_ratio` must be in \[0, 1\]"),
    (dict(num_negatives=-1), r"`num_negatives` must be >= 0"),
    (dict(item_bank_refresh_steps=-1), r"`item_bank_refresh_steps` must be >= 0"),
    (dict(negative_layout="shared", item_bank_refresh_steps=5, item_bank_negatives=-1),
     r"`item_bank_negatives` must be >= 0 \(0 scores the whole catalog\), got -1"),
    (dict(item_bank_negatives=512), r"`item_bank_negatives=512` draws rows from the item bank, which is off"),
    # logQ corrects the draw rates that only prefix batches carry: alone it did nothing, silently
    (dict(logq_correction=True), r"without prefix_pairs there is nothing to correct"),
    (dict(item_bank_refresh_steps=25), r"needs negative_layout='shared' or prefix_pairs=True"),
    (dict(prefix_pairs=True, logq_correction=True, item_bank_refresh_steps=25, item_bank_loss="fresh_over_bank"),
     r"no candidate is sampled and `logq_correction` has nothing to correct"),
])
def test_objectives_that_cannot_work_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        RecObjective(**options)


def test_joint_without_any_lm_loss_is_refused():
    RecObjective(lm_on_rec_histories=True).check_batches("joint", 0)
    RecObjective().check_batches("rec_only", 0)
    with pytest.raises(ValueError, match="mode='joint' with lm_batch_size=0 has no LM loss"):
        RecObjective().check_batches("joint", 0)


def test_lambda_decays_by_cosine_to_its_floor():
    objective = RecObjective()
    assert objective.rec_loss_weight_at(0, 100, 0.01) == pytest.approx(0.01)
    assert objective.rec_loss_weight_at(50, 100, 0.01) == pytest.approx(0.0055)
    assert objective.rec_loss_weight_at(100, 100, 0.01) == pytest.approx(0.001)
    assert RecObjective(rec_loss_weight_schedule="constant").rec_loss_weight_at(50, 100, 0.01) == 0.01


def test_item_bank_refreshes_every_n_steps(model, tokenizer):
    from types import SimpleNamespace

    from .conftest import ITEMS

    bank = LMRecItemBank(tokenizer, ITEMS, refresh_steps=3, item_max_length=16)
    args = SimpleNamespace(device=torch.device("cpu"))
    model.train()
    seen = []
    for step in range(7):
        bank.on_step_begin(args, SimpleNamespace(global_step=step), None, model=model)
        seen.append(bank.encoded_at)
    assert seen == [0, 0, 0, 3, 3, 3, 6]
    assert bank.bank.shape == (len(ITEMS), model.config.n_embd) and model.training
    model.eval()  # the catalog, tokenized once, encodes as every item text encoded afresh does
    assert torch.allclose(bank.bank, encode_item_texts(model, tokenizer, ITEMS, projection=None, max_length=16,
                                                       progress=False), atol=1e-6)
    model.train()
    with pytest.raises(ValueError, match="refresh_steps must be positive"):
        LMRecItemBank(tokenizer, ITEMS, refresh_steps=0, item_max_length=16)
