"""
The rec objective: the paper's L2 and the CPU-budget options beyond it, kept out of the Hub-shipped model file.

`RecObjective` is the one options object: it is validated once, when it is made, and its field names are the
YAML keys. `LMRecTrainer.compute_loss` calls `RecObjective.loss` on the model's output; the model itself computes
only the paper's losses. `LMRecItemBank` is the callback that keeps the whole catalog's item features for the
item-bank option. A checkpoint trained with any of these still loads and runs with the four shipped files alone,
since none of them adds a weight.

Example:
```python
>>> objective = RecObjective(rec_loss_type="softmax", negative_layout="shared", prefix_pairs=True)
>>> outputs = model(**model_inputs)
>>> loss, parts = objective.loss(model, outputs, loss_inputs, rec_loss_weight=1.0)
```
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from .checks import check_choice
from .encoding import embed_batches, tokenized_batches
from .formatting_lmrec import format_item
from .modeling_lmrec import rec_bce_loss, score_pairs

REC_LOSS_TYPES = ("bce", "softmax")
NEGATIVE_LAYOUTS = ("per_user", "shared")
ITEM_BANK_LOSSES = ("separate", "fresh_over_bank")
LAMBDA_SCHEDULES = ("cosine", "constant")
# Batch entries the objective reads and the model does not take: they are split off before the forward.
LOSS_INPUTS = ("labels", "user_labels", "rec_labels", "item_log_q", "item_ids")


@dataclass
class RecObjective:
    """
    How L2 is trained and how it is weighed against L1. The defaults are the paper's: binary cross-entropy per
    pair, each user against its target and `num_negatives` uniform negatives of its own, λ from the model config,
    decayed by cosine like the learning rate. Every other value is an option for short CPU budgets, named in the
    recipes and in docs/results.md.

    Example:
    ```python
    >>> RecObjective(logq_correction=True)
    Traceback (most recent call last):
    ValueError: RecObjective: `logq_correction` corrects the in-batch candidates of prefix training ...
    ```
    """

    rec_loss_type: str = field(default="bce", metadata={"help": "bce (the paper: sigmoid per pair) or softmax "
                                                                "(cross-entropy over each user's row of scores)."})
    rec_loss_weight: float | None = field(default=None, metadata={"help": "Initial λ; None keeps the model config's "
                                                                          "rec_loss_weight."})
    rec_loss_weight_schedule: str = field(default="cosine", metadata={"help": "cosine (decays like the learning "
                                                                              "rate) or constant."})
    rec_loss_weight_min_ratio: float = field(default=0.1, metadata={"help": "λ at the end of the cosine, as a "
                                                                            "fraction of the initial λ."})
    negative_layout: str = field(
        default="per_user", metadata={"help": "per_user (the paper: each user against its target and its own K "
                                              "negatives) or shared (every user against every distinct item of the "
                                              "batch)."})
    num_negatives: int = field(default=4, metadata={"help": "K uniformly sampled negative items per user."})
    prefix_pairs: bool = field(
        default=False, metadata={"help": "Option, not the paper's recipe: train a user feature at every item "
                                         "boundary of each history (the separator after item k predicts item k+1), "
                                         "against the batch's items."})
    lm_on_rec_histories: bool = field(
        default=False, metadata={"help": "Option, not the paper's recipe: compute L1 on the rec batch's histories in "
                                         "the same forward that reads the user features (lm_batch_size may then be "
                                         "0)."})
    logq_correction: bool = field(
        default=False, metadata={"help": "Option for prefix_pairs: subtract each candidate's log draw rate inside the "
                                         "rec loss, so popularity-drawn in-batch negatives do not push popular items "
                                         "down."})
    item_bank_refresh_steps: int = field(
        default=0, metadata={"help": "Option, not the paper's recipe: score every user (or prefix) against the whole "
                                     "catalog too, its item features encoded without gradient every this many steps. "
                                     "0 turns it off. Needs negative_layout='shared' or prefix_pairs."})
    item_bank_loss: str = field(
        default="separate", metadata={"help": "How the item bank enters L2. separate: the mean of the loss over the "
                                              "batch's fresh items and a loss over the bank's rows alone. "
                                              "fresh_over_bank: one loss over the catalog, the batch's items fresh "
                                              "and the rest from the bank; a model can learn to tell fresh rows from "
                                              "old ones, as it did on Scientific (docs/results.md)."})
    item_bank_negatives: int = field(
        default=0, metadata={"help": "Option for the item bank: how many catalog rows it scores each step besides "
                                     "the batch's own items, drawn uniformly without replacement each step (a "
                                     "softmax adds each drawn row's log(pool / draws), so the loss estimates the "
                                     "whole catalog's). 0 scores the whole catalog."})

    def __post_init__(self):
        check_choice("rec_loss_type", self.rec_loss_type, REC_LOSS_TYPES, owner="RecObjective")
        check_choice("rec_loss_weight_schedule", self.rec_loss_weight_schedule, LAMBDA_SCHEDULES, owner="RecObjective")
        check_choice("negative_layout", self.negative_layout, NEGATIVE_LAYOUTS, owner="RecObjective")
        check_choice("item_bank_loss", self.item_bank_loss, ITEM_BANK_LOSSES, owner="RecObjective")
        weight = self.rec_loss_weight
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                   or not math.isfinite(weight) or weight < 0):
            raise ValueError(f"RecObjective: `rec_loss_weight` (λ) must be a finite number >= 0, got "
                             f"{self.rec_loss_weight!r}. Use 0 to train the LM loss alone.")
        if not 0 <= self.rec_loss_weight_min_ratio <= 1:
            raise ValueError("RecObjective: `rec_loss_weight_min_ratio` must be in [0, 1], got "
                             f"{self.rec_loss_weight_min_ratio}.")
        if self.num_negatives < 0:
            raise ValueError(f"RecObjective: `num_negatives` must be >= 0, got {self.num_negatives}.")
        if self.item_bank_refresh_steps < 0:
            raise ValueError("RecObjective: `item_bank_refresh_steps` must be >= 0 (0 turns the item bank off), got "
                             f"{self.item_bank_refresh_steps}.")
        if self.logq_correction and not self.prefix_pairs:
            raise ValueError("RecObjective: `logq_correction` corrects the in-batch candidates of prefix training, "
                             "whose draw rates the prefix batches carry; without prefix_pairs there is nothing to "
                             "correct and it would do nothing. Set prefix_pairs=True, or logq_correction=False.")
        if self.item_bank_refresh_steps and self.negative_layout == "per_user" and not self.prefix_pairs:
            raise ValueError("RecObjective: `item_bank_refresh_steps` needs negative_layout='shared' or "
                             "prefix_pairs=True (items shared by the batch's users), got negative_layout='per_user'.")
        if self.item_bank_negatives < 0:
            raise ValueError("RecObjective: `item_bank_negatives` must be >= 0 (0 scores the whole catalog), got "
                             f"{self.item_bank_negatives}.")
        if self.item_bank_negatives and not self.item_bank_refresh_steps:
            raise ValueError(f"RecObjective: `item_bank_negatives={self.item_bank_negatives}` draws rows from the item "
                             "bank, which is off (item_bank_refresh_steps=0); set item_bank_refresh_steps > 0, or "
                             "item_bank_negatives=0.")
        if self.item_bank_refresh_steps and self.logq_correction and self.item_bank_loss == "fresh_over_bank":
            raise ValueError("RecObjective: item_bank_loss='fresh_over_bank' scores the whole catalog, so no "
                             "candidate is sampled and `logq_correction` has nothing to correct; set "
                             "logq_correction=False, or item_bank_loss='separate'.")

    def to_dict(self) -> dict:
        return asdict(self)

    def check_batches(self, mode: str, lm_batch_size: int) -> None:
        """Refuses a joint run that would have no L1: no LM batch and no L1 on the rec histories."""
        if mode == "joint" and lm_batch_size == 0 and not self.lm_on_rec_histories:
            raise ValueError("mode='joint' with lm_batch_size=0 has no LM loss; set lm_batch_size > 0 or "
                             "lm_on_rec_histories=True.")

    def for_mode(self, mode: str) -> "RecObjective":
        """The objective as a run in `mode` uses it: L1 on the rec histories only in joint training (rec_only has
        no L1, lm_only no rec histories)."""
        if mode != "joint" and self.lm_on_rec_histories:
            return dataclasses.replace(self, lm_on_rec_histories=False)
        return self

    def rec_loss_weight_at(self, step: int, max_steps: int, initial: float) -> float:
        """λ_t: a cosine from `initial` at step 0 to `rec_loss_weight_min_ratio * initial` at `max_steps`."""
        if self.rec_loss_weight_schedule == "constant" or max_steps <= 0:
            return initial
        progress = min(max(step / max_steps, 0.0), 1.0)
        ratio = self.rec_loss_weight_min_ratio
        return initial * (ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    # -- the loss -------------------------------------------------------------------------------------------------

    def loss(self, model, outputs, targets: dict, rec_loss_weight: float,
             item_bank: torch.Tensor | None = None,
             item_bank_excluded: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """
        L = L1 + λ·L2 from one forward's `outputs` and the batch's `targets` (the `LOSS_INPUTS` split off it, and
        `user_positions` if the batch has them).
        `model` is the unwrapped LMRec model, for its heads. `item_bank` (N, d) holds z_i of every catalog item
        (`LMRecItemBank`); it is used when `targets` carry `item_ids`. `item_bank_excluded` lists catalog rows the
        bank never offers as negatives (held-out cold items). Returns the loss and its parts.
        """
        lm_loss = self.lm_loss(model, outputs, targets)

        rec_loss = None
        rec_labels = targets.get("rec_labels")
        if rec_labels is not None:
            rec_loss = self.rec_loss(model, outputs.user_embeds, outputs.item_embeds, rec_labels,
                                     targets.get("user_positions"), targets.get("item_log_q"),
                                     targets.get("item_ids"), item_bank, item_bank_excluded)
        if lm_loss is not None and rec_loss is not None:
            loss = lm_loss + rec_loss_weight * rec_loss
        else:
            loss = lm_loss if lm_loss is not None else rec_loss
        return loss, {"lm_loss": lm_loss, "rec_loss": rec_loss}

    def lm_loss(self, model, outputs, targets: dict) -> torch.Tensor | None:
        """
        L1: next-token cross-entropy averaged over every labelled token of the LM rows (`labels`, from the model's
        logits) and of the rec histories (`user_labels`, through the LM head here). The histories' L1 never builds
        their (B, T, V) logits: `linear_cross_entropy` reads the labelled positions only, in chunks. It equals
        `causal_lm_loss` over `model.lm_head(user_hidden_states)` to float tolerance.
        """
        sums, counts = [], 0
        if targets.get("labels") is not None:
            total, n = causal_lm_loss_sum(outputs.logits, targets["labels"])
            sums.append(total)
            counts += n
        if targets.get("user_labels") is not None:  # one forward serves L1 and the user features
            hidden, labels = outputs.user_hidden_states, targets["user_labels"].to(outputs.user_hidden_states.device)
            head = model.lm_head
            if isinstance(head, torch.nn.Linear) and head.bias is None:
                keep = labels[:, 1:] != -100  # position t predicts token t + 1
                total = linear_cross_entropy(hidden[:, :-1][keep], head.weight, labels[:, 1:][keep])
                n = int(keep.sum())
            else:  # a head with a bias or wrapped by an adapter: the plain route
                total, n = causal_lm_loss_sum(head(hidden), labels)
            sums.append(total)
            counts += n
        if not sums:
            return None
        return torch.stack(sums).sum() / max(counts, 1)

    def rec_loss(self, model, user_embeds: torch.Tensor, item_embeds: torch.Tensor, rec_labels: torch.Tensor,
                 user_positions: torch.Tensor | None = None, item_log_q: torch.Tensor | None = None,
                 item_ids: torch.Tensor | None = None, item_bank: torch.Tensor | None = None,
                 item_bank_excluded: torch.Tensor | None = None) -> torch.Tensor:
        """
        L2 over the batch's items, with the logQ correction when `item_log_q` is given; with `item_ids` and
        `item_bank`, also over the whole catalog (less `item_bank_excluded`) as `item_bank_loss` says.
        """
        rec_labels = rec_labels.to(user_embeds.device)
        valid = None if user_positions is None else user_positions >= 0  # the real prefixes
        use_bank = item_ids is not None and item_bank is not None
        if use_bank and self.item_bank_loss == "fresh_over_bank":
            candidates, labels = spread_over_catalog(model, item_embeds, item_ids, item_bank, rec_labels, fresh=True,
                                                    excluded=item_bank_excluded)
            return self._bank_loss(user_embeds, candidates, labels, item_ids, item_bank_excluded, valid)
        logits = score_pairs(user_embeds, item_embeds, rec_labels)
        corrected = logits if item_log_q is None else logits - item_log_q.to(logits)
        loss = self._loss(corrected, rec_labels, valid)
        if use_bank:  # "separate": every candidate of the second loss was encoded at the same time
            candidates, labels = spread_over_catalog(model, item_embeds, item_ids, item_bank, rec_labels, fresh=False,
                                                    excluded=item_bank_excluded)
            loss = (loss + self._bank_loss(user_embeds, candidates, labels, item_ids, item_bank_excluded, valid)) / 2
        return loss

    def _bank_loss(self, user_embeds: torch.Tensor, candidates: torch.Tensor, labels: torch.Tensor,
                   item_ids: torch.Tensor, excluded: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor:
        """The loss over the catalog's rows, or over the batch's rows and `item_bank_negatives` drawn ones."""
        rows, log_share = draw_bank_rows(candidates.shape[0], item_ids.to(candidates.device),
                                         self.item_bank_negatives, excluded)
        if rows is None:
            return self._loss(score_pairs(user_embeds, candidates, labels), labels, valid)
        candidates, labels = candidates[rows], labels[..., rows]
        logits = score_pairs(user_embeds, candidates, labels)
        if self.rec_loss_type == "softmax":  # the drawn rows stand for the whole pool: log(pool / draws) each
            logits = logits + log_share.to(logits)
        return self._loss(logits, labels, valid)

    def _loss(self, rec_logits: torch.Tensor, rec_labels: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        if self.rec_loss_type == "bce":
            return rec_bce_loss(rec_logits, rec_labels, valid)
        return softmax_rec_loss(rec_logits, rec_labels, valid)


def causal_lm_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The summed next-token cross-entropy of (B, T, V) `logits` against `labels` (-100 ignored), and its count."""
    labels = labels[:, 1:].reshape(-1).to(logits.device)
    total = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels, ignore_index=-100,
                            reduction="sum")
    return total, int((labels != -100).sum())


class _LinearCrossEntropy(torch.autograd.Function):
    """
    sum_n CE(h_n W^T, y_n) without keeping the (N, V) logits: each chunk of rows is scored, its loss summed and its
    gradients (softmax - one-hot, times W and h) taken at once, so backward only scales them. Three matmuls per
    chunk, as the plain route; far less memory traffic than logits, log_softmax and their backward.
    """

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk_rows: int, grad_hidden_too: bool, grad_weight_too: bool):
        device_type = hidden.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
        needs_grad = grad_hidden_too or grad_weight_too
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if grad_hidden_too else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if grad_weight_too else None
        with torch.autocast(device_type, enabled=False):
            w = weight.to(dtype)
            for start in range(0, hidden.shape[0], chunk_rows):
                h, y = hidden[start:start + chunk_rows].to(dtype), labels[start:start + chunk_rows]
                logits = (h @ w.T).float()  # (c, V)
                top = logits.amax(dim=-1, keepdim=True)
                picked = logits.gather(1, y[:, None]) - top  # (c, 1)
                probs = logits.sub_(top).exp_()  # in place of the logits: no second (c, V) tensor
                norm = probs.sum(dim=-1, keepdim=True)
                total += (norm.log() - picked).sum()
                if needs_grad:
                    probs.div_(norm)  # the softmax
                    probs[torch.arange(len(y), device=y.device), y] -= 1.0
                    probs = probs.to(dtype)
                    if grad_hidden_too:
                        grad_hidden[start:start + chunk_rows] = (probs @ w).to(hidden.dtype)
                    if grad_weight_too:  # a frozen head (LoRA) skips this matmul
                        grad_weight.addmm_(probs.T.float() if dtype != torch.float32 else probs.T, h.float())
        ctx.grads = (grad_hidden, None if grad_weight is None else grad_weight.to(weight.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.grads
        ctx.grads = None
        scale = [None if g is None else g * grad_total.to(g.dtype) for g in (grad_hidden, grad_weight)]
        return (*scale, None, None, None, None)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         chunk_rows: int | None = None) -> torch.Tensor:
    """
    The summed cross-entropy of the scores `hidden @ weight.T` ((N, d) rows against a (V, d) head, no bias) for
    `labels` (N,), computed `chunk_rows` rows at a time without keeping the (N, V) logits (None: 256 rows on a CPU,
    where small chunks stay in cache and reuse their memory, 8,192 elsewhere). Equal to
    `F.cross_entropy(hidden @ weight.T, labels, reduction="sum")` to float tolerance, gradients included.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy: `hidden` must be (N, d) and `weight` (V, d), got "
                         f"{tuple(hidden.shape)} and {tuple(weight.shape)}.")
    if labels.shape != hidden.shape[:1]:
        raise ValueError(f"linear_cross_entropy: `labels` must be ({hidden.shape[0]},), one per row, got "
                         f"{tuple(labels.shape)}.")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= weight.shape[0]):
        raise ValueError(f"linear_cross_entropy: `labels` must lie in [0, {weight.shape[0]}), got "
                         f"{int(labels.min())} to {int(labels.max())}; drop ignored (-100) positions first.")
    chunk_rows = chunk_rows if chunk_rows is not None else 256 if hidden.device.type == "cpu" else 8192
    if chunk_rows <= 0:
        raise ValueError(f"linear_cross_entropy: chunk_rows must be positive, got {chunk_rows}.")
    grad = torch.is_grad_enabled()
    return _LinearCrossEntropy.apply(hidden, weight, labels.long(), chunk_rows, grad and hidden.requires_grad,
                                     grad and weight.requires_grad)


def softmax_rec_loss(rec_logits: torch.Tensor, rec_labels: torch.Tensor,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over each row of scores with its one positive; a negative label marks a candidate to ignore."""
    if valid is not None:
        rec_logits, rec_labels = rec_logits[valid], rec_labels[valid]  # (N, M)
    rec_logits, ignored = rec_logits.float(), rec_labels < 0
    rec_logits = rec_logits.masked_fill(ignored, float("-inf"))
    positives = rec_labels > 0.5
    if rec_labels.dim() != 2 or not bool((positives.sum(-1) == 1).all()):
        raise ValueError(
            "rec_loss_type='softmax' needs `rec_labels` of shape (B, N) with exactly one positive per row, got "
            f"shape {tuple(rec_labels.shape)} with {positives.sum(-1).tolist()} positives per row. Use "
            "rec_loss_type='bce' for pairwise labels."
        )
    return F.cross_entropy(rec_logits, positives.float().argmax(-1))


def spread_over_catalog(model, item_embeds: torch.Tensor, item_ids: torch.LongTensor, bank: torch.Tensor,
                        rec_labels: torch.Tensor, fresh: bool,
                        excluded: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """
    W_i z for every catalog item from the bank (W_i applied here, so it learns from them; plus the item-id embedding
    of a model that has one), with the batch's fresh
    `item_embeds` over their rows when `fresh`, and the labels spread over the catalog: unlabelled items count as
    negatives, except the `excluded` rows (held-out cold items), which are ignored (label -1).
    """
    item_ids = item_ids.to(item_embeds.device).long()
    if item_ids.dim() != 1 or item_ids.shape[0] != item_embeds.shape[0]:
        raise ValueError(f"item bank: `item_ids` must have shape ({item_embeds.shape[0]},), one catalog row per item "
                         f"row, got {tuple(item_ids.shape)}.")
    if bank.dim() != 2 or bank.shape[1] != model.config.n_embd:
        raise ValueError(f"item bank: the bank must have shape (N, {model.config.n_embd}) (z_i of every catalog "
                         f"item), got {tuple(bank.shape)}.")
    if item_ids.numel() and (int(item_ids.min()) < 0 or int(item_ids.max()) >= bank.shape[0]):
        raise ValueError(f"item bank: `item_ids` must lie in [0, {bank.shape[0]}) (the bank's rows), got "
                         f"{int(item_ids.min())} to {int(item_ids.max())}.")
    if rec_labels.dim() not in (2, 3):
        raise ValueError(f"item bank: `rec_labels` must be (B, M) or (B, P, M) over the M={item_ids.shape[0]} shared "
                         f"item rows, got {tuple(rec_labels.shape)}.")
    catalog = torch.arange(bank.shape[0], device=item_embeds.device)
    hybrid = getattr(model.config, "item_id_embeddings", 0) == bank.shape[0]  # the bank is the model's catalogue
    candidates = model.project_items(bank.to(item_embeds), catalog if hybrid else None)  # (N, p)
    if fresh:
        candidates = candidates.index_copy(0, item_ids, item_embeds)
    spread = rec_labels.new_zeros(*rec_labels.shape[:-1], bank.shape[0])
    if excluded is not None and excluded.numel():
        spread[..., excluded.to(spread.device)] = -1.0  # before the batch's labels: a batch row is never cold
    spread[..., item_ids.to(spread.device)] = rec_labels
    return candidates, spread


def draw_bank_rows(n_catalog: int, item_ids: torch.Tensor, draws: int, excluded: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """
    The catalog rows a bank loss with `draws` sampled negatives scores: the batch's own rows (`item_ids`, every
    positive among them) and `draws` rows drawn uniformly without replacement from the pool of the others (less the
    `excluded` cold rows), with each row's logit offset: 0 for the batch's rows, log(pool / draws) for a drawn one,
    the uniform draw's log-rate correction. (None, None) when there is nothing to draw: `draws` is 0 or the pool
    holds no more than `draws` rows, so the whole catalog is scored.
    """
    device = item_ids.device
    in_batch = torch.zeros(n_catalog, dtype=torch.bool, device=device)
    in_batch[item_ids.long()] = True
    pool = ~in_batch
    if excluded is not None and excluded.numel():
        pool[excluded.to(device)] = False
    pool_rows = pool.nonzero().squeeze(1)
    if not draws or pool_rows.numel() <= draws:
        return None, None
    drawn = pool_rows[torch.randperm(pool_rows.numel(), device=device)[:draws]]
    own = in_batch.nonzero().squeeze(1)
    log_share = torch.cat([torch.zeros(own.numel(), device=device),
                           torch.full((draws,), math.log(pool_rows.numel() / draws), device=device)])
    return torch.cat([own, drawn]), log_share


class LMRecItemBank(TrainerCallback):
    """
    z_i of every catalog item, encoded without gradient in eval mode at the start of a step once
    `refresh_steps` optimizer steps have passed since the last encoding (and at the first step). Each process
    encodes the whole catalog (N x d floats). `LMRecTrainer` adds one when the objective asks for the item bank.
    """

    def __init__(self, tokenizer, item_texts: list[str], refresh_steps: int, item_max_length: int,
                 excluded: list[int] | None = None):
        if refresh_steps <= 0:
            raise ValueError(f"LMRecItemBank: refresh_steps must be positive, got {refresh_steps}.")
        # catalog rows the loss never takes from the bank (held-out cold items); they are encoded all the same
        self.excluded = torch.tensor(sorted(excluded), dtype=torch.long) if excluded else None
        self.tokenizer = tokenizer
        self.item_texts = item_texts
        self.refresh_steps = refresh_steps
        self.item_max_length = item_max_length
        self.bank: torch.Tensor | None = None
        self.encoded_at = 0
        self._batches = None  # the catalog tokenized once, at the first refresh: the texts never change

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if self.bank is not None and step - self.encoded_at < self.refresh_steps:
            return
        if self._batches is None:
            self._batches = tokenized_batches(self.tokenizer, [format_item(t) for t in self.item_texts],
                                              batch_size=256, max_length=self.item_max_length, cut="right")
        model.eval()
        try:
            bank = embed_batches(model, self._batches, projection=None, progress=False)
        finally:
            model.train()
        self.bank, self.encoded_at = bank.to(args.device), step


__all__ = ["ITEM_BANK_LOSSES", "LAMBDA_SCHEDULES", "LOSS_INPUTS", "NEGATIVE_LAYOUTS", "REC_LOSS_TYPES",
           "LMRecItemBank", "RecObjective", "causal_lm_loss_sum", "linear_cross_entropy", "softmax_rec_loss",
           "spread_over_catalog"]
