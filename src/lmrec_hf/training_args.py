"""LMRecTrainingArguments: TrainingArguments with the paper's recipe as defaults and the joint-training knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .collators import NEGATIVE_LAYOUTS
from .modeling_lmrec import ITEM_BANK_LOSSES

MODES = ("joint", "rec_only", "lm_only")
LAMBDA_SCHEDULES = ("cosine", "constant")

# Table 9's training columns: rec batch, peak learning rate and weight decay per preset.
PRESET_TRAINING = {
    "1.7m": {"rec_batch_size": 256, "learning_rate": 5e-3, "weight_decay": 1e-2},
    "7m": {"rec_batch_size": 512, "learning_rate": 2e-3, "weight_decay": 1e-2},
    "20m": {"rec_batch_size": 1024, "learning_rate": 1e-3, "weight_decay": 5e-2},
    "64m": {"rec_batch_size": 1024, "learning_rate": 8e-4, "weight_decay": 1e-1},
    "125m": {"rec_batch_size": 1024, "learning_rate": 2e-4, "weight_decay": 1e-1},
    "210m": {"rec_batch_size": 1024, "learning_rate": 2e-4, "weight_decay": 1e-1},
}


@dataclass
class LMRecTrainingArguments(TrainingArguments):
    """
    [`TrainingArguments`] whose defaults are the paper's recipe: AdamW(0.9, 0.98, eps 1e-6), 1% linear warm-up,
    cosine decay to 10% of the peak (`cosine_with_min_lr`), gradient-norm clip 0.1; plus the LMRec knobs below.

    Example:
    ```python
    >>> args = LMRecTrainingArguments("outputs/run", mode="joint", lm_batch_size=16, rec_batch_size=64)
    ```
    """

    mode: str = field(
        default="joint", metadata={"help": "joint (LMRec), rec_only (LMRec-lm) or lm_only (pretraining)."}
    )
    lm_batch_size: int = field(default=32, metadata={"help": "LM rows per device per step."})
    rec_batch_size: int = field(default=64, metadata={"help": "Rec pairs (users) per device per step."})
    num_negatives: int = field(default=4, metadata={"help": "K uniformly sampled negative items per user."})
    negatives: str = field(
        default="per_user",
        metadata={"help": "per_user (the paper: each user vs its target and its own K negatives) or shared "
                          "(every user vs every distinct item of the batch)."},
    )
    rec_loss_type: str | None = field(
        default=None, metadata={"help": "bce (the paper) or softmax; None keeps the model config's value."}
    )
    rec_loss_weight: float | None = field(
        default=None, metadata={"help": "Initial λ; None keeps the model config's rec_loss_weight."}
    )
    rec_loss_weight_schedule: str = field(
        default="cosine", metadata={"help": "cosine (decays like the learning rate) or constant."}
    )
    rec_loss_weight_min_ratio: float = field(
        default=0.1, metadata={"help": "λ at the end of the cosine, as a fraction of the initial λ."}
    )
    prefix_pairs: bool = field(
        default=False,
        metadata={"help": "Option, not the paper's recipe: train a user feature at every item boundary of each "
                          "history (the separator after item k predicts item k+1), against the batch's items."},
    )
    lm_on_rec_histories: bool = field(
        default=False,
        metadata={"help": "Option, not the paper's recipe: compute L1 on the rec batch's histories in the same "
                          "forward that reads the user features. lm_batch_size may then be 0 (no separate stream)."},
    )
    logq_correction: bool = field(
        default=False,
        metadata={"help": "Option for prefix_pairs: subtract each candidate's log sampling probability inside the "
                          "rec loss, so popularity-drawn in-batch negatives do not push popular items down."},
    )
    item_bank_refresh_steps: int = field(
        default=0,
        metadata={"help": "Option, not the paper's recipe: score every user (or prefix) against the whole catalog, "
                          "not only the batch's items. The catalog's item features are encoded without gradient "
                          "every this many steps. 0 turns it off. Needs negatives='shared' or prefix_pairs."},
    )
    item_bank_loss: str = field(
        default="separate",
        metadata={"help": "How the item bank enters L2. separate: the mean of the loss over the batch's fresh items "
                          "and a loss over the bank's rows alone. fresh_over_bank: one loss over the catalog, the "
                          "batch's items fresh and the rest from the bank (no logq_correction); a model can learn to "
                          "tell fresh rows from old ones, as it did on Scientific (docs/results.md)."},
    )
    max_length: int = field(default=256, metadata={"help": "Tokens per history (left-truncated, keeps EOS)."})
    max_history_items: int = field(default=50, metadata={"help": "Most recent items kept before tokenizing."})
    item_max_length: int | None = field(
        default=None,
        metadata={"help": "Option, not in the paper: tokens per item text, cut from the right so the title stays "
                          "(the EOS is kept). Saved in the model config, so evaluation and the catalog use it too. "
                          "None: max_length in training, 128 at evaluation."},
    )
    early_stopping_patience_steps: int = field(
        default=100, metadata={"help": "Stop when the rec validation loss has not improved for this many steps "
                                       "(0 turns early stopping off). Needs eval_strategy='steps'."}
    )

    # The paper's recipe, as defaults of the base class fields.
    adam_beta2: float = field(default=0.98)
    adam_epsilon: float = field(default=1e-6)
    warmup_steps: float = field(default=0.01)
    lr_scheduler_type: str = field(default="cosine_with_min_lr")
    lr_scheduler_kwargs: dict | str | None = field(default_factory=lambda: {"min_lr_rate": 0.1})
    max_grad_norm: float = field(default=0.1)
    remove_unused_columns: bool = field(default=False)
    report_to: None | str | list[str] = field(default="none")
    save_safetensors: bool = field(default=True)

    def __post_init__(self):
        checks = [
            ("mode", self.mode, MODES),
            ("negatives", self.negatives, NEGATIVE_LAYOUTS),
            ("rec_loss_weight_schedule", self.rec_loss_weight_schedule, LAMBDA_SCHEDULES),
        ]
        if self.rec_loss_type is not None:
            checks.append(("rec_loss_type", self.rec_loss_type, ("bce", "softmax")))
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"LMRecTrainingArguments: `{name}` must be one of {allowed}, got {value!r}.")
        for name in ("rec_batch_size", "max_length", "max_history_items"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LMRecTrainingArguments: `{name}` must be positive, got {getattr(self, name)}.")
        if self.item_max_length is not None and self.item_max_length < 2:
            raise ValueError("LMRecTrainingArguments: `item_max_length` must be None or at least 2 (a token and the "
                             f"EOS), got {self.item_max_length}.")
        if self.lm_batch_size < 0 or (self.lm_batch_size == 0 and self.mode == "lm_only"):
            raise ValueError(f"LMRecTrainingArguments: `lm_batch_size` must be positive in mode={self.mode!r}, "
                             f"got {self.lm_batch_size}.")
        if self.mode == "joint" and self.lm_batch_size == 0 and not self.lm_on_rec_histories:
            raise ValueError("LMRecTrainingArguments: mode='joint' with lm_batch_size=0 has no LM loss; set "
                             "lm_batch_size > 0 or lm_on_rec_histories=True.")
        if self.num_negatives < 0 or self.early_stopping_patience_steps < 0:
            raise ValueError("LMRecTrainingArguments: `num_negatives` and `early_stopping_patience_steps` must be "
                             f">= 0, got {self.num_negatives} and {self.early_stopping_patience_steps}.")
        if self.item_bank_refresh_steps < 0:
            raise ValueError("LMRecTrainingArguments: `item_bank_refresh_steps` must be >= 0 (0 turns the item bank "
                             f"off), got {self.item_bank_refresh_steps}.")
        if self.item_bank_loss not in ITEM_BANK_LOSSES:
            raise ValueError(f"LMRecTrainingArguments: `item_bank_loss` must be one of {ITEM_BANK_LOSSES}, got "
                             f"{self.item_bank_loss!r}.")
        if self.item_bank_refresh_steps and self.logq_correction and self.item_bank_loss == "fresh_over_bank":
            raise ValueError("LMRecTrainingArguments: item_bank_loss='fresh_over_bank' scores the whole catalog, so no "
                             "candidate is sampled and `logq_correction` has nothing to correct; set "
                             "logq_correction=False, or item_bank_loss='separate'.")
        if self.item_bank_refresh_steps and self.negatives == "per_user" and not self.prefix_pairs:
            raise ValueError("LMRecTrainingArguments: `item_bank_refresh_steps` needs negatives='shared' or "
                             "prefix_pairs=True (items shared by the batch's users), got negatives='per_user'.")
        if self.rec_loss_weight is not None and self.rec_loss_weight < 0:
            raise ValueError(f"LMRecTrainingArguments: `rec_loss_weight` (λ) must be >= 0, got {self.rec_loss_weight}.")
        if not 0 <= self.rec_loss_weight_min_ratio <= 1:
            raise ValueError("LMRecTrainingArguments: `rec_loss_weight_min_ratio` must be in [0, 1], got "
                             f"{self.rec_loss_weight_min_ratio}.")
        # Trainer sizes its logs and eval loaders from these.
        self.per_device_train_batch_size = self.rec_batch_size if self.mode != "lm_only" else self.lm_batch_size
        super().__post_init__()
