"""3D ResNets with basic blocks: R3D (full 3x3x3 convolutions) and R(2+1)D (each 3x3x3
convolution factored into a 1x3x3 spatial and a 3x1x1 temporal one), Tran et al., CVPR 2018,
laid out as torchvision's video ResNets (no max pool in the stem; stages 2-4 halve time and
space), with a pluggable norm layer.

R(2+1)D chooses the channels between each spatial and temporal convolution,
`M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out))`, so that the pair has as many weights
as the 3D convolution it replaces; this holds for the stem and for every block convolution
(torchvision instead fixes the stem at 45 and reuses the first convolution's `M` for the
second one of a block).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .backbone import Backbone, frames_after
from .conv import Conv3d
from .norm import NormFactory

__all__ = ["ResNet3d", "r2plus1d_10", "r2plus1d_18", "r3d_10", "r3d_18"]

_WIDTHS = (64, 128, 256, 512)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _factored_channels(in_channels: int, out_channels: int, kernel: Sequence[int]) -> int:
    t, h, w = kernel
    return (t * h * w * in_channels * out_channels) // (h * w * in_channels + t * out_channels)


# A conv builder makes the (possibly factored) convolution of a block or stem:
# (in_channels, out_channels, kernel, stride, padding, frames, stage, norm) -> (module, frames out)
ConvBuilder = Callable[..., tuple[nn.Module, int]]


def conv3d(
    in_channels: int,
    out_channels: int,
    *,
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
    padding: tuple[int, int, int],
    frames: int,
    stage: int,
    norm: NormFactory,
) -> tuple[nn.Module, int]:
    """A full 3D convolution (R3D). Returns it and the temporal length of its output."""
    conv = Conv3d(in_channels, out_channels, kernel, stride, padding, bias=False)
    return conv, frames_after(frames, conv)


def conv2plus1d(
    in_channels: int,
    out_channels: int,
    *,
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
    padding: tuple[int, int, int],
    frames: int,
    stage: int,
    norm: NormFactory,
) -> tuple[nn.Module, int]:
    """Spatial 1 x k x k conv -> norm -> ReLU -> temporal k x 1 x 1 conv (R(2+1)D)."""
    mid = _factored_channels(in_channels, out_channels, kernel)
    spatial = Conv3d(
        in_channels,
        mid,
        (1, kernel[1], kernel[2]),
        (1, stride[1], stride[2]),
        (0, padding[1], padding[2]),
        bias=False,
    )
    temporal = Conv3d(
        mid, out_channels, (kernel[0], 1, 1), (stride[0], 1, 1), (padding[0], 0, 0), bias=False
    )
    frames = frames_after(frames, spatial)
    mid_norm = norm(mid, frames=frames, stage=stage)
    block = nn.Sequential(spatial, mid_norm, nn.ReLU(inplace=True), temporal)
    return block, frames_after(frames, temporal)


class BasicBlock(nn.Module):
    """conv -> norm -> ReLU -> conv -> norm, plus the (projected) input, -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        frames: int,
        stage: int,
        conv: ConvBuilder,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        geometry = {"kernel": (3, 3, 3), "padding": (1, 1, 1), "stage": stage, "norm": norm}
        self.conv1, mid_frames = conv(
            in_channels, out_channels, stride=(stride,) * 3, frames=frames, **geometry
        )
        self.norm1 = norm(out_channels, frames=mid_frames, stage=stage)
        self.conv2, self.out_frames = conv(
            out_channels, out_channels, stride=(1, 1, 1), frames=mid_frames, **geometry
        )
        self.norm2 = norm(out_channels, frames=self.out_frames, stage=stage)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            projection = Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.downsample = nn.Sequential(
                projection,
                norm(out_channels, frames=frames_after(frames, projection), stage=stage),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


class ResNet3d(Backbone):
    """3D ResNet: stem (3 x 7 x 7 conv, spatial stride 2) and four stages of basic blocks.

    `B x 3 x T x H x W` -> `B x 512*width`; last map `B x D x T/8 x H/16 x W/16`.
    Temporal length per stage at T = 16: 16 (stem), 16, 8, 4, 2.
    """

    def __init__(
        self,
        *,
        conv: ConvBuilder,
        blocks: Sequence[int],
        norm: NormFactory,
        clip_len: int = 16,
        width: float = 1.0,
        input_mode: str = "rgb",
    ) -> None:
        super().__init__(clip_len=clip_len, input_mode=input_mode)
        widths = [_scaled(c, width) for c in _WIDTHS]
        stem_conv, frames = conv(
            3,
            widths[0],
            kernel=(3, 7, 7),
            stride=(1, 2, 2),
            padding=(1, 3, 3),
            frames=clip_len,
            stage=0,
            norm=norm,
        )
        self.stem = nn.Sequential(
            stem_conv, norm(widths[0], frames=frames, stage=0), nn.ReLU(inplace=True)
        )
        in_channels = widths[0]
        stages = []
        for stage, (channels, num_blocks) in enumerate(zip(widths, blocks, strict=True), 1):
            layers = []
            for i in range(num_blocks):
                block = BasicBlock(
                    in_channels,
                    channels,
                    stride=2 if stage > 1 and i == 0 else 1,
                    frames=frames,
                    stage=stage,
                    conv=conv,
                    norm=norm,
                )
                layers.append(block)
                frames, in_channels = block.out_frames, channels
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = in_channels
        self._finish_init(norm)

    def stages(self) -> list[nn.Module]:
        """stem, layer1 ... layer4; the last gives `B x D x T/8 x H/16 x W/16`."""
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]


def r3d_18(
    *, norm: NormFactory, clip_len: int = 16, width: float = 1.0, input_mode: str = "rgb"
) -> ResNet3d:
    """R3D-18, blocks (2, 2, 2, 2): 33,166,272 parameters with BatchNorm at width 1.0
    (33,169,472 with TGN, g=4, T=16)."""
    return ResNet3d(conv=conv3d, blocks=(2, 2, 2, 2), norm=norm, clip_len=clip_len, width=width,
                    input_mode=input_mode)


def r3d_10(
    *, norm: NormFactory, clip_len: int = 16, width: float = 1.0, input_mode: str = "rgb"
) -> ResNet3d:
    """R3D-10, blocks (1, 1, 1, 1): 14,361,792 parameters with BatchNorm at width 1.0
    (14,363,712 with TGN, g=4, T=16)."""
    return ResNet3d(conv=conv3d, blocks=(1, 1, 1, 1), norm=norm, clip_len=clip_len, width=width,
                    input_mode=input_mode)


def r2plus1d_18(
    *, norm: NormFactory, clip_len: int = 16, width: float = 1.0, input_mode: str = "rgb"
) -> ResNet3d:
    """R(2+1)D-18, blocks (2, 2, 2, 2): 33,178,597 parameters with BatchNorm at width
    1.0 (33,189,779 with TGN, g=4, T=16)."""
    return ResNet3d(
        conv=conv2plus1d, blocks=(2, 2, 2, 2), norm=norm, clip_len=clip_len, width=width,
        input_mode=input_mode,
    )


def r2plus1d_10(
    *, norm: NormFactory, clip_len: int = 16, width: float = 1.0, input_mode: str = "rgb"
) -> ResNet3d:
    """R(2+1)D-10, blocks (1, 1, 1, 1): 14,365,477 parameters with BatchNorm at width
    1.0 (14,372,499 with TGN, g=4, T=16)."""
    return ResNet3d(
        conv=conv2plus1d, blocks=(1, 1, 1, 1), norm=norm, clip_len=clip_len, width=width,
        input_mode=input_mode,
    )
