"""Accuracy readings over model outputs: plain functions of tensors
(docs/method.md#evaluation-protocols).

- clip accuracy: one centre clip per test video; video accuracy: ``N`` evenly spaced clips
  per video, softmax scores averaged, then the arg-max (:func:`video_and_clip_accuracy`);
- retrieval top-k: a query is a hit at ``k`` when one of its ``k`` nearest gallery videos
  has its class (:func:`topk_accuracy`);
- confusion matrices and per-class recall, for the reports;
- the share of a baseline's errors that a model removes (:func:`errors_removed`), the reading
  of a gain that still says something once the baseline nears 100%.

Chance levels of the same readings live in :mod:`playspeed.chance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def percent(hits: torch.Tensor) -> float:
    """Share of true entries of a boolean tensor, in percent (exact, not float32)."""
    return 100.0 * int(hits.sum()) / max(1, hits.numel())


def video_and_clip_accuracy(video_logits: torch.Tensor, centre_logits: torch.Tensor,
                            labels: torch.Tensor) -> dict[str, float]:
    """``video_logits`` ``V x N x K`` (N clips per video), ``centre_logits`` ``V x K``,
    ``labels`` ``V`` -> ``video_top1`` (softmax averaged) and ``clip_top1``, in percent."""
    video_scores = video_logits.softmax(-1).mean(1)
    return {
        "clip_top1": percent(centre_logits.argmax(-1) == labels),
        "video_top1": percent(video_scores.argmax(-1) == labels),
    }


def topk_accuracy(ranked: torch.Tensor, query_labels: torch.Tensor,
                  gallery_labels: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """``top{k}``: percent of queries with a same-class video among their first ``k``
    (``ranked``: ``Q x K`` gallery indices, best first)."""
    matches = gallery_labels[ranked] == query_labels[:, None]  # Q x K
    first_hit = torch.where(matches.any(1), matches.float().argmax(1),
                            torch.full_like(query_labels, ranked.shape[1]))
    return {f"top{k}": percent(first_hit < k) for k in ks}


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int
                     ) -> np.ndarray:
    """``num_classes x num_classes`` counts; rows are true classes, columns predictions."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.numpy(), predicted.numpy()), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class in percent (NaN for a class with no test video)."""
    totals = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals * 100, np.nan)


def errors_removed(accuracy: float, baseline: float) -> float:
    """The share (percent) of ``baseline``'s errors that ``accuracy`` removes (both percent):
    ``100 * (accuracy - baseline) / (100 - baseline)``; negative when it adds errors. 90
    against 80 removes 50% of the errors, as 60 against 20 does."""
    if baseline >= 100:
        raise ValueError(f"a baseline at {baseline}% has no errors to remove")
    return 100.0 * (accuracy - baseline) / (100.0 - baseline)
