"""LMRecTrainer: one LM batch and one rec batch per optimizer step, loss L1 + λ_t·L2."""

from __future__ import annotations

import math

import torch
from datasets import Dataset
from torch.utils.data import DataLoader, SequentialSampler
from transformers import EarlyStoppingCallback, Trainer

from .collators import JointBatchSampler, JointDataset, LMRecCollator
from .data import RecData, eval_pairs, train_pairs
from .evaluation import encode_item_texts
from .model_card import LMRecModelCardCallback, LMRecModelCardData
from .training_args import LMRecTrainingArguments


def rec_loss_weight_at(step: int, max_steps: int, initial: float, schedule: str = "cosine",
                       min_ratio: float = 0.1) -> float:
    """λ_t: a cosine from `initial` at step 0 to `min_ratio * initial` at `max_steps`, like the learning rate."""
    if schedule == "constant" or max_steps <= 0:
        return initial
    progress = min(max(step / max_steps, 0.0), 1.0)
    return initial * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class LMRecTrainer(Trainer):
    """
    Trains [`LMRecForJointModeling`] on a rec-pair dataset and an LM text dataset at once.

    `train_dataset` is a [`JointDataset`] (rec pairs + LM texts); each step takes `rec_batch_size` pairs and
    `lm_batch_size` texts, passed to the model in one forward (DDP needs one forward per step). `eval_dataset`
    holds rec pairs only, so `eval_loss` is the rec validation loss that early stopping watches. lm_loss, rec_loss
    and λ are logged separately. `trainer.card_data` collects what the model card says about the run.

    Example:
    ```python
    >>> trainer = LMRecTrainer.from_data(model, args, tokenizer, data, lm_texts=lm_texts(data))
    >>> trainer.train()
    ```
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        if self.args.rec_loss_type is not None:
            self.model.config.rec_loss_type = self.args.rec_loss_type
        self._initial_rec_loss_weight = (self.args.rec_loss_weight if self.args.rec_loss_weight is not None
                                         else self.model.config.rec_loss_weight)
        self._item_bank: torch.Tensor | None = None  # z_i of every catalog item (item_bank_refresh_steps)
        self._item_bank_step = 0
        self._component_sums: dict[str, float] = {}
        self._component_count = 0
        self.card_data = LMRecModelCardData()
        self.add_callback(LMRecModelCardCallback(self.card_data))

    @classmethod
    def from_data(cls, model, args: LMRecTrainingArguments, tokenizer, data: RecData, lm_texts: Dataset | None = None,
                  rec_pairs: Dataset | None = None, eval_split: str | None = "valid", callbacks=None) -> "LMRecTrainer":
        """Builds the datasets, the collator and early stopping from a `RecData` and the arguments."""
        use_rec = args.mode != "lm_only"
        use_lm = args.mode != "rec_only" and args.lm_batch_size > 0
        if args.item_max_length is not None:  # the checkpoint records it, so evaluation encodes items the same way
            model.config.item_max_length = args.item_max_length
        collator = LMRecCollator(tokenizer, data, max_length=args.max_length, max_history_items=args.max_history_items,
                                 num_negatives=args.num_negatives, negatives=args.negatives, seed=args.seed,
                                 prefix_pairs=args.prefix_pairs, logq_correction=args.logq_correction,
                                 item_max_length=getattr(model.config, "item_max_length", None),
                                 lm_on_users=args.lm_on_rec_histories and args.mode == "joint",
                                 item_ids=args.item_bank_refresh_steps > 0)
        if use_lm and lm_texts is None:
            raise ValueError(f"mode={args.mode!r} trains the LM loss, so it needs `lm_texts`.")
        if use_rec and rec_pairs is None:
            rec_pairs = train_pairs(data, stride=args.max_history_items if args.prefix_pairs else None)
        train_dataset = JointDataset(rec_pairs if use_rec else None, lm_texts if use_lm else None)
        eval_dataset = None
        if eval_split and use_rec and args.eval_strategy != "no":
            pairs = eval_pairs(data, eval_split)
            eval_dataset = [{"kind": "rec_eval", "index": i, "user_row": r, "position": p}
                            for i, (r, p) in enumerate(zip(pairs["user_row"][:], pairs["position"][:]))]
        callbacks = list(callbacks or [])
        if eval_dataset is not None and args.early_stopping_patience_steps and args.eval_steps:
            eval_every = args.eval_steps if args.eval_steps >= 1 else max(1, int(args.eval_steps * args.max_steps))
            patience = max(1, math.ceil(args.early_stopping_patience_steps / eval_every))
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
        return cls(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                   data_collator=collator, processing_class=tokenizer, callbacks=callbacks)

    # -- data -----------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        dataset: JointDataset = self.train_dataset
        n_rec = len(dataset.rec_pairs) if dataset.rec_pairs is not None else 0
        n_lm = len(dataset.lm_texts) if dataset.lm_texts is not None else 0
        lengths = None
        if self.args.train_sampling_strategy == "group_by_length" and n_rec:
            lengths = self.data_collator.history_lengths(*dataset._rec)
        sampler = JointBatchSampler(n_rec, n_lm, self.args.rec_batch_size, self.args.lm_batch_size,
                                    seed=self.args.seed, rec_lengths=lengths)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)

    def _get_eval_sampler(self, eval_dataset):
        # `train_sampling_strategy="group_by_length"` groups the rec training pairs (above). Evaluation order does not
        # change the loss, and transformers' LengthGroupedSampler cannot read lengths from rec-eval examples.
        if self.args.train_sampling_strategy == "group_by_length":
            return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None
        return super()._get_eval_sampler(eval_dataset)

    # -- loss -----------------------------------------------------------------------------------------------------

    def current_rec_loss_weight(self) -> float:
        return rec_loss_weight_at(self.state.global_step, self.state.max_steps, self._initial_rec_loss_weight,
                                  self.args.rec_loss_weight_schedule, self.args.rec_loss_weight_min_ratio)

    def item_bank(self, model) -> torch.Tensor:
        """
        z_i of every catalog item, encoded without gradient in eval mode and kept for `item_bank_refresh_steps`
        optimizer steps. Each process encodes the whole catalog (N x d floats).
        """
        step = self.state.global_step
        if self._item_bank is None or step - self._item_bank_step >= self.args.item_bank_refresh_steps:
            collator: LMRecCollator = self.data_collator
            unwrapped = self.accelerator.unwrap_model(model)
            unwrapped.eval()
            try:
                bank = encode_item_texts(unwrapped, collator.tokenizer, collator.item_texts, projection=None,
                                         max_length=collator.item_max_length, progress=False)
            finally:
                unwrapped.train()
            self._item_bank, self._item_bank_step = bank.to(self.args.device), step
        return self._item_bank

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        rec_loss_weight = self.current_rec_loss_weight()
        item_ids = inputs.pop("rec_item_ids", None)
        if item_ids is not None and model.training and "rec_labels" in inputs:
            # the bank serves the training loss; the validation loss stays over the batch's items, like before
            inputs = dict(inputs, rec_item_ids=item_ids, rec_item_bank=self.item_bank(model),
                          rec_item_bank_loss=self.args.item_bank_loss)
        outputs = model(**inputs, rec_loss_weight=rec_loss_weight)
        if model.training:
            for name in ("lm_loss", "rec_loss"):
                value = outputs.get(name)
                if value is not None:
                    self._component_sums[name] = self._component_sums.get(name, 0.0) + value.detach().item()
            self._component_sums["rec_loss_weight"] = self._component_sums.get("rec_loss_weight", 0.0) + rec_loss_weight
            self._component_count += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._component_count and "loss" in logs:
            for name, total in self._component_sums.items():
                logs[name] = round(total / self._component_count, 6)
            self._component_sums, self._component_count = {}, 0
        super().log(logs, start_time)
