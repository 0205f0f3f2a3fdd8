"""LMRecTrainingArguments: the paper's recipe as defaults, and the batches checked when made."""

import pytest

from lmrec_hf.losses import RecObjective
from lmrec_hf.training_args import PRESET_TRAINING, LMRecTrainingArguments


def _args(tmp_path, **overrides):
    defaults = dict(output_dir=str(tmp_path / "out"), max_steps=2, lm_batch_size=2, rec_batch_size=2, max_length=64,
                    use_cpu=True, report_to="none")
    defaults.update(overrides)
    return LMRecTrainingArguments(**defaults)


def test_paper_recipe_defaults(tmp_path):
    args = _args(tmp_path)
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon) == (0.9, 0.98, 1e-6)
    assert args.warmup_steps == 0.01 and args.max_grad_norm == 0.1
    assert args.lr_scheduler_type == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    assert args.mode == "joint" and args.early_stopping_patience_steps == 100
    objective = RecObjective()
    assert (objective.rec_loss_type, objective.negative_layout, objective.rec_loss_weight_schedule) == (
        "bce", "per_user", "cosine")


@pytest.mark.parametrize("field,value,message", [
    ("mode", "both", r"`mode` must be one of \('joint', 'rec_only', 'lm_only'\), got 'both'"),
    ("rec_batch_size", 0, r"`rec_batch_size` must be positive, got 0"),
    ("item_max_length", 1, r"`item_max_length` must be None or at least 2 \(a token and the EOS\), got 1"),
    ("early_stopping_patience_steps", -1, r"`early_stopping_patience_steps` must be >= 0, got -1"),
    ("lm_batch_size", 0, r"`lm_batch_size` must be positive in mode='lm_only'", ),
])
def test_bad_arguments(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        _args(tmp_path, **{field: value, **({"mode": "lm_only"} if field == "lm_batch_size" else {})})


def test_trainer_sizes_its_loaders_from_the_stream_in_use(tmp_path):
    assert _args(tmp_path, rec_batch_size=8).per_device_train_batch_size == 8
    assert _args(tmp_path, mode="lm_only", lm_batch_size=5).per_device_train_batch_size == 5
    assert set(PRESET_TRAINING) == {"1.7m", "7m", "20m", "64m", "125m", "210m"}
