"""LMRecTrainingArguments: TrainingArguments with the paper's recipe as defaults and the joint-training knobs."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .checks import check_choice

MODES = ("joint", "rec_only", "lm_only")

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
    cosine decay to 10% of the peak (`cosine_with_min_lr`), gradient-norm clip 0.1; plus the LMRec batches below.
    How L2 is trained (its loss, negatives, λ and the CPU-budget options) is the `RecObjective`'s
    (`lmrec_hf.losses`), not these arguments'.

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
    ema_decay: float = field(
        default=0.0,
        metadata={"help": "Option, not in the paper: keep an exponential moving average of the weights with this "
                          "decay (0.995 averages over about the last 200 steps; the decay ramps up as "
                          "(1 + n) / (10 + n) over the first updates), evaluate it during training and leave it in the "
                          "model at the end, so it is what is saved and scored. Checkpoints hold the average too "
                          "(weight_average.pt), for a resume. 0 turns it off."},
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
        check_choice("mode", self.mode, MODES, owner="LMRecTrainingArguments")
        for name in ("rec_batch_size", "max_length", "max_history_items"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LMRecTrainingArguments: `{name}` must be positive, got {getattr(self, name)}.")
        if self.item_max_length is not None and self.item_max_length < 2:
            raise ValueError("LMRecTrainingArguments: `item_max_length` must be None or at least 2 (a token and the "
                             f"EOS), got {self.item_max_length}.")
        if self.lm_batch_size < 0 or (self.lm_batch_size == 0 and self.mode == "lm_only"):
            raise ValueError(f"LMRecTrainingArguments: `lm_batch_size` must be positive in mode={self.mode!r}, "
                             f"got {self.lm_batch_size}.")
        if self.early_stopping_patience_steps < 0:
            raise ValueError("LMRecTrainingArguments: `early_stopping_patience_steps` must be >= 0, got "
                             f"{self.early_stopping_patience_steps}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"LMRecTrainingArguments: `ema_decay` must be in [0, 1) (0 is off; 0.995 averages over "
                             f"about the last 200 steps), got {self.ema_decay}.")
        if self.ema_decay and self.load_best_model_at_end:
            raise ValueError("LMRecTrainingArguments: `ema_decay` and `load_best_model_at_end` each decide which "
                             "weights the model ends with (the average, or the best checkpoint's last-step weights). "
                             "Set ema_decay=0 or load_best_model_at_end=False.")
        # Trainer sizes its logs and eval loaders from these.
        self.per_device_train_batch_size = self.rec_batch_size if self.mode != "lm_only" else self.lm_batch_size
        super().__post_init__()
