"""C3D (Tran et al., ICCV 2015) with a pluggable norm layer, as the self-supervised video
literature uses it (VCOP, PRP): 8 convolutions 3x3x3, each followed by norm and ReLU, max
pools after conv1a (1x2x2), conv2a, conv3b and conv4b (2x2x2), and a global average pool
in place of pool5 and the fully connected layers."""

from __future__ import annotations

from torch import nn

from .backbone import Backbone, frames_after
from .conv import Conv3d
from .norm import NormFactory

__all__ = ["C3D", "c3d"]

# (output channels of each conv, pool after the stage); stages: conv1, conv2, conv3, conv4, conv5.
_STAGES = (
    ((64,), (1, 2, 2)),
    ((128,), (2, 2, 2)),
    ((256, 256), (2, 2, 2)),
    ((512, 512), (2, 2, 2)),
    ((512, 512), None),
)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class C3D(Backbone):
    """C3D encoder: `B x 3 x T x H x W` -> `B x 512*width`; last map `B x D x T/8 x H/16 x W/16`.

    Convolutions carry no bias since a norm layer follows each.
    """

    def __init__(self, *, norm: NormFactory, clip_len: int = 16, width: float = 1.0,
                 input_mode: str = "rgb") -> None:
        super().__init__(clip_len=clip_len, input_mode=input_mode)
        frames, in_channels = clip_len, 3
        stages = []
        for stage, (channels, pool) in enumerate(_STAGES):
            layers: list[nn.Module] = []
            for channels_out in channels:
                out = _scaled(channels_out, width)
                conv = Conv3d(in_channels, out, 3, padding=1, bias=False)
                frames = frames_after(frames, conv)
                layers += [conv, norm(out, frames=frames, stage=stage), nn.ReLU(inplace=True)]
                in_channels = out
            if pool is not None:
                layers.append(nn.MaxPool3d(pool, stride=pool))
                frames = frames_after(frames, layers[-1])
            stages.append(nn.Sequential(*layers))
        self.conv1, self.conv2, self.conv3, self.conv4, self.conv5 = stages
        self.feature_dim = in_channels
        self._finish_init(norm)

    def stages(self) -> list[nn.Module]:
        """conv1 ... conv5; the last gives `B x D x T/8 x H/16 x W/16`."""
        return [self.conv1, self.conv2, self.conv3, self.conv4, self.conv5]


def c3d(*, norm: NormFactory, clip_len: int = 16, width: float = 1.0,
        input_mode: str = "rgb") -> C3D:
    """C3D: 27,658,688 parameters with BatchNorm at width 1.0 (27,660,864 with TGN, g=4, T=16)."""
    return C3D(norm=norm, clip_len=clip_len, width=width, input_mode=input_mode)
