"""Testing metrics: computed right from known outputs, files written, no video dropped."""

import json

import numpy as np
import pytest
import torch

from playspeed.tasks.evaluation import (
    confusion_matrix,
    evaluate,
    per_class_accuracy,
    video_and_clip_accuracy,
)
from playspeed.tasks.finetune import ActionRecognition, finetune


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


@pytest.fixture(scope="module")
def finetuned(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune")
    finetune(tiny_config("finetune", "trainer.max_epochs=1"), out)
    return out / "checkpoints" / "last.ckpt"


def test_evaluate_with_a_model_of_known_outputs(finetuned, tmp_path, monkeypatch):
    # Every clip says "class 1": accuracy is the share of class-1 test videos, whatever the
    # batch size (5 does not divide the test split: the last partial batch must count).
    def always_class_1(self, clips):
        return torch.tensor([[0.0, 5.0, 0.0]]).expand(clips.shape[0], -1)

    monkeypatch.setattr(ActionRecognition, "forward", always_class_1)
    metrics = evaluate(finetuned, out=tmp_path, num_clips=3, overrides=["optim.batch_size=2"])
    from playspeed.tasks.checkpoints import load_task
    from playspeed.tasks.data import load_records

    records = load_records(load_task(finetuned).config, "test")
    expected = 100.0 * sum(r.label == 1 for r in records) / len(records)
    assert metrics["video_top1"] == metrics["clip_top1"] == pytest.approx(expected)
    assert metrics["num_videos"] == len(records) == 3
    # Chance: always answering the most frequent test class (one video of each here).
    assert metrics["chance_top1"] == pytest.approx(100 / 3)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert {"clip_top1", "video_top1", "chance_top1", "num_videos", "protocol"} <= stored.keys()
    assert "3 evenly spaced clips" in stored["protocol"]["video_top1"]
    lines = (tmp_path / "per_class.csv").read_text().splitlines()
    assert lines[0] == "class,videos,video_top1" and len(lines) == 4
    assert (tmp_path / "plots" / "confusion.png").stat().st_size > 1000


def test_evaluate_rejects_a_pretrain_checkpoint(tiny_config, tmp_path):
    from playspeed.errors import PlayspeedError
    from playspeed.tasks.pretext import pretrain

    pretrain(tiny_config("pretrain", "trainer.max_epochs=1"), tmp_path)
    with pytest.raises(PlayspeedError, match="a pretrain checkpoint; this command needs a "
                                             "finetune one"):
        evaluate(tmp_path / "checkpoints" / "last.ckpt", out=tmp_path / "test")
