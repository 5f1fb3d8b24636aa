"""Memory-format and precision settings for fast training and inference.

With `channels_last_3d` the convolutions use their channels-last kernels (oneDNN on CPU, cuDNN
on CUDA): 1.4x fp32 in the default layout on an AVX2 CPU, and together with bf16 autocast
several times faster on a CPU with native bf16. Autocast itself is the trainer's job
(Lightning `precision="bf16-mixed"`, or `torch.autocast(device_type, dtype=torch.bfloat16)`);
which precision is fast depends on the machine, so `"auto"` picks it
(:func:`resolve_precision`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MEMORY_FORMATS", "configure_for_speed", "has_fast_bf16", "resolve_memory_format",
           "resolve_precision"]

MEMORY_FORMATS = {
    "contiguous": torch.contiguous_format,
    "channels_last_3d": torch.channels_last_3d,
}


def resolve_memory_format(name: str) -> torch.memory_format:
    """The torch memory format called `name` ("contiguous" or "channels_last_3d")."""
    if name not in MEMORY_FORMATS:
        raise ValueError(
            f"unknown memory format {name!r}; choose one of {', '.join(MEMORY_FORMATS)}"
        )
    return MEMORY_FORMATS[name]


def configure_for_speed(model: nn.Module, *, memory_format: str = "channels_last_3d") -> nn.Module:
    """Puts the 5-D weights of `model` in `memory_format`, in place; returns `model`.

    Inputs need not be converted: a convolution with channels-last weights returns a
    channels-last map, and every later layer keeps that layout.
    """
    return model.to(memory_format=resolve_memory_format(memory_format))


def has_fast_bf16(device_type: str) -> bool:
    """Whether bf16 math runs natively on `device_type` ("cpu" | "cuda").

    CUDA: devices that support bf16 (Ampere and later). CPU: AVX512-BF16 or AMX. Elsewhere
    oneDNN emulates bf16, and bf16 autocast trains a 3D CNN ~15x slower than fp32 (measured
    on an AVX2-only CPU with `benchmarks/model.py`).
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: str, *, device_type: str) -> str:
    """Lightning's precision flag for `precision` on `device_type`: `"auto"` is bf16 autocast
    where bf16 is native, fp16 autocast on older GPUs and fp32 on other CPUs; any other value
    is returned unchanged."""
    if precision != "auto":
        return precision
    if has_fast_bf16(device_type):
        return "bf16-mixed"
    return "16-mixed" if device_type == "cuda" else "32-true"
