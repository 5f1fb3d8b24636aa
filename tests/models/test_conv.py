"""The conv guard: bf16 weight gradients of 2-frame inputs match fp32 (the bug it avoids)."""

import pytest
import torch
from torch import nn

from playspeed.models.conv import Conv3d


def _weight_grad(conv: nn.Conv3d, x: torch.Tensor, grad: torch.Tensor, *, bf16: bool):
    conv.weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        conv(x).backward(grad)
    return conv.weight.grad.clone()


@pytest.mark.parametrize("kernel", [(3, 3, 3), (3, 1, 1)])
@pytest.mark.parametrize("frames", [2, 4])
def test_bf16_weight_gradients_match_fp32(kernel, frames):
    torch.manual_seed(0)
    conv = Conv3d(32, 32, kernel, padding=tuple(k // 2 for k in kernel), bias=False)
    x = torch.randn(4, 32, frames, 4, 4)
    grad = torch.randn(4, 32, frames, 4, 4)
    exact = _weight_grad(conv, x, grad, bf16=False)
    for _ in range(3):  # the bug is intermittent in its NaNs, not in its wrong values
        fast = _weight_grad(conv, x, grad, bf16=True)
        assert torch.isfinite(fast).all()
        assert (fast - exact).norm() / exact.norm() < 0.02


def test_guard_is_only_taken_where_needed():
    conv = Conv3d(8, 8, 3, padding=1, bias=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(1, 8, 2, 4, 4)).dtype == torch.float32  # guarded
        assert conv(torch.randn(1, 8, 4, 4, 4)).dtype == torch.bfloat16  # fast path
    assert conv(torch.randn(1, 8, 2, 4, 4)).dtype == torch.float32
