"""LMRecTrainer: one LM batch and one rec batch per optimizer step, loss L1 + λ_t·L2 from the `RecObjective`."""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch.utils.data import DataLoader, SequentialSampler
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .collators import JointBatchSampler, JointDataset, LMRecCollator
from .data import RecData, eval_pairs, train_pairs
from .losses import LOSS_INPUTS, LMRecItemBank, RecObjective
from .model_card import LMRecModelCardCallback, LMRecModelCardData
from .training_args import LMRecTrainingArguments

logger = logging.getLogger(__name__)


class QualityCurveCallback(TrainerCallback):
    """
    A time-to-quality curve: `evaluate(model, tokenizer)` (a dict of figures) every `every_s` seconds of training and
    once at the end. The evaluations' own time is kept out of the training clock, so `train_s` is what training
    alone had spent when the point was taken. `points` holds {"train_s", "step", **figures} in order. Works with any
    Trainer (LMRecTrainer, or the ID transformer's plain one).

    With `keep_best` (the name of a figure, higher is better, e.g. "valid_recall@10") the callback keeps a copy of
    the weights at the best point so far and puts them back at the end of training, so what is saved and scored
    afterwards is the checkpoint picked by that figure; `best_point` is that point (`None` without `keep_best`).
    Pick by a validation figure, never by a test one.

    When the trainer keeps an average of the weights (`LMRecWeightAverage`, `ema_decay`), `average` is set and every
    point scores the average, which is also what `keep_best` keeps.

    Example:
    ```python
    >>> curve = QualityCurveCallback(lambda model, tokenizer: {"valid_recall@10": score(model)}, every_s=600,
    ...                              keep_best="valid_recall@10")
    >>> trainer.add_callback(curve); trainer.train(); curve.points[-1]["train_s"], curve.best_point["step"]
    ```
    """

    def __init__(self, evaluate, every_s: float, keep_best: str | None = None):
        if not every_s > 0:
            raise ValueError(f"QualityCurveCallback: every_s must be a positive number of seconds, got {every_s!r}.")
        self.evaluate = evaluate
        self.every_s = float(every_s)
        self.keep_best = keep_best
        self.average: LMRecWeightAverage | None = None  # set by LMRecTrainer when it averages the weights
        self.points: list[dict] = []
        self.best_point: dict | None = None
        self._best_state: dict | None = None
        self._start = self._paused = self._next = 0.0

    def train_seconds(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def on_train_begin(self, args, state, control, **kwargs):
        self._start, self._paused, self._next, self.points = time.perf_counter(), 0.0, self.every_s, []
        self.best_point = self._best_state = None

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        train_s = self.train_seconds()
        if train_s >= self._next:
            self._take(state, model, processing_class)
            # the next multiple of every_s past train_s (a loop of += every_s would spin for a tiny every_s)
            self._next += self.every_s * (math.floor((train_s - self._next) / self.every_s) + 1)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not self.points or self.points[-1]["step"] != state.global_step:
            self._take(state, model, processing_class)
        if self._best_state is not None and self.best_point is not self.points[-1]:
            model.load_state_dict(self._best_state)
            logger.info(f"QualityCurveCallback: put back the weights of step {self.best_point['step']}, the best "
                        f"{self.keep_best} ({self.best_point[self.keep_best]}); the last point scored "
                        f"{self.points[-1][self.keep_best]}.")
        self._best_state = None

    def _take(self, state, model, tokenizer) -> None:
        train_s = self.train_seconds()
        start, training = time.perf_counter(), model.training
        weights = self.average.applied(model) if self.average is not None else nullcontext()
        try:
            with torch.no_grad(), weights:
                figures = self.evaluate(model, tokenizer)
                point = {"train_s": round(train_s, 2), "step": state.global_step, **figures}
                if self.keep_best is not None:
                    if self.keep_best not in figures:
                        raise ValueError(f"QualityCurveCallback: keep_best={self.keep_best!r} is not among the figures "
                                         f"that `evaluate` returned ({sorted(figures)}). Name one of those, or pass "
                                         "keep_best=None.")
                    if self.best_point is None or figures[self.keep_best] > self.best_point[self.keep_best]:
                        self.best_point = point
                        self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        finally:
            model.train(training)
            self._paused += time.perf_counter() - start
        point["eval_s"] = round(time.perf_counter() - start, 1)
        self.points.append(point)


class LMRecWeightAverage(TrainerCallback):
    """
    An exponential moving average of the model's weights (`LMRecTrainingArguments.ema_decay`, an option beyond the
    paper). After each optimizer step every parameter's average moves toward it: avg += (1 - d_n)·(w - avg), with
    d_n = min(decay, (1 + n) / (10 + n)) at the n-th update, so the first updates are not tied to the initial
    weights. Training itself never reads the average, nor does the trainer's own `eval_loss` (early stopping
    watches the step's weights): `applied(model)` swaps it in (for an evaluation) and the
    step's weights back out, exactly; at the end of training it stays in the model, so what is saved and scored is
    the average. `LMRecTrainer` adds one when `ema_decay` > 0, ahead of the other callbacks, and its
    `QualityCurveCallback`s evaluate the average.

    A checkpoint saved during training holds the step's weights as usual, and the average beside them
    (`weight_average.pt`), which `LMRecTrainer` reads back on a resume.

    Example:
    ```python
    >>> average = LMRecWeightAverage(0.995)   # or LMRecTrainingArguments(..., ema_decay=0.995) with LMRecTrainer
    >>> trainer.add_callback(average); trainer.train()   # the model now holds the average
    ```
    """

    FILE = "weight_average.pt"

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"LMRecWeightAverage: decay must be in (0, 1), e.g. 0.995, got {decay!r}.")
        self.decay = float(decay)
        self.updates = 0
        self.shadow: list[torch.Tensor] | None = None
        self.in_model = False  # True once the average has been left in the model at the end of training
        self._resumed: dict | None = None

    @staticmethod
    def _parameters(model) -> list[torch.Tensor]:
        return [p for p in model.parameters() if p.is_floating_point()]  # tied weights once (parameters() dedups)

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1 + updates) / (10 + updates))

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the average (on the CPU), for `load_state_dict` on a resume."""
        return {"decay": self.decay, "updates": self.updates, "shadow": [t.cpu() for t in self.shadow or []]}

    def load_state_dict(self, state: dict) -> None:
        """Restores a checkpoint's average; it is checked against the model when training begins."""
        self._resumed = state

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        parameters = self._parameters(model)
        self.in_model = False
        if self._resumed is not None:
            shadow = self._resumed["shadow"]
            shapes = [tuple(p.shape) for p in parameters]
            if [tuple(t.shape) for t in shadow] != shapes:
                raise ValueError(f"LMRecWeightAverage: the checkpoint's {self.FILE} holds {len(shadow)} tensors whose "
                                 f"shapes do not match the model's {len(shapes)} parameters. Resume with the model "
                                 f"the checkpoint was trained with, or delete {self.FILE} to restart the average "
                                 "from the checkpoint's weights.")
            self.shadow = [t.to(p.device, p.dtype) for t, p in zip(shadow, parameters)]
            self.updates, self._resumed = int(self._resumed["updates"]), None
        else:
            self.shadow = [p.detach().clone() for p in parameters]
            self.updates = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            weight = 1.0 - self.decay_at(self.updates)
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self._parameters(model)], weight)
        self.updates += 1

    def on_save(self, args, state, control, **kwargs):
        if args.should_save and self.shadow is not None:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                torch.save(self.state_dict(), folder / self.FILE)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.shadow is not None and not self.in_model:
            with torch.no_grad():
                torch._foreach_copy_(self._parameters(model), self.shadow)
            self.in_model = True

    @contextmanager
    def applied(self, model):
        """The average in the model for the block's duration, the step's weights put back after it."""
        if self.shadow is None or self.in_model:
            yield model
            return
        parameters = self._parameters(model)
        with torch.no_grad():
            current = [p.detach().clone() for p in parameters]
            torch._foreach_copy_(parameters, self.shadow)
        try:
            yield model
        finally:
            with torch.no_grad():
                torch._foreach_copy_(parameters, current)


class LMRecTrainer(Trainer):
    """
    Trains [`LMRecForJointModeling`] on a rec-pair dataset and an LM text dataset at once.

    `train_dataset` is a [`JointDataset`] (rec pairs + LM texts); each step takes `rec_batch_size` pairs and
    `lm_batch_size` texts, passed to the model in one forward (DDP needs one forward per step). The loss is the
    `objective`'s (`lmrec_hf.losses`), computed from that forward's output. `eval_dataset` holds rec pairs only, so
    `eval_loss` is the rec validation loss that early stopping watches. lm_loss, rec_loss and λ are logged
    separately; so are `lm_loss/<source>` (L1 of the LM batch's rows of each source, token-weighted over the logging
    window, when the LM texts carry a `source` column) and `num_input_tokens_seen` (the non-padding tokens of the
    LM, user-history and item inputs, over all processes, kept in the trainer state across a resume). When the
    objective asks for the item bank, the trainer adds an `LMRecItemBank` callback over the collator's catalog
    (`trainer.item_bank`). `trainer.card_data` collects what the model card says about the run.

    Example:
    ```python
    >>> trainer = LMRecTrainer.from_data(model, args, tokenizer, data, RecObjective(), lm_texts=lm_texts(data))
    >>> trainer.train()
    ```
    """

    def __init__(self, *args, objective: RecObjective | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        objective = objective if objective is not None else RecObjective()
        objective.check_batches(self.args.mode, self.args.lm_batch_size)
        self.objective = objective = objective.for_mode(self.args.mode)
        self._record_in_checkpoint()
        self._initial_rec_loss_weight = self.model.config.rec_loss_weight
        self._item_id_embeddings = bool(getattr(self.model.config, "item_id_embeddings", 0))
        self.item_bank: LMRecItemBank | None = None
        collator = self.data_collator
        if objective.item_bank_refresh_steps and self.args.mode != "lm_only" and isinstance(collator, LMRecCollator):
            self.item_bank = LMRecItemBank(collator.tokenizer, collator.item_texts, objective.item_bank_refresh_steps,
                                           collator.item_max_length, excluded=collator.cold_items)
            self.add_callback(self.item_bank)
        self._component_sums: dict[str, float] = {}
        self._component_count = 0
        dataset = self.train_dataset
        self._lm_source_names = dataset.lm_source_names if isinstance(dataset, JointDataset) else []
        self._source_sums: dict[str, list[float]] = {}  # source -> [summed token loss, tokens]
        self.card_data = LMRecModelCardData()
        self.card_data.record_objective(objective, rec_loss_weight=self._initial_rec_loss_weight)
        self.add_callback(LMRecModelCardCallback(self.card_data))
        self.weight_average: LMRecWeightAverage | None = None
        if self.args.ema_decay:
            self.weight_average = LMRecWeightAverage(self.args.ema_decay)
            # first, so the average has taken a step before any other callback evaluates it, and is in the model
            # before a QualityCurveCallback takes its last point and puts back its best
            self.callback_handler.callbacks.insert(0, self.weight_average)
            self.card_data.training["ema_decay"] = self.args.ema_decay

    def train(self, *args, **kwargs):
        if self.weight_average is not None:  # curves passed to the constructor or added since score the average
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, QualityCurveCallback):
                    callback.average = self.weight_average
        return super().train(*args, **kwargs)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.weight_average is None:
            return
        path = Path(checkpoint) / LMRecWeightAverage.FILE
        if path.is_file():
            self.weight_average.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            logger.warning(f"{checkpoint} has no {LMRecWeightAverage.FILE} (it was saved without ema_decay): the "
                           "weight average restarts from the checkpoint's weights.")

    def _record_in_checkpoint(self) -> None:
        """The one place training writes into the model config: what evaluation of the checkpoint must know (the
        item length) and the λ it was trained with."""
        config = self.model.config
        if self.args.item_max_length is not None:
            config.item_max_length = self.args.item_max_length
        if self.objective.rec_loss_weight is not None:
            config.rec_loss_weight = self.objective.rec_loss_weight

    @classmethod
    def from_data(cls, model, args: LMRecTrainingArguments, tokenizer, data: RecData,
                  objective: RecObjective | None = None, lm_texts: Dataset | None = None,
                  rec_pairs: Dataset | None = None, eval_split: str | None = "valid", callbacks=None) -> "LMRecTrainer":
        """Builds the datasets, the collator and early stopping from a `RecData`, the arguments and the objective."""
        objective = (objective if objective is not None else RecObjective()).for_mode(args.mode)
        use_rec = args.mode != "lm_only"
        use_lm = args.mode != "rec_only" and args.lm_batch_size > 0
        if use_lm and lm_texts is None:
            raise ValueError(f"mode={args.mode!r} trains the LM loss, so it needs `lm_texts`.")
        item_max_length = args.item_max_length or getattr(model.config, "item_max_length", None)
        collator = LMRecCollator(tokenizer, data, objective, max_length=args.max_length,
                                 max_history_items=args.max_history_items, seed=args.seed,
                                 item_max_length=item_max_length,
                                 item_ids=bool(getattr(model.config, "item_id_embeddings", 0)))
        if use_rec and rec_pairs is None:
            rec_pairs = train_pairs(data, stride=args.max_history_items if objective.prefix_pairs else None)
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
                   data_collator=collator, processing_class=tokenizer, callbacks=callbacks, objective=objective)

    # -- data -----------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        dataset: JointDataset = self.train_dataset
        n_rec = len(dataset.rec_pairs) if dataset.rec_pairs is not None else 0
        n_lm = len(dataset.lm_texts) if dataset.lm_texts is not None else 0
        lengths = None
        if self.args.train_sampling_strategy == "group_by_length" and n_rec:
            lengths = self.data_collator.history_lengths(*dataset.rec_keys)
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
        return self.objective.rec_loss_weight_at(self.state.global_step, self.state.max_steps,
                                                 self._initial_rec_loss_weight)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        rec_loss_weight = self.current_rec_loss_weight()
        targets = {name: inputs[name] for name in LOSS_INPUTS if name in inputs}
        sources = inputs.get("lm_sources")
        model_inputs = {k: v for k, v in inputs.items() if k not in targets and k != "lm_sources"}
        if "item_ids" in inputs and self._item_id_embeddings:  # the hybrid model reads them too
            model_inputs["item_ids"] = inputs["item_ids"]
        outputs = model(**model_inputs)
        targets["user_positions"] = inputs.get("user_positions")
        # the bank serves the training loss; the validation loss stays over the batch's items
        bank = self.item_bank.bank if self.item_bank is not None and model.training else None
        excluded = self.item_bank.excluded if bank is not None else None
        loss, parts = self.objective.loss(self.accelerator.unwrap_model(model), outputs, targets, rec_loss_weight,
                                          item_bank=bank, item_bank_excluded=excluded)
        if model.training:
            for name, value in parts.items():
                if value is not None:
                    self._component_sums[name] = self._component_sums.get(name, 0.0) + value.detach().item()
            self._component_sums["rec_loss_weight"] = self._component_sums.get("rec_loss_weight", 0.0) + rec_loss_weight
            self._component_count += 1
            if sources is not None and targets.get("labels") is not None:
                self._add_source_losses(outputs.logits.detach(), targets["labels"], sources)
        if not return_outputs:
            return loss
        outputs["loss"] = loss  # the objective's, not the model's own paper-only loss
        for name, value in parts.items():
            if value is not None:
                outputs[name] = value
        return loss, outputs

    def _add_source_losses(self, logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor) -> None:
        """Adds each source's summed next-token loss and token count in this LM batch to the logging window."""
        with torch.no_grad():
            labels = labels[:, 1:].to(logits.device)
            per_token = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels, ignore_index=-100,
                                        reduction="none")  # (B, T-1), 0 where ignored
            sources = sources.to(logits.device)
            for index in sources.unique().tolist():
                rows = sources == index
                totals = self._source_sums.setdefault(self._lm_source_names[index], [0.0, 0])
                totals[0] += per_token[rows].sum().item()
                totals[1] += int((labels[rows] != -100).sum())

    def _track_num_input_tokens(self, inputs):
        """
        Counts the step's non-padding tokens over LMRec's three inputs (LM rows, user histories, items), whatever
        `include_num_input_tokens_seen` says: transformers' own count reads `input_ids` alone, the LM rows.
        """
        tokens = sum(int(inputs[mask].sum()) for mask in ("attention_mask", "user_attention_mask",
                                                         "item_attention_mask") if inputs.get(mask) is not None)
        tokens = torch.as_tensor(tokens, device=self.args.device, dtype=torch.int64)
        self.state.num_input_tokens_seen += self.accelerator.gather(tokens).sum().item()

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._component_count and "loss" in logs:
            for name, total in self._component_sums.items():
                logs[name] = round(total / self._component_count, 6)
            self._component_sums, self._component_count = {}, 0
            for name, (total, tokens) in self._source_sums.items():
                logs[f"lm_loss/{name}"] = round(total / max(tokens, 1), 6)
            self._source_sums = {}
            logs["num_input_tokens_seen"] = self.state.num_input_tokens_seen
        super().log(logs, start_time)
