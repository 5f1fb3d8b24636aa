"""Backbones by name: `build_backbone("r3d_18", norm="tgn", clip_len=16)`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .backbone import Backbone
from .c3d import c3d
from .norm import NormFactory
from .resnet3d import r2plus1d_10, r2plus1d_18, r3d_10, r3d_18

__all__ = ["build_backbone", "list_backbones"]

_BACKBONES: dict[str, Callable[..., Backbone]] = {
    "c3d": c3d,
    "r3d_18": r3d_18,
    "r2plus1d_18": r2plus1d_18,
    "r3d_10": r3d_10,
    "r2plus1d_10": r2plus1d_10,
}


def list_backbones() -> list[str]:
    """Names `build_backbone` accepts."""
    return list(_BACKBONES)


def build_backbone(
    name: str,
    *,
    norm: str = "tgn",
    clip_len: int = 16,
    frames_per_group: int = 4,
    groups_per_stage: Sequence[int] | None = None,
    width: float = 1.0,
    input_mode: str = "rgb",
) -> Backbone:
    """Builds backbone `name` (see `list_backbones`) with every norm layer of kind `norm`.

    norm: "tgn" (layer-dependable temporal group norm), "bn" (BatchNorm3d) or "gn" (GroupNorm).
    clip_len: the training clip length; it fixes each layer's temporal group count
        `P_l = max(1, T_l // frames_per_group)`, or `groups_per_stage[s]` for every layer of
        stage `s` (stem first, five entries) when given.
    width: channel multiplier (0.25, 0.5 for small CPU runs).
    input_mode: "rgb"; "frame_diff": the first stage sees the differences of consecutive
        frames (`frame_differences`); "frame_diff_unit": those differences at unit RMS per
        clip (`unit_energy`). The backbone takes RGB clips either way.
    The result maps `B x 3 x T x H x W` to `B x feature_dim`; T may differ from `clip_len` as
    long as every TGN layer still sees at least `P_l` frames.
    """
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(_BACKBONES)}")
    if clip_len < 1:
        raise ValueError(f"clip_len must be positive, got {clip_len}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    factory = NormFactory(
        norm, frames_per_group=frames_per_group, groups_per_stage=groups_per_stage
    )
    return _BACKBONES[name](norm=factory, clip_len=clip_len, width=width, input_mode=input_mode)
