"""Shared base of the 3D CNN backbones: input mode, pooled features, last conv map, norm
table."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norm import NormFactory, TemporalGroupNorm

__all__ = ["INPUT_MODES", "UNIT_DIFF_EPS", "Backbone", "frame_differences", "frames_after",
           "unit_energy"]

# What the first convolution sees: the RGB frames, the differences of consecutive frames, or
# those differences scaled to unit RMS per clip.
INPUT_MODES = ("rgb", "frame_diff", "frame_diff_unit")
# Added to a clip's RMS before dividing, in normalised-pixel units: the differences' RMS is
# 0.05-0.6 on moving synthetic clips, so a still clip (RMS ~0) stays near zero, not noise
# blown up to unit energy.
UNIT_DIFF_EPS = 0.01


def frames_after(frames: int, layer: nn.Conv3d | nn.MaxPool3d) -> int:
    """Temporal length after `layer`, read from its kernel, stride, padding and dilation."""

    def first(value: int | tuple[int, ...]) -> int:
        return value[0] if isinstance(value, tuple) else value

    kernel, stride = first(layer.kernel_size), first(layer.stride)
    padding, dilation = first(layer.padding), first(layer.dilation)
    out = (frames + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"{frames} frames are too few for {layer}")
    return out


def frame_differences(x: torch.Tensor) -> torch.Tensor:
    """`B x C x T x H x W` -> `B x C x T x H x W`: frame t holds `x_t - x_(t-1)`, frame 0 is zero.

    Residual frames (Tao et al. 2020) keep what changes and drop what stands still, so a still
    scene cannot tell classes apart. The leading zero frame keeps T, and with it the TGN group
    counts, as configured.
    """
    if x.ndim != 5:
        raise ValueError(f"expected a B x C x T x H x W batch, got {tuple(x.shape)}")
    # pad's last pair is the T axis: one zero frame in front.
    return F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 0, 0, 0, 1, 0))


def unit_energy(x: torch.Tensor, *, eps: float = UNIT_DIFF_EPS) -> torch.Tensor:
    """`B x C x T x H x W` -> the same, each clip divided by its RMS over C, T, H, W (+ `eps`).

    At a faster playback speed a clip's frames differ more, so the energy of its differences
    alone gives the speed away; at unit energy the pretext has to read how things move.
    """
    if x.ndim != 5:
        raise ValueError(f"expected a B x C x T x H x W batch, got {tuple(x.shape)}")
    rms = x.pow(2).mean(dim=(1, 2, 3, 4), keepdim=True).sqrt()
    return x / (rms + eps)


class Backbone(nn.Module):
    """A clip encoder: `B x 3 x T x H x W` -> `B x feature_dim`.

    Clips are RGB either way; with `input_mode="frame_diff"` the first stage sees their
    `frame_differences`, with `"frame_diff_unit"` those differences at `unit_energy`.

    Subclasses build their layers, calling `norm(channels, frames=T_l, stage=s)` for every norm
    layer with the temporal length `T_l` it sees at `clip_len`, list them in `stages`, and call
    `_finish_init(norm)` at the end of `__init__`.
    """

    feature_dim: int

    def __init__(self, *, clip_len: int, input_mode: str = "rgb") -> None:
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f"unknown input_mode {input_mode!r}; choose one of "
                             f"{', '.join(INPUT_MODES)}")
        self.clip_len = clip_len
        self.input_mode = input_mode
        self._norm_table: list[tuple[str, int, int]] = []

    def stages(self) -> list[nn.Module]:
        """The stages, in the order the input flows through them."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """`B x 3 x T x H x W` -> the last stage's map `B x D x T' x H' x W'`."""
        if self.input_mode != "rgb":
            x = frame_differences(x)
        if self.input_mode == "frame_diff_unit":
            x = unit_energy(x)
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`B x 3 x T x H x W` -> globally average-pooled features `B x D`."""
        return F.adaptive_avg_pool3d(self.forward_features(x), 1).flatten(1)

    def norm_table(self) -> list[tuple[str, int, int]]:
        """`(layer name, T_l, P_l)` per norm layer: frames it sees at `clip_len`, temporal groups.

        `P_l` is 1 for BatchNorm and GroupNorm, whose statistics span all frames.
        """
        return list(self._norm_table)

    def _finish_init(self, norm: NormFactory) -> None:
        """He-initialise every 3D convolution (fan-out, for ReLU) and record the norm layers."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        self._norm_table = [
            (
                name,
                norm.frames[id(layer)],
                layer.num_groups if isinstance(layer, TemporalGroupNorm) else 1,
            )
            for name, layer in self.named_modules()
            if id(layer) in norm.frames
        ]
