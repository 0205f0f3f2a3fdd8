"""Several recommendation tasks as one (LMRec^TL pretraining, Eq. 7 of the paper): one catalogue of namespaced
items, one row per user of every task."""

from __future__ import annotations

import os
from pathlib import Path

from datasets import Dataset

from .records import RecData


def combine_tasks(tasks: list[RecData]) -> RecData:
    """
    The source tasks of a multi-task pretraining as one `RecData`: items and users keep their task's name as a
    prefix (`"OR:85123A"`), item indices are offset so no two tasks share one, and `info["tasks"]` holds each task's
    size. A rec batch then mixes users of every task, and its shared or bank negatives come from the whole catalogue
    (see docs/training.md on why the tasks are mixed rather than taken in turns). One task is returned as it is.

    Example:
    ```python
    >>> data = combine_tasks([load_data("online-retail"), load_data("../shared/data/agnostic/amazon-games")])
    >>> data.info["tasks"]["OR"]["items"]
    3469
    ```
    """
    if not tasks:
        raise ValueError("combine_tasks: no task given; pass at least one RecData.")
    if len(tasks) == 1:
        return tasks[0]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"combine_tasks: task names must differ, got {names}; the same data set is listed twice.")
    for task in tasks:
        if task.protocol != "leave_one_out" or not task.ordered:
            raise ValueError(f"combine_tasks: {task.name} is {'unordered' if not task.ordered else task.protocol}; "
                             "a recommendation task for pretraining needs ordered histories split leave-one-out. "
                             "List unordered corpora (MovieLens, LastFM) under `agnostic`, as LM text only.")
    user_ids, item_ids, user_texts, keys, texts = [], [], [], [], []
    offset = 0
    for task in tasks:
        keys += [f"{task.name}:{key}" for key in task.items["item_id"]]
        texts += task.item_texts
        user_ids += [f"{task.name}:{user}" for user in task.users["user_id"]]
        item_ids += [[i + offset for i in seq] for seq in task.sequences]
        user_texts += task.users["item_texts"][:]
        offset += len(task.items)
    columns = {"user_id": user_ids, "item_ids": item_ids, "item_texts": user_texts}
    if any("trains" in t.users.column_names for t in tasks):  # a scarce-data share (`subsample_training_users`)
        columns["trains"] = [keep for t in tasks for keep in (t.users["trains"][:] if "trains" in t.users.column_names
                                                               else [True] * len(t.users))]
    users = Dataset.from_dict(columns)
    items = Dataset.from_dict({"item_id": keys, "text": texts})
    info = {"tasks": {t.name: t.stats() for t in tasks}}
    return RecData(name="+".join(names), users=users, items=items, info=info)


def same_source(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two data paths (or aliases) name the same source: equal as given, or the same folder or file."""
    if str(a) == str(b):
        return True
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        try:
            return pa.resolve() == pb.resolve() or pa.resolve() in pb.resolve().parents \
                or pb.resolve() in pa.resolve().parents
        except OSError:
            return False
    return False
