"""The ranking metrics as an `evaluate` module (metrics/lmrec_ranking), loaded from its local path."""

import pytest
import torch


def test_the_ranking_metrics_as_an_evaluate_module():
    import evaluate

    from lmrec_hf.evaluation import RANKING_METRIC, metrics_from_ranks, ranks_from_scores

    scores = torch.tensor([[0.1, 0.9, 0.5, 0.2], [0.7, 0.2, 0.7, 0.1], [0.3, 0.3, 0.1, 0.0]])
    targets = torch.tensor([1, 0, 3])
    ranking = evaluate.load(RANKING_METRIC)
    got = ranking.compute(predictions=scores.tolist(), references=targets.tolist(), ks=[1, 2])
    assert got == pytest.approx(metrics_from_ranks(ranks_from_scores(scores, targets), (1, 2)))
    sampled = ranking.compute(predictions=scores.tolist(), references=targets.tolist(), ks=[1],
                              candidates=[[2], [2], [2]])  # the target against one sampled item each
    assert sampled["recall@1"] == pytest.approx(1 / 3)  # a tie counts against the model
    with pytest.raises(ValueError, match="references must be columns in \\[0, 4\\), got 0 to 4"):
        ranking.compute(predictions=scores.tolist(), references=[0, 1, 4])


def test_rows_of_different_widths_are_refused():
    import evaluate

    from lmrec_hf.evaluation import RANKING_METRIC

    with pytest.raises(ValueError, match=r"every row of scores must cover the same items, got rows of \[2, 3\]"):
        evaluate.load(RANKING_METRIC).compute(predictions=[[0.1, 0.2], [0.1, 0.2, 0.3]], references=[0, 1])
