"""
The paper's experiment grid at CPU scale, as data: each row is a short id with its kind and the options it
changes in the data set's CPU recipe; its display name is generated from those options. `reproduce.py` runs rows
and `report.py` renders their records into docs/results.md.

Budgets (CPU, 2 cores), stated in every record: LMRec rows use the data set's CPU recipe (the demo recipe's named
options; training/configs/scientific-cpu.yaml, training/configs/demo.yaml) at its max_steps; SelfPretrain runs
the LM stage and then the rec stage, each for that many steps; the ID transformer trains 3,000 steps of 128 users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DATASETS = {
    "scientific": {"name": "Scientific", "path": "../shared/data/amazon-scientific",
                   "recipe": "training/configs/scientific-cpu.yaml"},
    "or": {"name": "OR", "path": "online-retail", "recipe": "training/configs/demo.yaml"},
}
AGNOSTIC = ["../shared/data/agnostic/amazon-games", "../shared/data/agnostic/ml-1m-unordered"]
ID_TRANSFORMER = {"max_steps": 3000, "batch_size": 128, "learning_rate": 1e-3, "n_embd": 64, "n_layer": 2,
                  "n_head": 2, "max_len": 50, "dropout": 0.2}
KINDS = ("popularity", "id_transformer", "lmrec", "selfpretrain")


@dataclass(frozen=True)
class Row:
    """One grid row: its kind and the options it changes in the data set's CPU recipe (recipe keys, except
    `max_steps` as "2x" or "4x", a multiple of the recipe's steps)."""

    kind: str
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return display_name(self.kind, self.options)


def _rate(value: float) -> str:
    """1e-3 for 0.001, 3e-4 for 0.0003: how the grid writes learning rates."""
    return re.sub(r"e-0*", "e-", f"{value:.0e}")


def display_name(kind: str, options: dict) -> str:
    """
    A row's name in tables and plots, from its options in a fixed order, e.g. "LMRec 1.7m, items cut to 32 tokens,
    grouped by length, learning rate 1e-2". The names of the rows that ran before rows had ids are these names, so
    their records keep rendering.
    """
    fixed = {"popularity": "Popularity", "id_transformer": "ID transformer", "selfpretrain": "SelfPretrain"}
    if kind in fixed:
        return fixed[kind]
    head = "LMRec-lm" if options.get("mode") == "rec_only" else "LMRec"
    if "preset" in options:
        head += f" {options['preset']}"
    parts = []
    ratio = options.get("task_lm_ratio")
    if ratio == 0.7:  # the paper's LMRec+agnostic (Table 4)
        head = "LMRec+agnostic (70% task)"
    elif ratio is not None:
        parts.append(f"{round(ratio * 100)}% task")
    if options.get("tokenizer_source") == "task":
        parts.append("tokenizer from the task")
    if options.get("item_max_length"):
        parts.append(f"items cut to {options['item_max_length']} tokens")
    if options.get("train_sampling_strategy") == "group_by_length":
        parts.append("grouped by length")
    steps = options.get("max_steps")
    if steps is not None:
        parts.append({"2x": "twice the steps", "4x": "4x the steps"}.get(str(steps), f"{steps} steps"))
    if "learning_rate" in options:
        parts.append(f"learning rate {_rate(options['learning_rate'])}")
    if options.get("item_bank_refresh_steps"):
        parts.append("whole catalog as negatives" if options.get("item_bank_loss") == "fresh_over_bank"
                     else "whole catalog too")
    return ", ".join([head] + parts)


def _agnostic(ratio: float) -> dict:
    return {"agnostic": AGNOSTIC, "task_lm_ratio": ratio, "lm_batch_size": 16}


LM_ONLY_REC = {"mode": "rec_only", "lm_on_rec_histories": False}  # LMRec-lm: L2 alone
CHEAPER = {"item_max_length": 32, "train_sampling_strategy": "group_by_length"}
CHEAPER_1E3 = dict(CHEAPER, max_steps=1500, learning_rate=1e-3)
# The first design: commit 2772128 ran it before `item_bank_loss` existed, with code that did what fresh_over_bank does.
CATALOG_NEGATIVES = {"logq_correction": False, "item_bank_refresh_steps": 25, "item_bank_loss": "fresh_over_bank"}
# The second: the batch's loss with the logQ correction as before, averaged with a loss over the bank alone.
CATALOG_EXTRA = {"item_bank_refresh_steps": 25, "item_bank_loss": "separate"}
SIZES = {"1.7m": {"preset": "1.7m"}, "7m": {}, "20m": {"preset": "20m"}}  # Figure 4; 7m is the recipe's own

# Figure 4 again with the learning rate picked per size, as the paper tuned each size: the recipe's 3e-3 beside
# other rates, picked by the valid split's full-ranking Recall@10. The lowest rates of 7m and 20m were added after
# the first sweep picked the lowest it had tried for both.
RECIPE_LEARNING_RATE = 3e-3
LEARNING_RATES = {"1.7m": [1e-2, 3e-2], "7m": [3e-4, 1e-3, 1e-2], "20m": [1e-4, 3e-4, 1e-3]}
# Figure 4 on the cheaper steps (Scientific's 20m at the recipe's steps needs about 19 s a step here, over three
# hours), first at 1e-3, the rate Scientific's 7m did best with on them, then at rates bracketing it on the side
# OR's sweep picked for each size. 1.7m's 3e-2 was added after the first sweep picked the highest rate it had tried.
CHEAPER_LEARNING_RATE = 1e-3
CHEAPER_LEARNING_RATES = {"1.7m": [3e-3, 1e-2, 3e-2], "7m": [3e-4, 3e-3], "20m": [3e-4]}


def _size_id(size: str) -> str:
    return "lmrec" if size == "7m" else f"lmrec-{size}"


def rate_rows(size: str) -> list[tuple[float, str]]:
    """(learning rate, row id) of one size's sweep at the recipe's steps: the recipe's rate first."""
    return [(RECIPE_LEARNING_RATE, _size_id(size))] + [(rate, f"{_size_id(size)}-lr{_rate(rate)}")
                                                        for rate in LEARNING_RATES[size]]


def cheaper_rate_rows(size: str) -> list[tuple[float, str]]:
    """(learning rate, row id) of one size's sweep on the cheaper steps: 1e-3 first."""
    return [(rate, f"{_size_id(size)}-cheap-lr{_rate(rate)}")
            for rate in [CHEAPER_LEARNING_RATE] + CHEAPER_LEARNING_RATES[size]]


ROWS: dict[str, Row] = {
    "popularity": Row("popularity"),
    "id-transformer": Row("id_transformer"),
    "lmrec-lm": Row("lmrec", LM_ONLY_REC),
    "lmrec": Row("lmrec"),
    "lmrec-agnostic-70": Row("lmrec", _agnostic(0.7)),
    "selfpretrain": Row("selfpretrain"),
    **{f"lmrec-task-{share}": Row("lmrec", _agnostic(share / 100)) for share in (0, 30, 50, 100)},
    # The tokenizer learns from a sample of the LM stream, so a lower task share also changes how the task's own
    # text is split. These rows train it on the task's histories whatever the stream's mix.
    **{f"lmrec-task-{share}-task-tokenizer": Row("lmrec", dict(_agnostic(share / 100), tokenizer_source="task"))
       for share in (0, 30)},
    # SelfPretrain spends the step budget twice (LM stage, then rec stage): joint training with as many steps.
    "lmrec-2x": Row("lmrec", {"max_steps": "2x"}),
    "lmrec-4x": Row("lmrec", {"max_steps": "4x"}),
    **{row: Row("lmrec", dict(SIZES[size], **({"learning_rate": rate} if rate != RECIPE_LEARNING_RATE else {})))
       for size in SIZES for rate, row in rate_rows(size)},
    "lmrec-items32": Row("lmrec", {"item_max_length": 32}),
    "lmrec-cheap-1500": Row("lmrec", dict(CHEAPER, max_steps=1500)),
    "lmrec-cheap-2500": Row("lmrec", dict(CHEAPER, max_steps=2500)),
    "lmrec-lm-cheap-1500": Row("lmrec", dict(LM_ONLY_REC, **CHEAPER, max_steps=1500)),
    # OR's 7m picked 1e-3 over the recipe's 3e-3 on the valid split (Figure 4's learning rates): the same on
    # Scientific.
    "lmrec-cheap-1500-lr1e-3": Row("lmrec", CHEAPER_1E3),
    # Table 4's agnostic LM batch (70% task) on the cheaper steps, against the row above.
    "lmrec-agnostic-70-cheap-1500-lr1e-3": Row("lmrec", dict(CHEAPER_1E3, **_agnostic(0.7))),
    **{row: Row("lmrec", dict(SIZES[size], **CHEAPER, learning_rate=rate))
       for size in SIZES for rate, row in cheaper_rate_rows(size)},
    # Not in the paper: every user scored against the whole catalog (item features re-encoded every 25 steps), as
    # the ID transformer's softmax is. "as negatives" replaces the batch's loss (the batch's items fresh, the others
    # from the bank); "too" keeps the batch's loss with the logQ correction and adds one over the bank alone.
    "lmrec-bank-negatives": Row("lmrec", CATALOG_NEGATIVES),
    "lmrec-cheap-1500-lr1e-3-bank-negatives": Row("lmrec", dict(CHEAPER_1E3, **CATALOG_NEGATIVES)),
    "lmrec-bank": Row("lmrec", CATALOG_EXTRA),
    # The demo recipe with the item bank, at the rate OR's valid split picked for 7m on the GPU (1e-3).
    "lmrec-lr1e-3-bank": Row("lmrec", dict(CATALOG_EXTRA, learning_rate=1e-3)),
    "lmrec-cheap-1500-lr1e-3-bank": Row("lmrec", dict(CHEAPER_1E3, **CATALOG_EXTRA)),
    # The demo recipe with the item bank, trained twice as long (1.4 passes over OR).
    "lmrec-2x-bank": Row("lmrec", dict(CATALOG_EXTRA, max_steps="2x")),
}
ROW_IDS_BY_NAME = {row.name: row_id for row_id, row in ROWS.items()}
FIGURE4_SIZES = ["lmrec-1.7m", "lmrec", "lmrec-20m"]

# Table key -> (title, row ids, the data sets it is drawn for; all when absent).
TABLES = {
    "table4": ("Table 4: baselines and LMRec", ["popularity", "id-transformer", "lmrec-lm", "lmrec",
                                                "lmrec-agnostic-70"]),
    "table2": ("Table 2: SelfPretrain against joint training", ["selfpretrain", "lmrec", "lmrec-2x"]),
    "table5": ("Table 5: share of the LM stream from the task itself",
               ["lmrec-task-0", "lmrec-task-30", "lmrec-task-50", "lmrec-agnostic-70", "lmrec-task-100"]),
    # Not in the paper: Table 5's low task shares with the tokenizer held to the task's text.
    "table5-tokenizer": ("Table 5 with the tokenizer trained on the task's own histories (not the paper's)",
                         ["lmrec-task-0", "lmrec-task-0-task-tokenizer", "lmrec-task-30",
                          "lmrec-task-30-task-tokenizer", "lmrec-task-100"]),
    "figure4": ("Figure 4: model size", FIGURE4_SIZES),
    # Not in the paper's recipe: Figure 4 at Scientific's cheaper steps, the recipe's 600 of them, at 1e-3.
    "figure4-cheaper": ("Figure 4 on the cheaper steps at learning rate 1e-3 (not the paper's recipe)",
                        [cheaper_rate_rows(size)[0][1] for size in SIZES], ["scientific"]),
    # The same, each size at two to four learning rates, picked on the valid split as in "figure4-lr".
    "figure4-cheaper-lr": ("Figure 4 on the cheaper steps with the learning rate picked per size on the valid split "
                           "(not the paper's recipe)",
                           [row for size in SIZES for _, row in cheaper_rate_rows(size)], ["scientific"]),
    # Each size at three or four learning rates; the report picks one per size on the valid split.
    "figure4-lr": ("Figure 4 with the learning rate picked per size on the valid split",
                   [row for size in SIZES for _, row in rate_rows(size)], ["or"]),
    # Not in the paper: how far the CPU step budget is from enough (Scientific's longer runs are in "items").
    "steps": ("Step budget: the same recipe trained longer (not in the paper)", ["lmrec", "lmrec-2x", "lmrec-4x"],
              ["or"]),
    # Not in the paper: cheaper steps for Scientific's long item texts (OR's are short), spent on more passes.
    "items": ("Cheaper steps: item texts cut to 32 tokens, batches grouped by history length (options, not the "
              "paper's)", ["lmrec", "lmrec-items32", "lmrec-cheap-1500", "lmrec-lm-cheap-1500", "lmrec-cheap-2500",
                           "lmrec-cheap-1500-lr1e-3", "lmrec-agnostic-70-cheap-1500-lr1e-3"], ["scientific"]),
    # Not in the paper: the whole catalog as negatives against the batch's items with the logQ correction.
    # Scientific: the item bank at the recipe's 600 steps and at the cheaper 1,500 steps.
    "catalog": ("Negatives: the batch's items against the whole catalog (options, not the paper's)",
                ["lmrec", "lmrec-bank", "lmrec-cheap-1500-lr1e-3", "lmrec-cheap-1500-lr1e-3-bank-negatives",
                 "lmrec-cheap-1500-lr1e-3-bank"], ["scientific"]),
    "catalog-or": ("Negatives: the batch's items against the whole catalog (options, not the paper's)",
                   ["lmrec", "lmrec-bank-negatives", "lmrec-bank", "lmrec-lr1e-3-bank", "lmrec-2x-bank"], ["or"]),
}
# Tables drawn as Recall@10 against size too (table key -> what the plot's title adds to the data set's name).
SIZE_FIGURES = {"figure4": "", "figure4-cheaper": ", cheaper steps at 1e-3"}
# Learning-rate sweeps (table key -> (rate, row id) pairs per size, the picked plot's file stem, its title's end).
SWEEPS = {"figure4-lr": (rate_rows, "figure4-picked-lr", ", learning rate picked per size"),
          "figure4-cheaper-lr": (cheaper_rate_rows, "figure4-cheaper-picked-lr",
                                 ", cheaper steps, learning rate picked per size")}
# The paper's test figures (Recall@10, NDCG@10), and anchors measured on the same split (HF-NOTES.md).
PAPER = {
    ("Scientific", "lmrec"): (0.1264, 0.0695, "paper"),
    ("Scientific", "lmrec-lm"): (0.0951, 0.0428, "paper"),
    ("Scientific", "id-transformer"): (0.0625, 0.0323, "paper's BST"),
    ("Scientific", "popularity"): (0.0309, 0.0171, "anchor"),
    ("OR", "lmrec"): (0.1475, 0.0718, "paper"),
}
ANCHORS = ("Scientific anchors on this split (full ranking, Recall@10 / NDCG@10): popularity 0.0309 / 0.0171, "
           "RecBole SASRec 0.1005 / 0.0571, the paper's LMRec 0.1264 / 0.0695, Recformer 0.1448.")


def resolve_row(key: str) -> str:
    """A row id from an id or a display name (the names older records and commands use)."""
    if key in ROWS:
        return key
    if key in ROW_IDS_BY_NAME:
        return ROW_IDS_BY_NAME[key]
    raise KeyError(f"unknown row {key!r}; known ids: {list(ROWS)}")


def record_row_id(record: dict) -> str:
    """The row id of a run record: its `row_id`, or for a record written before rows had ids, its `row` name."""
    return record.get("row_id") or ROW_IDS_BY_NAME[record["row"]]
