"""The arguments of a training run and where they come from: a YAML recipe plus overrides, checked once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .data import ONLINE_RETAIL_ALIAS
from .losses import RecObjective
from .training_args import LMRecTrainingArguments

# Keys that an older recipe may still use, with their names now.
RENAMED_KEYS = {"negatives": "negative_layout"}


TOKENIZER_SOURCES = ("stream", "task")


def check_tokenizer_source(source: str) -> None:
    if source not in TOKENIZER_SOURCES:
        raise ValueError(f"tokenizer_source must be one of {TOKENIZER_SOURCES}, got {source!r}: 'stream' trains the "
                         "tokenizer on the LM stream's histories, 'task' on the task's own.")


@dataclass
class ModelArguments:
    preset: str = field(default="7m", metadata={"help": "Table 9 size: 1.7m, 7m, 20m, 64m, 125m, 210m."})
    vocab_size: int = field(default=8192, metadata={"help": "Tokenizer vocabulary to train (the paper: 50258)."})
    n_positions: int | None = field(default=None, metadata={"help": "Positions; None means max_length."})
    dropout: float | None = field(default=None, metadata={"help": "Sets resid, embd and attn dropout."})
    init_from: str | None = field(
        default=None, metadata={"help": "Start from this checkpoint (model + tokenizer), e.g. SelfPretrain's LM stage."}
    )
    tokenizer_texts: int = field(default=20000, metadata={"help": "Histories sampled to train the tokenizer."})
    tokenizer_source: str = field(
        default="stream", metadata={"help": "What the tokenizer learns from, beside the item texts: 'stream' (the LM "
                                            "stream, task-agnostic corpora at their share) or 'task' (the task's own "
                                            "histories, whatever the stream holds)."}
    )

    def __post_init__(self):
        check_tokenizer_source(self.tokenizer_source)


@dataclass
class DataArguments:
    data: str = field(default="", metadata={"help": "Data folder or file (see `lmrec-hf prepare --help`); "
                                                     "'online-retail' finds the Online Retail table."})
    data_format: str = field(default="auto", metadata={"help": "auto, prepared, unisrec, online-retail, interactions."})
    protocol: str = field(default="leave_one_out", metadata={"help": "leave_one_out or user_split (80/10/10)."})
    agnostic: list[str] = field(default_factory=list, metadata={"help": "Task-agnostic corpora for the LM stream."})
    task_lm_ratio: float = field(default=1.0, metadata={"help": "Share of the LM stream from the task itself."})
    eval_split: str = field(default="test", metadata={"help": "Split scored after training (valid or test)."})
    eval_max_users: int | None = field(default=None, metadata={"help": "Score a seeded sample of users (None: all)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where processed data is cached."})
    download_data: bool = field(default=True, metadata={"help": "data: online-retail downloads the UCI file "
                                                                "when it is found nowhere locally."})
    write_catalog: bool = field(default=True, metadata={"help": "Save the item catalog (texts, item embeddings, "
                                                                "example histories) beside the checkpoint."})


def _parse_overrides(pairs: list[str]) -> dict:
    import yaml

    overrides = {}
    i = 0
    while i < len(pairs):
        key = pairs[i]
        if not key.startswith("--"):
            raise ValueError(f"expected --key value after the config file, got {key!r}.")
        key = key[2:].replace("-", "_")
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(pairs):
            value = pairs[i + 1]
            i += 2
        else:
            raise ValueError(f"--{key} needs a value.")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, bool) and value.strip().lower() not in ("true", "false"):
            parsed = value  # YAML 1.1 reads "no", "off", "yes" as booleans; "--eval_strategy no" means the string
        overrides[key] = parsed
    return overrides


def _coerce_numbers(config: dict, classes) -> dict:
    """PyYAML reads `5e-3` (no dot) as a string; give numeric fields numbers, since parse_dict does not convert."""
    types = {f.name: str(f.type) for cls in classes for f in dataclasses.fields(cls)}
    out = dict(config)
    for key, value in config.items():
        if not isinstance(value, str):
            continue
        kind = types.get(key, "")
        try:
            if "float" in kind:
                out[key] = float(value)
            elif kind in ("int", "int | None", "typing.Optional[int]"):
                out[key] = int(value)
        except ValueError as error:
            raise ValueError(f"`{key}` must be a number, got {value!r}.") from error
    return out


def load_train_config(config_path: str | None, overrides: list[str] | dict | None = None):
    """
    A YAML recipe plus overrides (`--key value` strings from the command line, or a dict from a script) ->
    (ModelArguments, DataArguments, RecObjective, LMRecTrainingArguments). Every key is checked here, once: an
    unknown key, a bad value or a combination that cannot work is refused before any data is read.

    Example:
    ```python
    >>> model_args, data_args, objective, args = load_train_config("training/configs/demo.yaml", {"max_steps": 10})
    ```
    """
    import yaml
    from transformers import HfArgumentParser

    config = {}
    if config_path:
        path = Path(config_path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist.")
        config = yaml.safe_load(path.read_text()) or {}
        if not isinstance(config, dict):
            raise ValueError(f"{path} must hold a mapping of keys to values.")
    config.update(overrides if isinstance(overrides, dict) else _parse_overrides(list(overrides or [])))
    classes = (ModelArguments, DataArguments, RecObjective, LMRecTrainingArguments)
    known = {f.name for cls in classes for f in dataclasses.fields(cls)}
    renamed = {old: new for old, new in RENAMED_KEYS.items() if old in config}
    if renamed:
        renames = ", ".join(f"`{old}` is now `{new}`" for old, new in renamed.items())
        raise ValueError(f"renamed config key(s): {renames}. Rename them in the recipe or the overrides.")
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown}. Model keys: {[f.name for f in dataclasses.fields(ModelArguments)]}; "
            f"data keys: {[f.name for f in dataclasses.fields(DataArguments)]}; objective keys: "
            f"{[f.name for f in dataclasses.fields(RecObjective)]}; and any TrainingArguments field."
        )
    config = _coerce_numbers(config, classes)
    config.setdefault("output_dir", "outputs/run")
    if config.get("data") and config["data"] != ONLINE_RETAIL_ALIAS and not Path(config["data"]).exists():
        raise FileNotFoundError(f"data path {config['data']} does not exist. Set `data` or pass --data PATH.")
    model_args, data_args, objective, training_args = HfArgumentParser(classes).parse_dict(config,
                                                                                           allow_extra_keys=False)
    objective.check_batches(training_args.mode, training_args.lm_batch_size)
    return model_args, data_args, objective, training_args
