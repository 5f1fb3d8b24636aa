"""3D CNN backbones (C3D, R3D, R(2+1)D) with pluggable normalization, TGN, pretext heads."""

from .backbone import Backbone
from .norm import NormFactory, TemporalGroupNorm, convert_sync_tgn
from .performance import configure_for_speed
from .registry import build_backbone, list_backbones

__all__ = [
    "Backbone",
    "NormFactory",
    "TemporalGroupNorm",
    "build_backbone",
    "configure_for_speed",
    "convert_sync_tgn",
    "list_backbones",
]
