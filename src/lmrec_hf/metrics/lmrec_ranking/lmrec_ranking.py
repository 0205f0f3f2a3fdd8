"""
Recall@k, NDCG@k and MRR@k of next-item recommendation as an `evaluate` metric, computed with lmrec-hf's one
ranking routine (ties counted against the model), for full ranking or for a target among sampled negatives.

Example:
```python
>>> import evaluate
>>> from lmrec_hf.evaluation import RANKING_METRIC
>>> ranking = evaluate.load(RANKING_METRIC)
>>> ranking.compute(predictions=[[0.1, 0.9, 0.5], [0.7, 0.2, 0.7]], references=[1, 0], ks=[1, 2])
{'recall@1': 0.5, 'ndcg@1': 0.5, 'mrr@1': 0.5, 'recall@2': 1.0, 'ndcg@2': 0.815..., 'mrr@2': 0.75}
```
"""

import datasets
import evaluate
import numpy as np
import torch

from lmrec_hf.evaluation import metrics_from_ranks, rank_targets

_DESCRIPTION = """
Leave-one-out ranking metrics. Each prediction is one user's row of scores over the candidate items and its
reference the column of the item the user chose next. The target's rank counts every other candidate that scores
at least as high (ties against the model). Full ranking scores every item of the catalog; the sampled protocol
passes `candidates`, one list of sampled negative columns per user, and ranks the target among them alone.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): one row of scores per user, over the same item columns.
    references (`list[int]`): the column of each user's target item.
    ks (`list[int]`, defaults to `[10, 50]`): the cut-offs.
    candidates (`list[list[int]]`, *optional*): per user, the sampled negative columns to rank the target among
        (the same number for every user); absent for full ranking.
Returns:
    `recall@k`, `ndcg@k` and `mrr@k` for each k, averaged over users.
"""

_CITATION = """
@article{shin2021pivotal,
  title={Pivotal Role of Language Modeling in Recommender Systems},
  author={Shin, Kyuyong and Kwak, Hanock and Kim, Kyung-Min and Kim, Su Young and Ramstrom, Max Nihlen},
  journal={arXiv preprint arXiv:2105.03002},
  year={2021}
}
"""


class LMRecRanking(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, ks=(10, 50), candidates=None):
        if not predictions:
            raise ValueError("lmrec_ranking: no predictions were given; pass one row of scores per user.")
        widths = {len(row) for row in predictions}
        if len(widths) != 1:
            raise ValueError(f"lmrec_ranking: every row of scores must cover the same items, got rows of "
                             f"{sorted(widths)} columns.")
        scores = torch.as_tensor(np.asarray(predictions, dtype=np.float64))
        targets = torch.as_tensor(np.asarray(references, dtype=np.int64))
        if int(targets.min()) < 0 or int(targets.max()) >= scores.shape[1]:
            raise ValueError(f"lmrec_ranking: references must be columns in [0, {scores.shape[1]}), got "
                             f"{int(targets.min())} to {int(targets.max())}.")
        if candidates is not None:
            candidates = np.asarray(candidates, dtype=np.int64)
            if candidates.ndim != 2 or len(candidates) != len(targets):
                raise ValueError(f"lmrec_ranking: `candidates` needs one list of negative columns per user "
                                 f"({len(targets)}), all of one length, got shape {candidates.shape}.")
        ranks = rank_targets(scores, targets, candidates=candidates)
        return metrics_from_ranks(ranks, tuple(ks))
