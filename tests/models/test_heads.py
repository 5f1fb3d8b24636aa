import itertools

import pytest
import torch

from playspeed.models.heads import (
    ClipOrderHead,
    LinearClassifier,
    ProjectionHead,
    SpeedDirectionHead,
    signed_speed_index,
)


def test_speed_direction_head():
    head = SpeedDirectionHead(16, num_speeds=4, num_directions=2)
    out = head(torch.randn(5, 16))
    assert set(out) == {"speed", "direction"}
    assert out["speed"].shape == (5, 4) and out["direction"].shape == (5, 2)
    joint = SpeedDirectionHead(16, num_speeds=4, num_directions=2, joint=True)
    out = joint(torch.randn(5, 16))
    assert set(out) == {"signed_speed"} and out["signed_speed"].shape == (5, 8)


def test_signed_speed_index_enumerates_every_pair_once():
    speed, direction = torch.meshgrid(torch.arange(4), torch.arange(2), indexing="ij")
    index = signed_speed_index(speed.flatten(), direction.flatten(), num_directions=2)
    assert index.tolist() == list(range(8))


def test_clip_order_head_shapes_and_pairs():
    head = ClipOrderHead(8, num_clips=3, hidden=6)
    assert [tuple(p) for p in head.pairs.t().tolist()] == list(itertools.combinations(range(3), 2))
    assert head.pair[0].in_features == 16 and head.classifier.in_features == 3 * 6
    assert head(torch.randn(4, 3, 8)).shape == (4, 6)
    assert ClipOrderHead(8, num_clips=4)(torch.randn(2, 4, 8)).shape == (2, 24)
    with pytest.raises(ValueError, match="B x 3 x D"):
        head(torch.randn(4, 2, 8))
    with pytest.raises(ValueError, match="at least 2 clips"):
        ClipOrderHead(8, num_clips=1)


def test_clip_order_head_codes_pairs_in_combination_order():
    torch.manual_seed(0)
    head = ClipOrderHead(4, num_clips=3, hidden=5).eval()
    feats = torch.randn(2, 3, 4)
    codes = [
        head.pair(torch.cat([feats[:, i], feats[:, j]], 1)) for i, j in [(0, 1), (0, 2), (1, 2)]
    ]
    torch.testing.assert_close(head(feats), head.classifier(torch.cat(codes, 1)))
    # Swapping two clips changes the prediction: the head sees clip order.
    assert not torch.allclose(head(feats), head(feats[:, [1, 0, 2]]))


def test_dropout_only_in_training():
    head = ClipOrderHead(4, num_clips=3)
    feats = torch.randn(8, 3, 4)
    head.eval()
    torch.testing.assert_close(head(feats), head(feats))
    head.train()
    torch.manual_seed(0)
    assert not torch.allclose(head(feats), head(feats))
    classifier = LinearClassifier(4, 10, dropout=0.5)
    assert classifier(torch.randn(3, 4)).shape == (3, 10)
    classifier.eval()
    x = torch.randn(3, 4)
    torch.testing.assert_close(classifier(x), classifier.fc(x))


def test_projection_head_gives_unit_vectors_through_an_mlp_or_one_linear_layer():
    mlp = ProjectionHead(16, out_features=8, hidden=32)
    assert [type(m).__name__ for m in mlp.mlp] == ["Linear", "ReLU", "Linear"]
    assert mlp.mlp[0].out_features == 32
    out = mlp(torch.randn(5, 16) * 7)
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    linear = ProjectionHead(16, out_features=8, hidden=0)
    assert isinstance(linear.mlp, torch.nn.Linear)
    feats = torch.randn(3, 16)
    expected = linear.mlp(feats)
    torch.testing.assert_close(linear(feats), expected / expected.norm(dim=1, keepdim=True))
    with pytest.raises(ValueError, match="out_features must be >= 1"):
        ProjectionHead(16, out_features=0)
