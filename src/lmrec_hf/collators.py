"""Batches for joint training: an LM batch and a rec batch per optimizer step, with seeded negative sampling."""

from __future__ import annotations

import math

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import Sampler

from .data import RecData, cold_items, history_window, split_sequences
from .formatting_lmrec import ITEM_SEPARATOR, clean_item_text, format_history, format_item, tokenize_items
from .losses import RecObjective

# Where the arrow sits inside the separator: a prefix feature is read at the token that covers it.
_ARROW_OFFSET = ITEM_SEPARATOR.index("→")


def sample_negatives(n_items: int, positive: int, k: int, seed: int, example_index: int,
                     allowed: np.ndarray | None = None) -> np.ndarray:
    """
    K item indices drawn uniformly from the catalog without the positive. The draw depends only on
    (seed, example_index), so a resumed or re-sharded run draws the same negatives for the same example.
    `allowed` (sorted item indices, such as the warm items of a cold-start split) narrows the draw to them.
    """
    if allowed is None:
        if n_items < 2:
            raise ValueError(f"Negative sampling needs at least 2 items in the catalog, got {n_items}.")
        rng = np.random.default_rng([seed, example_index])
        draws = rng.integers(0, n_items - 1, size=k)
        return draws + (draws >= positive)  # skip over the positive
    at = int(np.searchsorted(allowed, positive))
    member = at < len(allowed) and allowed[at] == positive
    if len(allowed) - member < 1:
        raise ValueError(f"Negative sampling needs at least one allowed item besides the positive, got "
                         f"{len(allowed)} allowed item(s); hold fewer items out.")
    rng = np.random.default_rng([seed, example_index])
    draws = rng.integers(0, len(allowed) - member, size=k)
    return allowed[draws + (draws >= at) if member else draws]


class JointDataset(torch.utils.data.Dataset):
    """Index space for the joint batch sampler: keys ("rec", i) address rec pairs, ("lm", j) LM texts. `rec_keys`
    holds the rec pairs' (user rows, positions) as plain lists. When the LM texts carry a `source` column (a
    `ClassLabel`, as a multi-corpus LM stream does), each LM example keeps it and `lm_source_names` names them."""

    def __init__(self, rec_pairs: Dataset | None, lm_texts: Dataset | None):
        self.rec_pairs = rec_pairs
        self.lm_texts = lm_texts
        self.rec_keys = (rec_pairs["user_row"][:], rec_pairs["position"][:]) if rec_pairs is not None else None
        self._lm = lm_texts["text"][:] if lm_texts is not None else None
        has_sources = lm_texts is not None and "source" in lm_texts.column_names
        self._lm_sources = lm_texts["source"][:] if has_sources else None
        self.lm_source_names = list(lm_texts.features["source"].names) if has_sources else []

    def __len__(self):
        return len(self.rec_pairs) if self.rec_pairs is not None else len(self.lm_texts)

    def __getitem__(self, key):
        kind, index = key
        if kind == "rec":
            return {"kind": "rec", "index": index, "user_row": self.rec_keys[0][index],
                    "position": self.rec_keys[1][index]}
        example = {"kind": "lm", "index": index, "text": self._lm[index]}
        if self._lm_sources is not None:
            example["source"] = self._lm_sources[index]
        return example


class JointBatchSampler(Sampler):
    """
    Yields one step's keys at a time: `rec_batch_size` rec pairs and `lm_batch_size` LM texts, each stream in its
    own seeded permutation per epoch. An epoch is one pass over the rec pairs (over the LM texts when there are no
    rec pairs); the LM stream cycles. The schedule depends only on (seed, epoch), so every DDP rank builds the same
    one and a resumed run skips to the same place.

    `rec_lengths` (one number per rec pair, e.g. its history's length) groups rec pairs of similar length into the
    same batch, as transformers' `group_by_length` does: the epoch's permutation is cut into groups of
    `group_batches` batches, each group sorted by length and cut into batches, and the batch order is shuffled.
    Rec batches then carry less padding. Every pair is still used once per epoch.
    """

    def __init__(self, n_rec: int, n_lm: int, rec_batch_size: int, lm_batch_size: int, seed: int = 42,
                 rec_lengths=None, group_batches: int = 50):
        if n_rec == 0 and n_lm == 0:
            raise ValueError("JointBatchSampler: both the rec pairs and the LM texts are empty; nothing to train on.")
        if (n_rec > 0 and rec_batch_size <= 0) or (n_lm > 0 and lm_batch_size <= 0):
            raise ValueError(
                f"JointBatchSampler: batch sizes must be positive for the streams in use, got rec_batch_size="
                f"{rec_batch_size} for {n_rec} rec pairs and lm_batch_size={lm_batch_size} for {n_lm} LM texts."
            )
        self.n_rec, self.n_lm = n_rec, n_lm
        self.rec_batch_size = rec_batch_size if n_rec else 0
        self.lm_batch_size = lm_batch_size if n_lm else 0
        self.batch_size = self.rec_batch_size + self.lm_batch_size  # read by accelerate's batch-sampler sharding
        if rec_lengths is not None and len(rec_lengths) != n_rec:
            raise ValueError(f"JointBatchSampler: rec_lengths needs one length per rec pair ({n_rec}), got "
                             f"{len(rec_lengths)}.")
        self.rec_lengths = None if rec_lengths is None else np.asarray(rec_lengths)
        self.group_batches = group_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.n_rec:
            return math.ceil(self.n_rec / self.rec_batch_size)
        return math.ceil(self.n_lm / self.lm_batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        rec_order = rng.permutation(self.n_rec) if self.n_rec else None
        lm_order = rng.permutation(self.n_lm) if self.n_lm else None
        if self.n_rec:
            rec_batches = (self._grouped(rec_order, rng) if self.rec_lengths is not None else
                           [rec_order[i:i + self.rec_batch_size] for i in range(0, self.n_rec, self.rec_batch_size)])
        for step in range(len(self)):
            keys = []
            if self.n_rec:
                chunk = rec_batches[step]
                keys += [("rec", int(i)) for i in chunk]
            if self.n_lm:
                start = step * self.lm_batch_size
                chunk = [lm_order[(start + j) % self.n_lm] for j in range(self.lm_batch_size)]
                keys += [("lm", int(i)) for i in chunk]
            yield keys

    def _grouped(self, order: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        size = self.rec_batch_size * self.group_batches
        batches = []
        for start in range(0, len(order), size):
            group = order[start:start + size]
            group = group[np.argsort(-self.rec_lengths[group], kind="stable")]
            batches += [group[i:i + self.rec_batch_size] for i in range(0, len(group), self.rec_batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]


def arrow_tokens(pieces: list[str], spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Where prefix training reads the feature after each item of a history: for clean item texts `pieces` (formatted
    with `format_history`) and the character spans of its real tokens without the EOS (`offset_mapping`, possibly
    left-truncated), the token that last covers the arrow after item k, for k = 0 .. n-2, and which of those arrows
    survived truncation.
    """
    # character index of the arrow after item k in the formatted text
    ends = np.cumsum([len(p) for p in pieces]) + len(ITEM_SEPARATOR) * np.arange(len(pieces))
    arrow_chars = ends[:-1] + _ARROW_OFFSET
    token = np.searchsorted(spans[:, 1], arrow_chars, side="right")  # first token ending after the arrow
    inside = (token < len(spans)) & (spans[np.minimum(token, len(spans) - 1), 0] <= arrow_chars)
    # a multi-token arrow: read the last token that still covers it
    token = np.array([t + _covering_run(spans, t, c) for t, c in zip(token, arrow_chars)], dtype=int)
    return token, inside


def _covering_run(spans: np.ndarray, token: int, char: int) -> int:
    """How many tokens after `token` still start at or before `char` (a character split over byte tokens)."""
    extra = 0
    while token + extra + 1 < len(spans) and spans[token + extra + 1, 0] <= char < spans[token + extra + 1, 1]:
        extra += 1
    return extra


class LMRecCollator:
    """
    Turns keys from `JointDataset` into model inputs, and the targets the objective reads. LM rows become
    `input_ids`, `attention_mask`, `labels` (and `lm_sources`, each row's source index, when the examples carry one:
    the trainer logs L1 per source from it, the model never sees it); rec pairs become the user's history (items
    before the target, at most `max_history_items`), the target and `objective.num_negatives` sampled negatives.

    What the rec batch looks like is the `RecObjective`'s to say:
    - `negative_layout="per_user"` is the paper's: each user scored against its target and its own K negatives
      (`rec_labels` of shape (B, 1+K)). `"shared"` encodes each distinct item of the batch once (targets and all
      users' negatives) and scores every user against all of them (`rec_labels` of shape (B, M)), so the other
      users' targets serve as extra negatives.
    - `prefix_pairs` reads a user feature at every item boundary of the history as well as at the EOS
      (`user_positions`): the separator after item k predicts item k+1 and the EOS predicts the target, all scored
      against the batch's distinct target items (plus K shared uniform negatives per user). The user's own items
      are not used as its negatives (label -1, ignored by the loss).
    - `lm_on_rec_histories` adds LM labels for the user histories (`user_labels`), so one forward serves L1 and L2.
    - `logq_correction` adds `item_log_q`, each item row's log expected draws.
    - `item_bank_refresh_steps > 0` adds `item_ids`, the catalog row of each item row (shared layouts only);
      `item_ids=True` adds them whatever the layout, for a model with item-id embeddings.
    Evaluation examples (kind "rec_eval") always use the EOS feature and the objective's negative layout alone.
    Item texts are cut to `item_max_length` tokens from the right (title kept, see `tokenize_items`); `None` means
    `max_length`. Histories are cut to `max_length` from the left.
    """

    def __init__(
        self,
        tokenizer,
        data: RecData,
        objective: RecObjective | None = None,
        max_length: int = 256,
        max_history_items: int = 50,
        seed: int = 42,
        item_max_length: int | None = None,
        item_ids: bool = False,
    ):
        self.objective = objective = objective if objective is not None else RecObjective()
        self.with_item_ids = item_ids
        self.tokenizer = tokenizer
        self.sequences = data.sequences
        self.item_texts = data.item_texts
        self.n_items = len(self.item_texts)
        # Held-out cold items (`hold_out_cold_items`) are never drawn as negatives, nor used from the item bank.
        self.cold_items = sorted(cold_items(data))
        self.warm_items = np.setdiff1d(np.arange(self.n_items), self.cold_items) if self.cold_items else None
        self.n_negative_pool = self.n_items if self.warm_items is None else len(self.warm_items)
        self.max_length = max_length
        self.item_max_length = item_max_length or max_length
        self.max_history_items = max_history_items
        self.seed = seed
        if objective.logq_correction:
            # How often each item is a training target (never counting valid or test items): in-batch
            # candidates are drawn in that proportion.
            counts = np.zeros(self.n_items)
            for _, seq in split_sequences(data, "train"):
                np.add.at(counts, seq[1:], 1)
            self.target_share = counts / counts.sum()

    def _encode(self, texts: list[str]) -> dict:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")

    def _encode_items(self, item_rows: list[int]) -> dict:
        return tokenize_items(self.tokenizer, [format_item(self.item_texts[i]) for i in item_rows],
                              self.item_max_length)

    def history_text(self, user_row: int, position: int) -> str:
        items = self.sequences[user_row][history_window(position, self.max_history_items)]
        return format_history([self.item_texts[i] for i in items])

    def history_lengths(self, user_rows, positions) -> list[int]:
        """Each rec pair's history length in characters, a proxy for its tokens (`group_by_length` sorts by it)."""
        return [len(self.history_text(r, p)) for r, p in zip(user_rows, positions)]

    def __call__(self, examples: list[dict]) -> dict:
        batch = {}
        lm = [e["text"] for e in examples if e["kind"] == "lm"]
        rec = [e for e in examples if e["kind"] == "rec"]
        rec_eval = [e for e in examples if e["kind"] == "rec_eval"]
        if lm:
            enc = self._encode(lm)
            batch["input_ids"] = enc["input_ids"]
            batch["attention_mask"] = enc["attention_mask"]
            batch["labels"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
            if all("source" in e for e in examples if e["kind"] == "lm"):
                batch["lm_sources"] = torch.tensor([e["source"] for e in examples if e["kind"] == "lm"])
        if rec:
            batch.update(self.prefix_rec_batch(rec) if self.objective.prefix_pairs else self.rec_batch(rec))
            if self.objective.lm_on_rec_histories:
                batch["user_labels"] = batch["user_input_ids"].masked_fill(batch["user_attention_mask"] == 0, -100)
        if rec_eval:
            batch.update(self.rec_batch(rec_eval))
        return batch

    def prefix_rec_batch(self, examples: list[dict]) -> dict:
        texts, all_pieces, targets = [], [], []
        for e in examples:
            seq = self.sequences[e["user_row"]]
            history = seq[history_window(e["position"], self.max_history_items)]
            pieces = [clean_item_text(self.item_texts[i]) for i in history]
            texts.append(format_history(pieces))
            all_pieces.append(pieces)
            targets.append(history[1:] + [seq[e["position"]]])
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                             return_offsets_mapping=True, return_tensors="np")
        rows_positions, rows_targets = [], []
        for row, (pieces, row_targets) in enumerate(zip(all_pieces, targets)):
            n_real = int(enc["attention_mask"][row].sum())
            spans = enc["offset_mapping"][row][: n_real - 1]  # real tokens without the EOS
            token, inside = arrow_tokens(pieces, spans)
            positions = token[inside].tolist() + [n_real - 1]  # every kept boundary, then the EOS
            kept_targets = [t for t, keep in zip(row_targets[:-1], inside) if keep] + [row_targets[-1]]
            rows_positions.append(positions)
            rows_targets.append(kept_targets)
        extra = [i for e, t in zip(examples, targets) for i in
                 sample_negatives(self.n_items, t[-1], self.objective.num_negatives, self.seed, e["index"],
                                  self.warm_items).tolist()]
        item_rows = list(dict.fromkeys([t for ts in rows_targets for t in ts] + extra))
        column = {item: c for c, item in enumerate(item_rows)}
        width = max(len(p) for p in rows_positions)
        positions = torch.full((len(examples), width), -1, dtype=torch.long)
        labels = torch.zeros(len(examples), width, len(item_rows))
        for row, (pos, tgt) in enumerate(zip(rows_positions, rows_targets)):
            positions[row, : len(pos)] = torch.tensor(pos)
            # The user's own items are no negatives for any of its prefixes (a basket's other items would be
            # false negatives): -1 marks them ignored, then each prefix gets its one positive.
            labels[row, :, torch.tensor([column[t] for t in set(tgt)])] = -1.0
            labels[row, torch.arange(len(tgt)), torch.tensor([column[t] for t in tgt])] = 1.0
        items = self._encode_items(item_rows)
        extras = {}
        if self.objective.logq_correction:
            n_targets = sum(len(t) for t in rows_targets)
            # expected draws of each candidate: as a target of this batch's prefixes, or as a uniform negative
            expected = n_targets * self.target_share[item_rows] + len(extra) / self.n_negative_pool
            extras["item_log_q"] = torch.as_tensor(np.log(expected), dtype=torch.float32)
        if self.objective.item_bank_refresh_steps or self.with_item_ids:
            extras["item_ids"] = torch.tensor(item_rows, dtype=torch.long)
        return {
            **extras,
            "user_input_ids": torch.as_tensor(enc["input_ids"]),
            "user_attention_mask": torch.as_tensor(enc["attention_mask"]),
            "user_positions": positions,
            "item_input_ids": items["input_ids"],
            "item_attention_mask": items["attention_mask"],
            "rec_labels": labels,
        }

    def rec_batch(self, examples: list[dict]) -> dict:
        users = self._encode([self.history_text(e["user_row"], e["position"]) for e in examples])
        targets = [self.sequences[e["user_row"]][e["position"]] for e in examples]
        negatives = [
            sample_negatives(self.n_items, t, self.objective.num_negatives, self.seed, e["index"],
                             self.warm_items).tolist()
            for t, e in zip(targets, examples)
        ]
        if self.objective.negative_layout == "per_user":
            item_rows = [i for t, negs in zip(targets, negatives) for i in [t] + negs]
            labels = torch.zeros(len(examples), 1 + self.objective.num_negatives)
            labels[:, 0] = 1.0
        else:
            item_rows = list(dict.fromkeys(targets + [i for negs in negatives for i in negs]))
            column = {item: c for c, item in enumerate(item_rows)}
            labels = torch.zeros(len(examples), len(item_rows))
            labels[torch.arange(len(examples)), torch.tensor([column[t] for t in targets])] = 1.0
        items = self._encode_items(item_rows)
        # per_user rows are not shared by the batch's users, so the bank cannot use their catalog rows; a model
        # with item-id embeddings reads them all the same
        with_ids = (self.objective.item_bank_refresh_steps and self.objective.negative_layout == "shared"
                    or self.with_item_ids)
        extras = {"item_ids": torch.tensor(item_rows, dtype=torch.long)} if with_ids else {}
        return {
            **extras,
            "user_input_ids": users["input_ids"],
            "user_attention_mask": users["attention_mask"],
            "item_input_ids": items["input_ids"],
            "item_attention_mask": items["attention_mask"],
            "rec_labels": labels,
        }
