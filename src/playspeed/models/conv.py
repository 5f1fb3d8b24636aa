"""The 3D convolution every backbone uses: ``nn.Conv3d`` plus a guard for a CPU bf16 bug.

In the CPU build of torch 2.13 (oneDNN), a bf16 ``conv3d`` whose input has exactly 2 frames
and whose kernel spans 3 frames (padding 1) returns wrong weight gradients: relative error
about 1 against fp32, sometimes NaN or inf (measured for channels 16-512, batches 2-24,
spatial 2-8, contiguous and channels_last; 1, 3, 4, 5, 6 and 8 frames are fine, and input
gradients are fine). R3D-18's and C3D's last stage and R(2+1)D's last temporal convs see 2
frames at 16-frame clips, so bf16 training on CPU would silently corrupt them and then
diverge. Those calls run in fp32 instead; everything else keeps the bf16 speed-up.
``tests/models/test_conv.py`` checks the guard keeps gradients right.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Conv3d"]


class Conv3d(nn.Conv3d):
    """``nn.Conv3d``; 2-frame inputs to 3-frame kernels under CPU autocast run in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.shape[2] == 2 and self.kernel_size[0] >= 3
                and torch.is_autocast_enabled("cpu")):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)
