"""End-to-end jobs behind the CLI and the grid: train from arguments, evaluate a checkpoint. Logs, never prints."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import ClassLabel, Dataset, interleave_datasets
from transformers import AutoTokenizer

from .adapters import LORA_TARGETS, add_lora, base_fingerprint, merged_model, save_adapter
from .arguments import DataArguments, ModelArguments, check_tokenizer_source
from .catalog import build_catalog, example_items, write_catalog
from .checkpoints import (
    check_checkpoint_dir,
    check_resume_matches,
    check_same_shape,
    is_adapter_checkpoint,
    load_resume_tokenizer,
    resume_checkpoint,
)
from .checks import check_choice
from .configuration_lmrec import LMRecConfig, catalog_fingerprint
from .data import (
    RecData,
    cold_items,
    combine_tasks,
    lm_texts,
    load_data,
    resolve_data_path,
    same_source,
    split_users,
    target_regime,
)
from .evaluation import (
    evaluate_item_to_item,
    evaluate_last_item,
    evaluate_model,
    evaluate_model_groups,
    evaluate_popularity,
    evaluate_random,
    evaluation_record,
)
from .losses import RecObjective
from .model_card import git_commit
from .modeling_lmrec import LMRecForJointModeling
from .tokenization_lmrec import train_tokenizer
from .trainer import LMRecTrainer
from .training_args import LMRecTrainingArguments
from .transfer import check_encoder_checkpoint

logger = logging.getLogger(__name__)

# How `evaluate_checkpoint` scores a user's items: the two towers, or cosine to the last item (no user tower).
SCORERS = ("user-item", "item-to-item", "last-item")


def build_lm_stream(data: RecData | list[RecData], agnostic: list[RecData], task_ratio: float, seed: int,
                    probabilities: list[float] | None = None) -> Dataset:
    """
    The LM stream: the rec task(s)' histories interleaved with task-agnostic histories. `probabilities` gives each
    source's share, tasks first (as in the recipe's `lm_probabilities`); without it the tasks share `task_ratio`
    equally and the agnostic corpora the rest. Stops when the first source runs out (`first_exhausted`). With two or
    more sources, a `source` column (a `ClassLabel` of `source_names`) says where each text came from.
    """
    tasks = [data] if isinstance(data, RecData) else list(data)
    probabilities = lm_shares(len(tasks), len(agnostic), task_ratio, probabilities)
    if len(probabilities) != len(tasks) + len(agnostic):
        raise ValueError(f"build_lm_stream: {len(probabilities)} probabilities for {len(tasks) + len(agnostic)} "
                         "sources (the tasks, then the agnostic corpora).")
    pairs = [(corpus, p) for corpus, p in zip(tasks + list(agnostic), probabilities) if p > 0]
    if len(pairs) == 1:
        return lm_texts(pairs[0][0], "train")
    names = source_names([corpus for corpus, _ in pairs])
    labelled = []
    for i, (corpus, _) in enumerate(pairs):  # each row keeps its source, for the per-corpus L1 the trainer logs
        texts = lm_texts(corpus, "train")
        labelled.append(texts.add_column("source", [i] * len(texts)).cast_column("source", ClassLabel(names=names)))
    return interleave_datasets(labelled, probabilities=[p for _, p in pairs], seed=seed,
                               stopping_strategy="first_exhausted")


def source_names(corpora: list[RecData]) -> list[str]:
    """One name per LM source, for its loss curve: the corpus's name, with its position added when two share one."""
    names = [corpus.name for corpus in corpora]
    return [name if names.count(name) == 1 else f"{name}-{i}" for i, name in enumerate(names)]


def lm_shares(n_tasks: int, n_agnostic: int, task_ratio: float, probabilities: list[float] | None = None
              ) -> list[float]:
    """Each LM source's share, tasks first: `probabilities` as given, else the tasks share `task_ratio` equally."""
    if probabilities:
        return list(probabilities)
    if not 0.0 <= task_ratio <= 1.0:
        raise ValueError(f"task_lm_ratio must be in [0, 1], got {task_ratio}.")
    if not n_agnostic or task_ratio >= 1.0:
        return [1.0 / n_tasks] * n_tasks + [0.0] * n_agnostic
    return [task_ratio / n_tasks] * n_tasks + [(1.0 - task_ratio) / n_agnostic] * n_agnostic


def pretraining_facts(tasks: list[RecData], agnostic: list[RecData], data_args: DataArguments) -> dict:
    """What the card says of a multi-source run: each corpus with its role, size and LM share, and the held-out
    domains. Empty for a one-task run without agnostic corpora or held-out targets."""
    if len(tasks) == 1 and not agnostic and not data_args.holdout:
        return {}
    shares = lm_shares(len(tasks), len(agnostic), data_args.task_lm_ratio, data_args.lm_probabilities)
    corpora = [{"name": corpus.name, "role": "recommendation task + LM" if i < len(tasks) else "LM only",
                **corpus.stats(), "lm_share": round(share, 4)}
               for i, (corpus, share) in enumerate(zip(tasks + agnostic, shares))]
    return {"corpora": corpora, "held_out": [Path(h).name for h in data_args.holdout]}


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
    cold = cold_items(data)  # held-out cold items never reach the tokenizer
    return sample["text"][:] + [text for i, text in enumerate(data.item_texts) if i not in cold]


def _load_tasks(data_args: DataArguments, seed: int) -> list[RecData]:
    """The rec task (`data`) or tasks (`rec_tasks`), loaded, with the held-out targets checked against them."""
    paths = [data_args.data] if data_args.data else list(data_args.rec_tasks)
    if not paths:
        raise ValueError("No data given: set `data` (or `rec_tasks`) in the config, or pass --data PATH.")
    resolved = [str(resolve_data_path(path, download=data_args.download_data)) for path in paths]
    for target in data_args.holdout:
        target = str(resolve_data_path(target, download=False))
        for path in resolved:
            if same_source(target, path):
                raise ValueError(f"the held-out target {target} is also a source ({path}); a held-out domain must "
                                 "never enter training or the tokenizer.")
    if data_args.data:
        data_args.data = resolved[0]
    tasks = []
    for path in resolved:
        data = load_data(path, data_args.data_format if data_args.data else "auto", cache_dir=data_args.cache_dir)
        if data_args.protocol == "user_split" and data.protocol != "user_split":
            data = split_users(data, seed=seed)
        tasks.append(target_regime(data, data_args.cold_fraction, data_args.train_share, seed=seed,
                                   cold_seed=data_args.cold_seed))
    return tasks


@dataclass
class TrainingSetup:
    """Everything `train_from_args` builds before it trains: the data, the tokenizer, the model and the trainer."""

    tasks: list[RecData]
    agnostic: list[RecData]
    data: RecData
    tokenizer: object
    model: torch.nn.Module
    trainer: LMRecTrainer
    checkpoint: Path | None
    base_hash: str | None
    trainable: int


def prepare_training(model_args: ModelArguments, data_args: DataArguments, objective: RecObjective,
                     args: LMRecTrainingArguments, callbacks=None) -> TrainingSetup:
    """
    Loads the data, trains (or loads) the tokenizer, builds the model (with LoRA when asked) and the trainer, as
    `train_from_args` does before training. Benchmarks use it to time steps of a real recipe without a run.
    """
    torch.manual_seed(args.seed)
    tasks = _load_tasks(data_args, args.seed)
    data = combine_tasks(tasks)
    agnostic = [load_data(path, "auto", cache_dir=data_args.cache_dir) for path in data_args.agnostic]
    lm_stream = build_lm_stream(tasks, agnostic, data_args.task_lm_ratio, args.seed,
                                probabilities=data_args.lm_probabilities or None)
    checkpoint = resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if checkpoint:
        check_resume_matches(checkpoint, model_args.lora_r,
                             LORA_TARGETS.get(model_args.lora_targets) if model_args.lora_r else None)
    tokenizer, model = _tokenizer_and_model(model_args, args, data, lm_stream, checkpoint)
    base_hash = None
    if model_args.lora_r:
        base_hash = base_fingerprint(model)
        model = add_lora(model, model_args.lora_r, model_args.lora_alpha, model_args.lora_dropout,
                         model_args.lora_targets)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("Model: %s, %.2fM parameters, %s trainable", model_args.preset, model.num_parameters() / 1e6,
                f"{trainable:,}")
    trainer = LMRecTrainer.from_data(model, args, tokenizer, data, objective, lm_texts=lm_stream, callbacks=callbacks)
    return TrainingSetup(tasks, agnostic, data, tokenizer, model, trainer, checkpoint, base_hash, trainable)


def train_from_args(model_args: ModelArguments, data_args: DataArguments, objective: RecObjective,
                    args: LMRecTrainingArguments, callbacks=None) -> dict:
    """
    Prepares data, trains the tokenizer and model, saves a self-contained checkpoint under `output_dir/model`, and
    evaluates it on `data_args.eval_split` (none when empty). `callbacks` go to the trainer (a
    `QualityCurveCallback`, say). Returns the run's facts, which are the evaluation
    record (`evaluation_record`) when it evaluated; they are also written to `output_dir/metrics.json`.

    Example:
    ```python
    >>> result = train_from_args(*load_train_config("training/configs/demo.yaml", {"max_steps": 10}))
    ```
    """
    start = time.time()
    commit = git_commit()  # the code this run imported: HEAD may move before it ends
    setup = prepare_training(model_args, data_args, objective, args, callbacks)
    tasks, agnostic, data, tokenizer, model, trainer = (setup.tasks, setup.agnostic, setup.data, setup.tokenizer,
                                                        setup.model, setup.trainer)
    checkpoint, base_hash, trainable = setup.checkpoint, setup.base_hash, setup.trainable
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_time = time.time() - start

    model_dir = Path(args.output_dir) / "model"
    if model_args.lora_r:  # the adapter alone, then the merged checkpoint that needs no peft
        if trainer.is_world_process_zero():
            save_adapter(model, Path(args.output_dir) / "adapter", model_args.init_from, base_hash)
            tokenizer.save_pretrained(str(Path(args.output_dir) / "adapter"))
        model = merged_model(model)
        if trainer.is_world_process_zero():
            model.save_pretrained(str(model_dir))
    else:
        trainer.save_model(str(model_dir))  # every rank calls it; only the main process writes
    facts = {"mode": args.mode, "preset": model_args.preset, "train_time_s": round(train_time, 1),
             "steps": trainer.state.global_step, "tokens_seen": trainer.state.num_input_tokens_seen,
             "world_size": args.world_size, "trainable_parameters": trainable}
    if model_args.init_from:
        facts.update(init_from=str(model_args.init_from),
                     method=f"lora-r{model_args.lora_r}-{model_args.lora_targets}" if model_args.lora_r else "finetune")
    if data_args.train_share < 1:
        facts.update(train_share=data_args.train_share,
                     training_users=sum(task.info["training_users"] for task in tasks))
    summary = {"data": {"name": data.name, "path": data_args.data, **data.stats()}, **facts}
    if not trainer.is_world_process_zero():
        return summary
    tokenizer.save_pretrained(str(model_dir))
    if data_args.eval_split and args.mode != "lm_only":
        # a cold-start run also scores the users whose target is a held-out cold item, and the others, apart
        cold = cold_items(data)
        groups = ("all", "cold", "warm") if cold else ("all",)
        scored = evaluate_model_groups(model, tokenizer, data, data_args.eval_split, groups,
                                       max_length=args.max_length, max_history_items=args.max_history_items,
                                       max_users=data_args.eval_max_users, seed=args.seed)
        result = evaluation_record(data, data_args.eval_split, scored["all"],
                                   evaluate_popularity(data, data_args.eval_split), data_path=data_args.data, **facts)
        if "cold" in scored:
            result.update(cold_fraction=data_args.cold_fraction, cold_items=len(cold),
                          cold=scored["cold"], warm=scored["warm"])
    else:
        result = summary
    if data_args.holdout and args.mode != "lm_only":
        result["zero_shot"] = zero_shot_record(model, tokenizer, data_args, args)
    result["wall_time_s"] = round(time.time() - start, 1)
    result["git_commit"] = commit
    (Path(args.output_dir) / "metrics.json").write_text(json.dumps(result, indent=2))
    _write_card(trainer, model, tokenizer, data, model_dir, model_args, data_args, result,
                pretraining_facts(tasks, agnostic, data_args))
    return result


def zero_shot_record(model, tokenizer, data_args: DataArguments, args: LMRecTrainingArguments) -> dict:
    """
    The first held-out target's test users ranked against its whole catalogue by the trained heads alone (no training
    on the target: LMRec^TL's zero-shot case), beside popularity (which does see the target's training part) and a
    random ranking, as one evaluation record. `item_to_item` adds the scorer with no user tower
    (`evaluate_item_to_item`: cosine of z_i to the last history item), which transfers where W_u z_u does not
    (docs/results.md, issue 22).
    """
    path = str(resolve_data_path(data_args.holdout[0], download=False))
    target = load_data(path, "auto", cache_dir=data_args.cache_dir)
    common = dict(max_users=data_args.eval_max_users, seed=args.seed)
    lmrec = evaluate_model(model, tokenizer, target, "test", max_length=args.max_length,
                           max_history_items=args.max_history_items, **common)
    record = evaluation_record(target, "test", lmrec, evaluate_popularity(target, "test", **common), data_path=path,
                               zero_shot=True, seed=args.seed)
    record["random"] = evaluate_random(target, "test", **common)
    record["item_to_item"] = evaluate_item_to_item(model, tokenizer, target, "test", max_length=args.max_length,
                                                   **common)
    return record


def _tokenizer_and_model(model_args: ModelArguments, args: LMRecTrainingArguments, data: RecData, lm_stream,
                         checkpoint: Path | None = None):
    """
    The checkpoint to start from (`init_from`), or a new tokenizer trained on the data and a new model. A resumed
    run (`checkpoint`) takes the tokenizer saved in the checkpoint, since its weights are tied to that token mapping,
    and must build a model of the checkpoint's shape.
    """
    tokenizer = load_resume_tokenizer(checkpoint) if checkpoint else None
    if model_args.init_from:
        init = check_encoder_checkpoint(model_args.init_from)
        model = LMRecForJointModeling.from_pretrained(init)
        model.config.update(similarity_overrides(model_args))  # a score to finetune under, checked by ModelArguments
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(init)
        if args.max_length > model.config.n_positions:  # a longer row would index past the position table
            raise ValueError(f"max_length {args.max_length} is longer than the {model.config.n_positions} positions "
                             f"of the encoder at {init}. Pass --max_length {model.config.n_positions} (or less) to "
                             "start from it.")
    else:
        if tokenizer is None:
            corpus = tokenizer_corpus(data, lm_stream, model_args.tokenizer_source, model_args.tokenizer_texts,
                                      args.seed)
            tokenizer = train_tokenizer(corpus, vocab_size=model_args.vocab_size, model_max_length=args.max_length)
        model = _new_model(model_args, args, tokenizer, data)
    if checkpoint and not is_adapter_checkpoint(checkpoint):  # an adapter's base is `init_from`, checked above
        check_same_shape(checkpoint, model.config)
    return tokenizer, model


def similarity_overrides(model_args: ModelArguments) -> dict:
    """The config fields `rec_similarity` and `rec_temperature` that the arguments set (None leaves a field as is)."""
    return {name: getattr(model_args, name) for name in ("rec_similarity", "rec_temperature")
            if getattr(model_args, name) is not None}


def _new_model(model_args: ModelArguments, args: LMRecTrainingArguments, tokenizer,
               data: RecData) -> LMRecForJointModeling:
    overrides = {"vocab_size": len(tokenizer), "n_positions": model_args.n_positions or args.max_length,
                 "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if model_args.item_id_embeddings:  # one row per item of the (combined) training catalogue
        overrides.update(item_id_embeddings=len(data.item_texts), item_id_catalog=catalog_fingerprint(data.item_texts))
    overrides.update(similarity_overrides(model_args))
    if model_args.dropout is not None:
        overrides.update(resid_pdrop=model_args.dropout, embd_pdrop=model_args.dropout, attn_pdrop=model_args.dropout)
    return LMRecForJointModeling(LMRecConfig.from_preset(model_args.preset, **overrides))


def evaluate_checkpoint(model_dir: str | Path, data: RecData, split: str = "test", ks=(5, 10, 20, 50),
                        protocol: str = "full", mask_history: bool = False, max_users: int | None = None,
                        seed: int = 0, num_negatives: int = 100, negatives: np.ndarray | None = None,
                        max_length: int = 256, max_history_items: int = 50, device: str | None = None,
                        scorer: str | None = None, **facts) -> tuple[dict, np.ndarray | None]:
    """
    LMRec's metrics of a checkpoint beside popularity's, on the same users and candidates, as one evaluation record;
    and the sampled negatives used (drawn from `seed` when `protocol="sampled"` and none are given), or None.
    `scorer="user-item"` ranks by <W_u z_u, W_i z_i>; `"item-to-item"` by the cosine of z_i to the user's last item
    (`evaluate_item_to_item`, the zero-shot scorer that needs no user tower); `"last-item"` by <W_u z_i(last), W_i z_i>
    (`evaluate_last_item`). Any but the first is said in the record. `None`: the checkpoint's own user feature, so a
    `lmrec-hf probe --user-feature last-item` checkpoint is scored as it was trained, any other with "user-item".

    Example:
    ```python
    >>> record, _ = evaluate_checkpoint("outputs/demo/model", load_data("online-retail"))
    >>> record["lmrec"]["recall@10"]
    ```
    """
    from transformers import AutoModelForCausalLM

    if scorer is not None:
        check_choice("scorer", scorer, SCORERS)
    start = time.time()
    model_dir = check_checkpoint_dir(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if scorer is None:
        transfer = getattr(model.config, "lmrec_transfer", None) or {}
        scorer = "last-item" if transfer.get("user_feature") == "last-item" else "user-item"
    if device is not None:
        model = model.to(device)
    common = dict(ks=tuple(ks), protocol=protocol, mask_history=mask_history, max_users=max_users, seed=seed,
                  num_negatives=num_negatives)
    if scorer == "user-item":
        lmrec = evaluate_model(model, tokenizer, data, split, max_length=max_length,
                               max_history_items=max_history_items, negatives=negatives, **common)
    else:
        evaluate = evaluate_item_to_item if scorer == "item-to-item" else evaluate_last_item
        lmrec = evaluate(model, tokenizer, data, split, max_length=max_length, negatives=negatives, **common)
        facts["scorer"] = scorer
    negatives = lmrec.pop("negatives", None)
    popularity = evaluate_popularity(data, split, negatives=negatives, **common)
    record = evaluation_record(data, split, lmrec, popularity, protocol=protocol, negatives=negatives,
                               mask_history=mask_history, model=str(model_dir), seed=seed, **facts)
    record["git_commit"] = git_commit()
    record["wall_time_s"] = round(time.time() - start, 1)
    return record, negatives


def _write_card(trainer, model, tokenizer, data, model_dir: Path, model_args, data_args, result: dict,
                pretraining: dict | None = None) -> None:
    """The catalog and the model card (README.md + lmrec_card.json) beside the checkpoint."""
    card = trainer.card_data
    card.pretraining = pretraining or {}
    card.model_name = f"lmrec-{model_args.preset}-{data.name.lower()}"
    card.preset = model_args.preset
    card.git_commit = result["git_commit"]
    card.set_dataset(data.name, data.stats(), data.protocol)
    card.training["train_time_s"] = result["train_time_s"]
    card.training["tokens_seen"] = result.get("tokens_seen")
    if data_args.write_catalog:
        files = build_catalog(model, tokenizer, data, seed=trainer.args.seed)
        write_catalog(model_dir, files)
        card.has_catalog = True
        card.example_items = example_items(files)
    if "lmrec" in result:
        card.add_evaluation(result)
    if "zero_shot" in result:
        card.add_evaluation(result["zero_shot"])
        if "item_to_item" in result["zero_shot"]:
            card.add_evaluation({**result["zero_shot"], "lmrec": result["zero_shot"]["item_to_item"],
                                 "scorer": "item-to-item"})
    card.save(model_dir, config=model.config)
