"""The arguments of a training run and where they come from: a YAML recipe plus overrides, checked once."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .checks import check_choice
from .configuration_lmrec import LMREC_PRESETS, REC_SIMILARITIES, check_rec_temperature
from .data import FORMATS, ONLINE_RETAIL_ALIAS, SPLIT_PROTOCOLS, same_source
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
    lora_r: int = field(default=0, metadata={
        "help": "Finetune `init_from` through LoRA adapters of this rank (0: train every weight). The trunk stays "
                "frozen, new W_u, W_i are trained; OUTPUT_DIR/adapter holds the adapter, OUTPUT_DIR/model the merged "
                "checkpoint (`lmrec_hf.adapters`)."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA path."})
    lora_targets: str = field(default="attention", metadata={
        "help": "The trunk layers that get adapters: 'attention' (c_attn, c_proj) or 'attention+mlp'."})
    item_id_embeddings: bool = field(default=False, metadata={
        "help": "Option, not the paper's model (UniSRec's transductive setting): add a learned item-id embedding, "
                "zero at the start, to W_i z_i of each training-catalogue item. Items outside that catalogue (and "
                "items never trained, such as cold ones) are scored by their text alone. Off: text only."})
    rec_similarity: str | None = field(default=None, metadata={
        "help": "How the rec head scores a user against an item: 'dot' (the paper's <W_u z_u, W_i z_i>) or 'cosine' "
                "(an option: their cosine / rec_temperature, as UniSRec and Recformer score). None: 'dot' for a new "
                "model, the checkpoint's own with `init_from`."})
    rec_temperature: float | None = field(default=None, metadata={
        "help": "Temperature of 'cosine' scores (None: 0.05 for a new model, the checkpoint's own with `init_from`)."})
    tokenizer_texts: int = field(default=20000, metadata={"help": "Histories sampled to train the tokenizer."})
    tokenizer_source: str = field(
        default="stream", metadata={"help": "What the tokenizer learns from, beside the item texts: 'stream' (the LM "
                                            "stream, task-agnostic corpora at their share) or 'task' (the task's own "
                                            "histories, whatever the stream holds)."}
    )

    def __post_init__(self):
        check_tokenizer_source(self.tokenizer_source)
        check_choice("preset", self.preset, list(LMREC_PRESETS))
        if self.dropout is not None and not 0.0 <= self.dropout <= 1.0:
            raise ValueError(f"`dropout` must be a probability in [0, 1], got {self.dropout!r}.")
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 0:
            raise ValueError(f"`lora_r` must be a rank >= 1 (or 0 for no LoRA), got {self.lora_r!r}.")
        if self.lora_r and not self.init_from:
            raise ValueError(f"`lora_r` {self.lora_r} adapts a pretrained encoder, but no `init_from` was given. Set "
                             "init_from to the encoder's checkpoint folder, or lora_r to 0 to train from scratch.")
        check_choice("lora_targets", self.lora_targets, ["attention", "attention+mlp"])
        if self.rec_similarity is not None:
            check_choice("rec_similarity", self.rec_similarity, list(REC_SIMILARITIES))
        if self.rec_temperature is not None:
            check_rec_temperature(self.rec_temperature)
        if self.rec_temperature is not None and (self.rec_similarity or "dot") == "dot" and not self.init_from:
            raise ValueError(f"`rec_temperature` {self.rec_temperature} divides cosine scores, but `rec_similarity` "
                             "is 'dot' (the default), which has no temperature. Set rec_similarity: cosine, or drop "
                             "rec_temperature.")
        if self.item_id_embeddings and self.init_from:
            raise ValueError("`item_id_embeddings` adds an id table sized to the catalogue of a model trained from "
                             f"scratch, but `init_from` ({self.init_from}) starts from a checkpoint. Drop one of the "
                             "two: train the hybrid from scratch, or finetune the text-only encoder.")


@dataclass
class DataArguments:
    data: str = field(default="", metadata={"help": "Data folder or file (see `lmrec-hf prepare --help`); "
                                                     "'online-retail' finds the Online Retail table."})
    data_format: str = field(default="auto", metadata={"help": "auto, prepared, unisrec, online-retail, interactions."})
    protocol: str = field(default="leave_one_out", metadata={"help": "leave_one_out or user_split (80/10/10)."})
    rec_tasks: list[str] = field(default_factory=list, metadata={
        "help": "LMRec^TL pretraining: several recommendation tasks (data folders or 'online-retail'), trained as "
                "one catalogue of namespaced items (`combine_tasks`). Replaces `data`."})
    agnostic: list[str] = field(default_factory=list, metadata={"help": "Task-agnostic corpora for the LM stream."})
    task_lm_ratio: float = field(default=1.0, metadata={"help": "Share of the LM stream from the task itself."})
    lm_probabilities: list[float] = field(default_factory=list, metadata={
        "help": "Share of the LM stream of each source, in order: each rec task (`data`, or `rec_tasks`), then each "
                "`agnostic` corpus; they must sum to 1. Empty: the rec task(s) share `task_lm_ratio`."})
    holdout: list[str] = field(default_factory=list, metadata={
        "help": "Target domains kept out of training, the tokenizer included: refused among the sources. The first "
                "is scored zero-shot after training (full ranking, beside popularity and random)."})
    train_share: float = field(default=1.0, metadata={
        "help": "Scarce data: train on a seeded share in (0, 1] of the training users (`subsample_training_users`); "
                "every user is still evaluated."})
    cold_fraction: float = field(default=0.0, metadata={
        "help": "Cold start: hold a seeded fraction in [0, 1) of the items out of all training text, negatives and "
                "the item bank (`hold_out_cold_items`); the evaluation then also scores cold and warm users apart. "
                "0: off."})
    cold_seed: int = field(default=0, metadata={"help": "The seed of the cold items' draw (0 in the transfer runs)."})
    eval_split: str = field(default="test", metadata={"help": "Split scored after training (valid or test)."})
    eval_max_users: int | None = field(default=None, metadata={"help": "Score a seeded sample of users (None: all)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where processed data is cached."})
    download_data: bool = field(default=True, metadata={"help": "data: online-retail downloads the UCI file "
                                                                "when it is found nowhere locally."})
    write_catalog: bool = field(default=True, metadata={"help": "Save the item catalog (texts, item embeddings, "
                                                                "example histories) beside the checkpoint."})

    def __post_init__(self):
        # Checked here, before any data is read or any step is trained.
        check_choice("data_format", self.data_format, list(FORMATS))
        check_choice("protocol", self.protocol, list(SPLIT_PROTOCOLS))
        check_choice("eval_split", self.eval_split, list(EVAL_SPLITS), "'' scores nothing after training")
        if not 0.0 <= self.task_lm_ratio <= 1.0:
            raise ValueError(f"`task_lm_ratio` must be in [0, 1], got {self.task_lm_ratio!r}.")
        if not 0.0 < self.train_share <= 1.0:
            raise ValueError(f"`train_share` must be in (0, 1] (the share of training users kept), got "
                             f"{self.train_share!r}; 1 keeps them all.")
        if isinstance(self.cold_fraction, bool) or not 0.0 <= self.cold_fraction < 1.0:
            raise ValueError(f"`cold_fraction` must be in [0, 1) (the share of items held out as cold), got "
                             f"{self.cold_fraction!r}; 0 holds none out, 0.1 one item in ten.")
        if self.cold_fraction and self.rec_tasks:
            raise ValueError(f"`cold_fraction` holds items out of one task's catalogue, but `rec_tasks` gives "
                             f"{len(self.rec_tasks)} tasks; set `data` to the one task instead.")
        if self.data and self.rec_tasks:
            raise ValueError(f"give `data` (one task) or `rec_tasks` (several), not both; got data={self.data!r} and "
                             f"rec_tasks={self.rec_tasks!r}.")
        if self.lm_probabilities:
            self._check_lm_probabilities()
        for target in self.holdout:
            for source in self.sources:
                if same_source(target, source):
                    raise ValueError(f"the held-out target {target!r} is also a source ({source!r}); a held-out "
                                     "domain must never enter training or the tokenizer. Remove it from `data`, "
                                     "`rec_tasks` or `agnostic`.")

    @property
    def sources(self) -> list[str]:
        """Every training source, rec tasks first: what `lm_probabilities` are given for, in order."""
        return ([self.data] if self.data else []) + list(self.rec_tasks) + list(self.agnostic)

    def _check_lm_probabilities(self) -> None:
        probabilities, sources = self.lm_probabilities, self.sources
        if len(probabilities) != len(sources):
            raise ValueError(f"`lm_probabilities` has {len(probabilities)} values but there are {len(sources)} LM "
                             f"sources, in order {sources} (the rec tasks, then `agnostic`); give one share each.")
        if any(not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1 for p in probabilities):
            raise ValueError(f"`lm_probabilities` must be numbers in [0, 1], got {probabilities!r}.")
        if abs(sum(probabilities) - 1.0) > 1e-6:
            raise ValueError(f"`lm_probabilities` must sum to 1, got {probabilities!r} (sum {sum(probabilities):g}).")
        if self.eval_max_users is not None and self.eval_max_users <= 0:
            raise ValueError(f"`eval_max_users` must be a positive integer or null (all users), got "
                             f"{self.eval_max_users!r}.")


EVAL_SPLITS = ("valid", "test", "")


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
        try:
            parsed = yaml.safe_load(value) if value.strip() else value  # `--eval_split ''` is the empty string
        except yaml.YAMLError:
            parsed = value  # not YAML (e.g. an unbalanced bracket): the field's type check below judges it
        if isinstance(parsed, bool) and value.strip().lower() not in ("true", "false"):
            parsed = value  # YAML 1.1 reads "no", "off", "yes" as booleans; "--eval_strategy no" means the string
        overrides[key] = parsed
    return overrides


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _field_types(classes) -> dict:
    from transformers import SchedulerType

    kinds = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds[f.name] = hints.get(f.name, f.type)
    # typed `str` here although only the scheduler names work: checked like the enum-typed fields
    kinds["lr_scheduler_type"] = SchedulerType | str
    return kinds


def _members(kind) -> tuple:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return typing.get_args(kind)
    return (kind,)


def _coerce(key: str, value, kind):
    """
    One value from YAML or an override, in the field's type, strictly: YAML and HfArgumentParser's parse_dict
    convert nothing, so `"false"` would be a true string and `thirty` would reach the Trainer. A string that means
    the type is converted (`"false"`, `"5e-3"`, `"1e3"` for an integer field); anything else is refused by name.
    """
    members = _members(kind)
    if value is None:
        if type(None) in members or kind is typing.Any:
            return None
        raise ValueError(f"`{key}` needs a value, got null.")
    enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]
    if enums:
        choices = [e.value for e in enums[0]]
        raw = value.value if isinstance(value, enum.Enum) else value
        check_choice(key, raw, choices)
        return raw
    if str in members and isinstance(value, str):
        return value
    if any(typing.get_origin(m) is list for m in members):
        return list(value) if isinstance(value, (list, tuple)) else [value]  # `--agnostic PATH` is a one-item list
    if bool in members:
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip().lower() in _TRUE + _FALSE:
            return str(value).strip().lower() in _TRUE
        raise ValueError(f"`{key}` must be true or false, got {value!r}.")
    if int in members:
        number = _number(value)
        if number is None or not float(number).is_integer():
            raise ValueError(f"`{key}` must be an integer, got {value!r}.")
        return int(number)
    if float in members:
        number = _number(value)
        if number is None:
            raise ValueError(f"`{key}` must be a number, got {value!r}.")
        return float(number)
    return value


def _number(value) -> float | int | None:
    """A number from an int, a float or a numeric string (`5e-3`, which PyYAML leaves a string); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _coerce_values(config: dict, classes) -> dict:
    kinds = _field_types(classes)
    return {key: _coerce(key, value, kinds[key]) for key, value in config.items()}


def _read_recipe(path: Path) -> dict:
    import yaml

    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist.")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                         f"{error.start}). Save the recipe as UTF-8.") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(f"{path} is not valid YAML{where}: {problem}. Fix the recipe there; each line is "
                         "`key: value`.") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of keys to values, got {type(config).__name__}.")
    return config


def _check_paths_exist(config: dict) -> None:
    """An unknown data path or corpus name is refused before any data is read."""
    for key in ("data", "rec_tasks", "agnostic", "holdout"):
        values = config.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            if isinstance(value, str) and value != ONLINE_RETAIL_ALIAS and not Path(value).exists():
                raise FileNotFoundError(f"`{key}`: data path {value} does not exist. Give a data folder or file "
                                        f"(see `lmrec-hf prepare --help`), or '{ONLINE_RETAIL_ALIAS}'.")


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
    from transformers import HfArgumentParser

    config = _read_recipe(Path(config_path)) if config_path else {}
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
    config = _coerce_values(config, classes)
    config.setdefault("output_dir", "outputs/run")
    _check_paths_exist(config)
    model_args, data_args, objective, training_args = HfArgumentParser(classes).parse_dict(config,
                                                                                           allow_extra_keys=False)
    objective.check_batches(training_args.mode, training_args.lm_batch_size)
    return model_args, data_args, objective, training_args
