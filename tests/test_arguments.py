"""Where a run's arguments come from: a YAML recipe plus overrides, checked once (lmrec_hf.arguments)."""

from pathlib import Path

import pytest

from lmrec_hf.arguments import ModelArguments, load_train_config
from lmrec_hf.losses import RecObjective

RECIPES = Path(__file__).parents[1] / "training" / "configs"


def test_train_config_unknown_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("preset: '1.7m'\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rat'\]"):
        load_train_config(str(config), [])
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['bogus'\]"):
        load_train_config(None, ["--bogus", "1"])


def test_train_config_missing_data_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data path .*nowhere does not exist"):
        load_train_config(None, ["--data", str(tmp_path / "nowhere")])
    with pytest.raises(FileNotFoundError, match=r"config file .*missing\.yaml does not exist"):
        load_train_config(str(tmp_path / "missing.yaml"), [])


def test_train_config_overrides_and_types(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {tmp_path}\npreset: '7m'\nmax_steps: 5\nuse_cpu: true\n")
    model_args, data_args, objective, args = load_train_config(str(config), ["--max_steps", "7", "--prefix-pairs=true",
                                                                  "--preset", "1.7m", "--eval_strategy", "no",
                                                                  "--save_strategy", "no"])
    assert args.max_steps == 7 and objective.prefix_pairs is True and model_args.preset == "1.7m"
    assert args.eval_strategy == "no" and args.save_strategy == "no"  # not YAML's boolean False
    assert data_args.data == str(tmp_path)
    assert args.adam_beta2 == 0.98  # the paper's recipe stays the default


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("learning_rate: 5e-3\nweight_decay: 1e-2\nmax_steps: 10\nuse_cpu: true\n")
    _, _, _, args = load_train_config(str(config), [])
    assert args.learning_rate == 0.005 and args.weight_decay == 0.01
    config.write_text("learning_rate: fast\n")
    with pytest.raises(ValueError, match="`learning_rate` must be a number, got 'fast'"):
        load_train_config(str(config), [])


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_every_recipe_parses(recipe):
    path = RECIPES / recipe
    # A GPU recipe asks for bf16, which TrainingArguments refuses on a machine without a GPU unless use_cpu is set.
    cpu = ["--use_cpu", "true"] if recipe.endswith("-gpu.yaml") else []
    # A single-task recipe gets a stand-in data folder; a pretraining recipe names its sources under ../shared.
    data = [] if "rec_tasks" in path.read_text() else ["--data", str(path.parent)]
    model_args, data_args, objective, args = load_train_config(str(path), [*data, *cpu])
    assert isinstance(args.learning_rate, float) and args.max_steps > 0
    assert args.bf16 == recipe.endswith("-gpu.yaml")


def test_overrides_as_a_dict_from_a_script(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {tmp_path}\nmax_steps: 5\nuse_cpu: true\nnegative_layout: shared\n")
    _, _, objective, args = load_train_config(str(config), {"max_steps": 9, "rec_loss_type": "softmax"})
    assert args.max_steps == 9 and objective == RecObjective(rec_loss_type="softmax", negative_layout="shared")


@pytest.mark.parametrize("overrides,message", [
    # the bug this object was made for: logQ without prefix batches was accepted and did nothing
    (["--logq_correction", "true"], "without prefix_pairs there is nothing to correct"),
    (["--negatives", "shared"], "`negatives` is now `negative_layout`"),
    (["--rec_loss_type", "hinge"], r"`rec_loss_type` must be one of \('bce', 'softmax'\)"),
    (["--lm_batch_size", "0"], "mode='joint' with lm_batch_size=0 has no LM loss"),
])
def test_objectives_that_cannot_work_are_refused_at_parse_time(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load_train_config(None, ["--use_cpu", "true", *overrides])


def test_tokenizer_source_is_checked():
    with pytest.raises(ValueError, match=r"tokenizer_source must be one of \('stream', 'task'\), got 'both'"):
        ModelArguments(tokenizer_source="both")


def test_pretraining_sources_are_checked_at_parse_time(tmp_path):
    """LMRec^TL recipes: an unknown corpus, LM shares that do not fit the sources, and the target among them."""
    from .toy_data import write_unisrec

    a, b, c = (str(write_unisrec(tmp_path / n, name=n)) for n in ("A", "B", "C"))
    _, data_args, _, _ = load_train_config(None, {"rec_tasks": [a, b], "agnostic": [c],
                                                  "lm_probabilities": [0.4, 0.4, 0.2]})
    assert data_args.sources == [a, b, c]
    with pytest.raises(FileNotFoundError, match=r"`agnostic`: data path nowhere/movies does not exist"):
        load_train_config(None, {"rec_tasks": [a], "agnostic": ["nowhere/movies"]})
    with pytest.raises(ValueError, match=r"`lm_probabilities` must sum to 1, got \[0.5, 0.4, 0.2\]"):
        load_train_config(None, {"rec_tasks": [a, b], "agnostic": [c], "lm_probabilities": [0.5, 0.4, 0.2]})
    with pytest.raises(ValueError, match=r"`lm_probabilities` has 2 values but there are 3 LM sources"):
        load_train_config(None, {"rec_tasks": [a, b], "agnostic": [c], "lm_probabilities": [0.5, 0.5]})
    with pytest.raises(ValueError, match=r"held-out target .* is also a source"):
        load_train_config(None, {"rec_tasks": [a, b], "agnostic": [c], "holdout": [c]})
    with pytest.raises(ValueError, match=r"give `data` \(one task\) or `rec_tasks` \(several\), not both"):
        load_train_config(None, {"data": a, "rec_tasks": [b]})
    _, data_args, _, _ = load_train_config(None, ["--rec_tasks", a, "--agnostic", c])
    assert data_args.rec_tasks == [a] and data_args.agnostic == [c]  # one value on the command line is a list


def test_train_share_is_checked_at_parse_time():
    for share in ("0", "1.5", "-0.2"):
        with pytest.raises(ValueError, match=r"`train_share` must be in \(0, 1\]"):
            load_train_config(None, ["--train_share", share])
    assert load_train_config(None, ["--train_share", "0.05"])[1].train_share == 0.05
