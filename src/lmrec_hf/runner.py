"""End-to-end jobs behind the CLI: train from a config, evaluate a checkpoint. Library code: logs, never prints."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, interleave_datasets
from transformers import AutoTokenizer

from .catalog import build_catalog, example_items, write_catalog
from .configuration_lmrec import LMRecConfig
from .data import RecData, lm_texts, load_data, resolve_data_path, split_users
from .evaluation import evaluate_model, evaluate_popularity
from .model_card import git_commit
from .modeling_lmrec import LMRecForJointModeling
from .text import train_tokenizer
from .trainer import LMRecTrainer
from .training_args import LMRecTrainingArguments

logger = logging.getLogger(__name__)


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


def build_lm_stream(data: RecData, agnostic: list[RecData], task_ratio: float, seed: int) -> Dataset:
    """The LM stream: task histories interleaved with task-agnostic histories, `task_ratio` from the task."""
    task = lm_texts(data, "train")
    if not agnostic or task_ratio >= 1.0:
        return task
    if not 0.0 <= task_ratio <= 1.0:
        raise ValueError(f"task_lm_ratio must be in [0, 1], got {task_ratio}.")
    others = [lm_texts(corpus, "train") for corpus in agnostic]
    sources = ([task] if task_ratio > 0 else []) + others
    share = (1.0 - task_ratio) / len(others)
    probabilities = ([task_ratio] if task_ratio > 0 else []) + [share] * len(others)
    return interleave_datasets(sources, probabilities=probabilities, seed=seed, stopping_strategy="first_exhausted")


def tokenizer_corpus(data: RecData, lm_stream: Dataset, source: str, max_texts: int, seed: int) -> list[str]:
    """
    What the tokenizer is trained on: a seeded sample of at most `max_texts` histories, from the LM stream
    (`source="stream"`) or from the task's own training histories (`"task"`), then every item text. With agnostic
    corpora in the stream, "stream" also changes how the task's own text is split (a stream mostly from other
    corpora can cut the task's items into many more tokens); "task" keeps that fixed while the stream's mix changes.
    """
    check_tokenizer_source(source)
    histories = lm_stream if source == "stream" else lm_texts(data, "train")
    sample = histories.shuffle(seed=seed).select(range(min(max_texts, len(histories))))
    return sample["text"][:] + data.item_texts


def _load_task(data_args: DataArguments, seed: int) -> RecData:
    if not data_args.data:
        raise ValueError("No data given: set `data` in the config or pass --data PATH.")
    data_args.data = str(resolve_data_path(data_args.data, download=data_args.download_data))
    data = load_data(data_args.data, data_args.data_format, cache_dir=data_args.cache_dir)
    if data_args.protocol == "user_split" and data.protocol != "user_split":
        data = split_users(data, seed=seed)
    elif data_args.protocol not in ("leave_one_out", "user_split"):
        raise ValueError(f"protocol must be leave_one_out or user_split, got {data_args.protocol!r}.")
    return data


def train_from_args(model_args: ModelArguments, data_args: DataArguments, args: LMRecTrainingArguments) -> dict:
    """Prepares data, trains the tokenizer and model, saves a self-contained checkpoint, evaluates. Returns metrics."""
    start = time.time()
    torch.manual_seed(args.seed)
    data = _load_task(data_args, args.seed)
    agnostic = [load_data(path, "auto", cache_dir=data_args.cache_dir) for path in data_args.agnostic]
    lm_stream = build_lm_stream(data, agnostic, data_args.task_lm_ratio, args.seed)

    if model_args.init_from:
        tokenizer = AutoTokenizer.from_pretrained(model_args.init_from)
        model = LMRecForJointModeling.from_pretrained(model_args.init_from)
    else:
        corpus = tokenizer_corpus(data, lm_stream, model_args.tokenizer_source, model_args.tokenizer_texts, args.seed)
        tokenizer = train_tokenizer(corpus, vocab_size=model_args.vocab_size,
                                    model_max_length=args.max_length)
        overrides = {"vocab_size": len(tokenizer), "n_positions": model_args.n_positions or args.max_length,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
        if args.rec_loss_weight is not None:  # the checkpoint records the λ it was trained with
            overrides["rec_loss_weight"] = args.rec_loss_weight
        if model_args.dropout is not None:
            overrides.update(resid_pdrop=model_args.dropout, embd_pdrop=model_args.dropout,
                             attn_pdrop=model_args.dropout)
        model = LMRecForJointModeling(LMRecConfig.from_preset(model_args.preset, **overrides))
    logger.info("Model: %s, %.2fM parameters", model_args.preset, model.num_parameters() / 1e6)

    trainer = LMRecTrainer.from_data(model, args, tokenizer, data, lm_texts=lm_stream)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    train_time = time.time() - start

    model_dir = Path(args.output_dir) / "model"
    trainer.save_model(str(model_dir))  # every rank calls it; only the main process writes
    result = {"data": {"name": data.name, "path": data_args.data, **data.stats()}, "mode": args.mode,
              "preset": model_args.preset, "train_time_s": round(train_time, 1),
              "steps": trainer.state.global_step, "world_size": args.world_size}
    if not trainer.is_world_process_zero():
        return result
    tokenizer.save_pretrained(str(model_dir))
    if data_args.eval_split and args.mode != "lm_only":
        result["lmrec"] = evaluate_model(model, tokenizer, data, data_args.eval_split,
                                         max_length=args.max_length, max_history_items=args.max_history_items,
                                         max_users=data_args.eval_max_users, seed=args.seed)
        result["popularity"] = evaluate_popularity(data, data_args.eval_split)
        result["split"] = data_args.eval_split
        result["protocol"] = "full ranking, ties against the model, history items not masked"
        result["protocol_id"] = "full-ranking"
    result["wall_time_s"] = round(time.time() - start, 1)
    result["git_commit"] = git_commit()
    (Path(args.output_dir) / "metrics.json").write_text(json.dumps(result, indent=2))
    _write_card(trainer, model, tokenizer, data, model_dir, model_args, data_args, result)
    return result


def _write_card(trainer, model, tokenizer, data, model_dir: Path, model_args, data_args, result: dict) -> None:
    """The catalog and the model card (README.md + lmrec_card.json) beside the checkpoint."""
    card = trainer.card_data
    card.model_name = f"lmrec-{model_args.preset}-{data.name.lower()}"
    card.preset = model_args.preset
    card.git_commit = result["git_commit"]
    card.set_dataset(data.name, data.stats(), data.protocol)
    card.training["train_time_s"] = result["train_time_s"]
    if data_args.write_catalog:
        files = build_catalog(model, tokenizer, data, seed=trainer.args.seed)
        write_catalog(model_dir, files)
        card.has_catalog = True
        card.example_items = example_items(files)
    if "lmrec" in result:
        card.add_evaluation(result)
    card.save(model_dir, config=model.config)
