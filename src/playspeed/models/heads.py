"""Heads on backbone features: the pretext objectives (docs/method.md#pretext-objectives) and
fine-tuning."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClipOrderHead", "LinearClassifier", "PerClipHead", "ProjectionHead",
           "SpeedDirectionHead", "signed_speed_index", "speed_direction_probabilities",
           "split_signed_speed"]


def signed_speed_index(
    speed: torch.Tensor, direction: torch.Tensor, *, num_directions: int
) -> torch.Tensor:
    """Class of the joint signed-speed softmax: `speed_index * num_directions + direction_index`."""
    return speed * num_directions + direction


def split_signed_speed(
    index: torch.Tensor, *, num_directions: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(speed_index, direction_index)` of joint signed-speed classes (`signed_speed_index`'s
    inverse)."""
    return index // num_directions, index % num_directions


def speed_direction_probabilities(
    outputs: dict[str, torch.Tensor], *, num_speeds: int, num_directions: int
) -> torch.Tensor:
    """`B x S x D` probability of each (speed, direction) pair from a head's logits.

    `outputs`: the joint `signed_speed` logits (`B x S*D`, classes as `signed_speed_index`),
    or `speed` (`B x S`) and `direction` (`B x D`) logits, whose softmaxes multiply; without
    a `direction` reading (a forward-only objective) every clip plays forward (`D` = 1).
    """
    if "signed_speed" in outputs:
        return outputs["signed_speed"].float().softmax(-1).view(-1, num_speeds, num_directions)
    speed = outputs["speed"].float().softmax(-1)
    if "direction" not in outputs:
        if num_directions != 1:
            raise ValueError(f"no direction logits for {num_directions} directions")
        return speed[:, :, None]
    direction = outputs["direction"].float().softmax(-1)
    return speed[:, :, None] * direction[:, None, :]


class PerClipHead(nn.Module):
    """Per-clip readings (`speed`, `direction`, `rotation`, ...): one linear softmax head each.

    (feats `B x D`) -> `{name: B x classes[name]}` logits. Each head is the attribute `name`,
    so its weights are `name.weight` / `name.bias` in the state dict.
    """

    def __init__(self, in_features: int, *, classes: dict[str, int]) -> None:
        super().__init__()
        self.names = tuple(classes)
        for name, count in classes.items():
            self.add_module(name, nn.Linear(in_features, count))

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)(feats) for name in self.names}


class SpeedDirectionHead(PerClipHead):
    """The `classify` objective: each clip's speed class and playback direction.

    (feats `B x D`) -> `{"speed": B x num_speeds, "direction": B x num_directions}` logits, or
    with `joint=True` one softmax over signed speeds, `{"signed_speed": B x S*num_directions}`,
    class `k = speed_index * num_directions + direction_index` (`signed_speed_index`).
    """

    def __init__(
        self, in_features: int, *, num_speeds: int, num_directions: int, joint: bool = False
    ) -> None:
        super().__init__(in_features, classes={"signed_speed": num_speeds * num_directions}
                         if joint else {"speed": num_speeds, "direction": num_directions})
        self.joint = joint


class ClipOrderHead(nn.Module):
    """The `sort` and `vcop` objectives (VCOP's head): which permutation orders the N clips.

    (feats `B x N x D`) -> `B x N!` logits. Every pair `(i, j)` of
    `itertools.combinations(range(N), 2)` is concatenated (`B x 2D`) and coded by a shared
    FC(hidden) + ReLU; the pair codes are concatenated, passed through dropout and an FC to
    `N!` classes, indexed as `list(itertools.permutations(range(N)))`.
    """

    def __init__(
        self, in_features: int, *, num_clips: int, hidden: int = 512, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if num_clips < 2:
            raise ValueError(f"ClipOrderHead needs at least 2 clips, got {num_clips}")
        self.num_clips = num_clips
        pairs = list(itertools.combinations(range(num_clips), 2))
        self.register_buffer("pairs", torch.tensor(pairs).t(), persistent=False)  # 2 x num_pairs
        self.pair = nn.Sequential(nn.Linear(2 * in_features, hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(len(pairs) * hidden, math.factorial(num_clips))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.dim() != 3 or feats.shape[1] != self.num_clips:
            raise ValueError(
                f"ClipOrderHead: expected B x {self.num_clips} x D features, "
                f"got shape {tuple(feats.shape)}"
            )
        first, second = self.pairs
        pairs = torch.cat([feats[:, first], feats[:, second]], dim=2)  # B x num_pairs x 2D
        codes = self.pair(pairs).flatten(1)  # B x num_pairs*hidden
        return self.classifier(self.dropout(codes))


class LinearClassifier(nn.Module):
    """Fine-tuning classifier: (feats `B x D`) -> dropout -> linear -> `B x num_classes`."""

    def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(feats))


class ProjectionHead(nn.Module):
    """Instance-discrimination embedding (the `speed_contrast` objective): (feats `B x D`) ->
    `B x out_features`, unit length.

    An MLP `D -> hidden -> ReLU -> out_features` (MoCo v2's and PCL's head), or with
    `hidden=0` one linear layer (RSPNet's default). Kept apart from the speed/direction head,
    so the contrastive embedding does not have to serve the speed readings.
    """

    def __init__(self, in_features: int, *, out_features: int = 128, hidden: int = 0) -> None:
        super().__init__()
        if out_features < 1 or hidden < 0:
            raise ValueError(f"ProjectionHead: out_features must be >= 1 and hidden >= 0, got "
                             f"{out_features} and {hidden}")
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_features)) if hidden else \
            nn.Linear(in_features, out_features)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(feats), dim=-1)
