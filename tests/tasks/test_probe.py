"""k-NN and linear probe on hand-made features with known answers, and ``probe`` end to end."""

import json

import pytest
import torch

from playspeed.cli import main
from playspeed.tasks.probe import knn_predict, linear_probe_predict, probe


def _blobs(num_classes=4, per_class=12, dim=16, spread=0.3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=generator) * 3
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=generator), labels


def test_knn_majority_vote():
    # Directions at angles 0, 10, 20, 90 degrees: the query near 5 degrees has class 0, 0, 1
    # as its three nearest: class 0 wins 2-1.
    angles = torch.tensor([0.0, 10.0, 20.0, 90.0]).deg2rad()
    train = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.tensor([0, 0, 1, 1])
    query = torch.tensor([[1.0, 0.09]])
    assert knn_predict(train, labels, query, k=3).tolist() == [0]
    assert knn_predict(train, labels, query, k=1).tolist() == [0]


@pytest.mark.parametrize("order, expected", [
    ([0, 1, 1, 0], 0),  # 2-2: class 0 holds the nearest neighbour
    ([1, 0, 0, 1], 1),
    ([2, 1, 0, 0], 0),  # a plain majority beats the nearest neighbour
])
def test_knn_tie_in_votes_goes_to_the_class_of_the_nearest_neighbour(order, expected):
    # Gallery rows at decreasing similarity to the query, labelled by `order`.
    angles = torch.tensor([0.0, 10.0, 20.0, 30.0]).deg2rad()
    train = torch.stack([angles.cos(), angles.sin()], 1)
    query = torch.tensor([[1.0, -0.01]])
    assert knn_predict(train, torch.tensor(order), query, k=4).tolist() == [expected]


def test_knn_tie_rule_holds_for_large_k():
    # k = 60: classes 0 and 1 get 30 votes each; class 1 holds the nearest neighbour, class 0
    # the ranks right after it. A rank bonus that adds up (a small weight per rank) would
    # let the many near ranks of class 0 win; the rule is: nearest neighbour breaks the tie.
    angles = torch.linspace(0, 1.0, 60)
    train = torch.stack([angles.cos(), angles.sin()], 1)
    labels = torch.tensor([1] + [0] * 30 + [1] * 29)
    assert knn_predict(train, labels, torch.tensor([[1.0, -0.01]]), k=60).tolist() == [1]


def test_knn_and_linear_probe_separate_blobs():
    train, train_labels = _blobs(seed=0)
    test, test_labels = _blobs(seed=0, per_class=5)
    test = test + 0.05 * torch.randn(test.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(knn_predict(train, train_labels, test, k=5), test_labels)
    assert torch.equal(linear_probe_predict(train, train_labels, test), test_labels)


def test_linear_probe_finds_a_linear_rule_knn_cannot():
    # The class is the sign of feature 0, drowned in 30 dimensions of large noise: a linear
    # model reads it, nearest neighbours (dominated by the noise) do not.
    generator = torch.Generator().manual_seed(0)

    def sample(count):
        x = torch.randn(count, 31, generator=generator) * 3
        labels = (torch.rand(count, generator=generator) < 0.5).long()
        x[:, 0] = (labels * 2 - 1) * (1 + torch.rand(count, generator=generator))
        return x, labels

    train, train_labels = sample(200)
    test, test_labels = sample(100)
    linear = (linear_probe_predict(train, train_labels, test) == test_labels).float().mean()
    knn = (knn_predict(train, train_labels, test, k=5) == test_labels).float().mean()
    assert linear >= 0.95 and knn < 0.8


def test_linear_probe_handles_constant_features_and_one_video_per_class():
    train = torch.tensor([[0.0, 5.0, 1.0], [1.0, 5.0, 1.0]])  # two constant columns
    predicted = linear_probe_predict(train, torch.tensor([0, 1]),
                                     torch.tensor([[-0.2, 5.0, 1.0], [1.3, 5.0, 1.0]]))
    assert predicted.tolist() == [0, 1]


def test_probe_command_end_to_end(tiny_pretrain_ckpt, tmp_path, capsys):
    # batch size 2: the 9 training and 3 test videos both end in a partial batch.
    out = tmp_path / "probe"
    assert main(["probe", "--ckpt", str(tiny_pretrain_ckpt), "--out", str(out),
                 "optim.batch_size=2"]) == 0
    printed = capsys.readouterr().out
    assert "linear probe" in printed and "(chance 33.3%, 3 test videos)" in printed
    stored = json.loads((out / "metrics.json").read_text())
    assert set(stored) == {"linear_top1", "knn_top1", "chance_top1", "num_videos", "protocol"}
    assert stored["num_videos"] == 3
    assert stored["chance_top1"] == pytest.approx(100 / 3)  # one test video per class
    for key in ("linear_top1", "knn_top1"):  # 3 test videos: a multiple of 100/3
        assert 0 <= stored[key] <= 100 and round(stored[key] * 3 / 100, 6).is_integer()
    # The library call gives the same numbers (features served from the run's cache).
    assert probe(tiny_pretrain_ckpt, out=out, overrides=["optim.batch_size=2"]) == stored


def test_probe_command_missing_checkpoint(tmp_path, capsys):
    assert main(["probe", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'missing.ckpt'}: no such checkpoint"
