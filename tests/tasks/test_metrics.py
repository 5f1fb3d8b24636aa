"""Accuracy readings computed right from known outputs: softmax averaging, top-k, confusion."""

import numpy as np
import pytest
import torch

from playspeed.tasks.metrics import (
    confusion_matrix,
    errors_removed,
    per_class_accuracy,
    topk_accuracy,
    video_and_clip_accuracy,
)


def test_video_accuracy_averages_softmax_scores_not_logits():
    # Video 0: one clip very sure of class 1, two clips mildly for class 0. Averaged logits
    # pick class 1; averaged softmax scores pick class 0 (the protocol).
    video_logits = torch.tensor([[[0.0, 12.0], [2.0, 0.0], [2.0, 0.0]],
                                 [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    centre_logits = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    assert video_logits.mean(1).argmax(-1).tolist() == [1, 1]
    metrics = video_and_clip_accuracy(video_logits, centre_logits, labels)
    assert metrics == {"video_top1": 100.0, "clip_top1": 50.0}


def test_confusion_matrix_and_per_class_accuracy():
    predicted = torch.tensor([0, 1, 1, 2, 0])
    labels = torch.tensor([0, 1, 2, 2, 0])
    matrix = confusion_matrix(predicted, labels, 4)
    assert matrix.tolist() == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    accuracy = per_class_accuracy(matrix)
    assert accuracy[:3].tolist() == [100.0, 100.0, 50.0] and np.isnan(accuracy[3])


def test_topk_accuracy_counts_first_hit_within_k():
    ranked = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 2, 0]])
    gallery_labels = torch.tensor([0, 1, 2])
    query_labels = torch.tensor([0, 0, 2])
    metrics = topk_accuracy(ranked, query_labels, gallery_labels, ks=(1, 2, 3))
    assert metrics == {"top1": 100 / 3, "top2": 200 / 3, "top3": 100.0}




def test_errors_removed_is_the_share_of_the_baseline_errors():
    assert errors_removed(90.0, 80.0) == pytest.approx(50.0)
    assert errors_removed(60.0, 20.0) == pytest.approx(50.0)  # the same share of errors
    assert errors_removed(70.0, 80.0) == pytest.approx(-50.0)  # more errors than the baseline
    with pytest.raises(ValueError, match="no errors to remove"):
        errors_removed(100.0, 100.0)
