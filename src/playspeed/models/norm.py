"""Normalization layers for 3D CNNs: layer-dependable temporal group normalization (TGN).

`TemporalGroupNorm` is BatchNorm with separate statistics, affine parameters and running
statistics for `P` contiguous groups of frames (docs/method.md#temporal-group-normalization).
`NormFactory` builds the norm layers of a backbone from the temporal length `T_l` each layer
sees at the training clip length: `P_l = max(1, T_l // frames_per_group)` by default.

Implementation: for `T = P * L` frames the `P` groups are moved into the channel axis, giving a
`B x (P*C) x L x H x W` tensor on which one native batch-norm call computes every group's
statistics (fp32 accumulation, fused kernels, bf16 and channels-last support). For contiguous
inputs that move is a free view; for channels-last inputs it is one permuted copy each way
(the groups of a channel are not adjacent in that layout). Uneven splits (`T mod P != 0`) fold
into two such tensors, one per group length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

__all__ = [
    "NormFactory",
    "TemporalGroupNorm",
    "convert_sync_tgn",
    "num_temporal_groups",
]

NORMS = ("tgn", "bn", "gn")


# A split of T frames into P groups: (number of groups, frames per group) runs, as
# torch.tensor_split makes them (the first T mod P groups one frame longer).
Chunks = tuple[tuple[int, int], ...]


def _chunks(frames: int, groups: int) -> Chunks:
    length, longer = divmod(frames, groups)
    if longer == 0:
        return ((groups, length),)
    return ((longer, length + 1), (groups - longer, length))


def _is_channels_last(x: torch.Tensor) -> bool:
    # A tensor can be both (C == 1 or T*H*W == 1); the contiguous path serves it then.
    return x.stride(1) == 1 and not x.is_contiguous()


def _folded_pairs(x: torch.Tensor, zs: Sequence[torch.Tensor], chunks: Chunks, channels_last: bool):
    """Yields matching views (part of x, folded tensor) for copies in either direction.

    Folded tensor k is `B x (P_k*C) x L_k x H x W`: channels-last with channel p*C + c when
    `channels_last`, else contiguous with channel c*P_k + p.
    """
    b, c, _, h, w = x.shape
    start = 0
    for (groups, length), z in zip(chunks, zs, strict=True):
        part = x[:, :, start : start + groups * length]
        start += groups * length
        if channels_last:
            yield (
                part.unflatten(2, (groups, length)).permute(0, 3, 4, 5, 2, 1),
                z.permute(0, 2, 3, 4, 1).unflatten(4, (groups, c)),
            )
        else:
            # A view for the freshly allocated tensors written to; a copy only for a source
            # gradient in an unexpected layout.
            yield part, z.reshape(b, c, groups * length, h, w)


def _empty(shape, like: torch.Tensor, channels_last: bool) -> torch.Tensor:
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=layout)


def _fold(x: torch.Tensor, chunks: Chunks, channels_last: bool) -> list[torch.Tensor]:
    """`B x C x T x H x W` -> one `B x (P_k*C) x L_k x H x W` tensor per chunk (copies)."""
    b, c, _, h, w = x.shape
    zs = [_empty((b, groups * c, length, h, w), x, channels_last) for groups, length in chunks]
    for part, z in _folded_pairs(x, zs, chunks, channels_last):
        z.copy_(part)
    return zs


def _unfold(zs: Sequence[torch.Tensor], chunks: Chunks, channels_last: bool) -> torch.Tensor:
    """Inverse of `_fold`."""
    b, _, _, h, w = zs[0].shape
    c = zs[0].shape[1] // chunks[0][0]
    x = _empty((b, c, sum(g * n for g, n in chunks), h, w), zs[0], channels_last)
    for part, z in _folded_pairs(x, zs, chunks, channels_last):
        part.copy_(z)
    return x


class _Fold(Function):
    # Hand-written backwards keep gradients dense and in the input's layout: autograd's own
    # (through slicing, permute and reshape) would build zero-filled full-size gradients per
    # chunk and hand the previous convolution a layout it must convert back.
    @staticmethod
    def forward(ctx, x: torch.Tensor, chunks: Chunks, channels_last: bool):
        ctx.chunks, ctx.channels_last = chunks, channels_last
        return tuple(_fold(x, chunks, channels_last))

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        return _unfold(grads, ctx.chunks, ctx.channels_last), None, None


class _Unfold(Function):
    @staticmethod
    def forward(ctx, chunks: Chunks, channels_last: bool, *zs: torch.Tensor) -> torch.Tensor:
        ctx.chunks, ctx.channels_last = chunks, channels_last
        return _unfold(zs, chunks, channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, *_fold(grad, ctx.chunks, ctx.channels_last)


class _SyncBatchNorm(Function):
    """Batch norm over `B x C x ...` with statistics reduced across the processes of `group`.

    Portable (any device, any backend, gloo included), unlike `nn.SyncBatchNorm`, which needs
    GPU-only kernels. Per-process count, mean and centred sum of squares (at least fp32) are
    gathered and combined exactly (no sum-of-squares cancellation); the backward all-reduces
    the two sums the input gradient needs, while parameter gradients stay local for DDP to
    average.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, group):
        dims = [0, *range(2, x.dim())]
        count = x.numel() // x.shape[1]
        accumulate = torch.promote_types(x.dtype, torch.float32)
        var, mean = torch.var_mean(x.to(accumulate), dim=dims, correction=0)
        local = torch.stack([torch.full_like(mean, count), mean, var * count])
        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
        dist.all_gather(gathered, local, group=group)
        counts, means, sq_dev = torch.stack(gathered).unbind(1)  # each world x C
        total = counts.sum(0)
        mean = (counts * means).sum(0) / total
        var = (sq_dev + counts * (means - mean) ** 2).sum(0) / total
        total = int(total[0].item())
        if total < 2:
            raise ValueError(
                "TemporalGroupNorm: expected more than 1 value per channel when training"
            )
        with torch.no_grad():
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * (total / (total - 1))).to(running_var.dtype), momentum)
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.count, ctx.group = total, group
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        grad32 = grad.to(mean.dtype)
        xmu = x.to(mean.dtype) - mean.view(shape)
        sum_dy = grad32.sum(dims)
        sum_dy_xmu = (grad32 * xmu).sum(dims)
        grad_weight = sum_dy_xmu * invstd
        grad_bias = sum_dy
        reduced = torch.cat([sum_dy, sum_dy_xmu])
        dist.all_reduce(reduced, group=ctx.group)
        mean_dy, mean_dy_xmu = (reduced / ctx.count).chunk(2)
        scale = (invstd * weight.to(mean.dtype)).view(shape)
        grad_x = (
            grad32 - mean_dy.view(shape) - xmu * (invstd**2 * mean_dy_xmu).view(shape)
        ) * scale
        return (
            grad_x.to(x.dtype),
            grad_weight.to(weight.dtype),
            grad_bias.to(weight.dtype),
            *([None] * 5),
        )


class TemporalGroupNorm(nn.Module):
    """Batch norm with per-temporal-group statistics and affine parameters
    (docs/method.md#temporal-group-normalization).

    Input and output: `B x C x T x H x W`. The `T` frames are split into `num_groups` (`P`)
    contiguous groups as `torch.tensor_split(x, P, dim=2)` splits them; group `p` is normalized
    with per-channel statistics over `(B, its frames, H, W)` (training) or its running
    statistics (eval), then scaled and shifted by `weight[p]`, `bias[p]`.

    Parameters `weight`, `bias` and buffers `running_mean`, `running_var` are `P x C`. The
    running variance is updated with the unbiased batch variance, as BatchNorm does. With
    `P = 1` the layer computes exactly what `nn.BatchNorm3d` computes.

    `sync=True` reduces the statistics across the processes of `process_group` (default: the
    world) when `torch.distributed` is initialized, as `nn.SyncBatchNorm` does for BatchNorm;
    see `convert_sync_tgn`.
    """

    def __init__(
        self,
        num_channels: int,
        num_groups: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        sync: bool = False,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        super().__init__()
        if num_channels < 1 or num_groups < 1:
            raise ValueError(
                f"TemporalGroupNorm: num_channels ({num_channels}) and num_groups ({num_groups}) "
                "must be positive"
            )
        self.num_channels = num_channels
        self.num_groups = num_groups
        self.eps = eps
        self.momentum = momentum
        self.sync = sync
        self.process_group = process_group
        self.weight = nn.Parameter(torch.ones(num_groups, num_channels))
        self.bias = nn.Parameter(torch.zeros(num_groups, num_channels))
        self.register_buffer("running_mean", torch.zeros(num_groups, num_channels))
        self.register_buffer("running_var", torch.ones(num_groups, num_channels))

    def extra_repr(self) -> str:
        return (
            f"{self.num_channels}, num_groups={self.num_groups}, eps={self.eps}, "
            f"momentum={self.momentum}" + (", sync=True" if self.sync else "")
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"TemporalGroupNorm: expected B x {self.num_channels} x T x H x W input, "
                f"got shape {tuple(x.shape)}"
            )
        b, c, frames, h, w = x.shape
        groups = self.num_groups
        if frames < groups:
            raise ValueError(
                f"TemporalGroupNorm: input has {frames} frames but the layer has {groups} "
                "temporal groups (fixed when the network was built for its training clip "
                "length); feed clips long enough to give every group a frame"
            )
        chunks = _chunks(frames, groups)
        channels_last = _is_channels_last(x)
        if len(chunks) == 1 and not (channels_last and groups > 1):
            # Free views: P = 1 is plain batch norm; for a contiguous input, channel c's
            # frames are P runs of L frames, so B x C x T x H x W is B x (C*P) x L x H x W.
            z = x if groups == 1 else x.contiguous().view(b, c * groups, frames // groups, h, w)
            return self._normalize(z, 0, groups, group_major=False).view(b, c, frames, h, w)
        if not self.training and not self._needs_grad(x):
            return self._affine(x, chunks)
        zs = _Fold.apply(x, chunks, channels_last)
        ys, first = [], 0
        for (count, _), z in zip(chunks, zs, strict=True):
            ys.append(self._normalize(z, first, first + count, group_major=channels_last))
            first += count
        return _Unfold.apply(chunks, channels_last, *ys)

    def _needs_grad(self, x: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and (
            x.requires_grad or self.weight.requires_grad or self.bias.requires_grad
        )

    def _affine(self, x: torch.Tensor, chunks: Chunks) -> torch.Tensor:
        """Eval mode without autograd, channels-last `x`: each group is a per-channel affine map.

        Channel-innermost views `B x P_k x (L_k*H*W) x C` let one broadcast multiply-add per
        chunk apply it in place of the two fold copies and the batch norm.
        """
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = (self.bias - self.running_mean * scale).to(x.dtype)
        scale = scale.to(x.dtype)  # fp32 coefficients would send bf16 inputs down a slow path
        out = torch.empty_like(x)
        b, c = x.shape[:2]
        start = first = 0
        for groups, length in chunks:
            frames = slice(start, start + groups * length)
            rows = slice(first, first + groups)
            torch.addcmul(
                shift[rows].view(1, groups, 1, c),
                x[:, :, frames].permute(0, 2, 3, 4, 1).view(b, groups, -1, c),
                scale[rows].view(1, groups, 1, c),
                out=out[:, :, frames].permute(0, 2, 3, 4, 1).view(b, groups, -1, c),
            )
            start, first = frames.stop, rows.stop
        return out

    def _normalize(self, z: torch.Tensor, first: int, last: int, group_major: bool) -> torch.Tensor:
        """Batch norm of folded `z` (channel p*C + c if `group_major`, else c*P + p) with the
        parameters and statistics of groups `first:last`."""
        weight, bias = self.weight[first:last], self.bias[first:last]
        # The batch norm updates a private copy of the running statistics, written back after:
        # updating slices of the buffers in place would bump the version of tensors autograd
        # saved for an earlier chunk.
        stats = torch.stack([self.running_mean[first:last], self.running_var[first:last]])
        if not group_major:
            weight, bias, stats = weight.t(), bias.t(), stats.transpose(1, 2).contiguous()
        running_mean, running_var = stats.flatten(1)
        y = self._batch_norm(z, weight.reshape(-1), bias.reshape(-1), running_mean, running_var)
        if self.training:
            if not group_major:
                stats = stats.transpose(1, 2)
            with torch.no_grad():
                self.running_mean[first:last] = stats[0]
                self.running_var[first:last] = stats[1]
        return y

    def _batch_norm(self, z, weight, bias, running_mean, running_var) -> torch.Tensor:
        if self.training and self.sync and dist.is_available() and dist.is_initialized():
            group = self.process_group or dist.group.WORLD
            if dist.get_world_size(group) > 1:
                return _SyncBatchNorm.apply(
                    z, weight, bias, running_mean, running_var, self.momentum, self.eps, group
                )
        return F.batch_norm(
            z, running_mean, running_var, weight, bias, self.training, self.momentum, self.eps
        )


def convert_sync_tgn(
    module: nn.Module, process_group: dist.ProcessGroup | None = None
) -> nn.Module:
    """Makes every `TemporalGroupNorm` in `module` synchronise its statistics across processes.

    The TGN counterpart of `nn.SyncBatchNorm.convert_sync_batchnorm` (which callers apply as
    well when the network also holds BatchNorm layers). Changes `module` in place and returns it.
    """
    for layer in module.modules():
        if isinstance(layer, TemporalGroupNorm):
            layer.sync = True
            layer.process_group = process_group
    return module


def num_temporal_groups(frames: int, frames_per_group: int) -> int:
    """The layer-dependable rule: `P_l = max(1, T_l // g)`."""
    if frames_per_group < 1:
        raise ValueError(f"frames_per_group must be >= 1, got {frames_per_group}")
    return max(1, frames // frames_per_group)


class NormFactory:
    """Builds a backbone's norm layers: `factory(num_channels, frames=T_l, stage=s)`.

    norm: "tgn" (`TemporalGroupNorm` with `P_l = max(1, T_l // frames_per_group)`, or
    `groups_per_stage[stage]`), "bn" (`nn.BatchNorm3d`) or "gn" (`nn.GroupNorm` with
    `gcd(gn_groups, C)` groups, since narrow or factored layers have channel counts 32 does not
    divide).

    `frames` is the temporal length the layer sees at the training clip length and `stage`
    the network stage (0 = stem, 1-4 = the four resolution stages) the layer belongs to. The
    factory remembers each layer's `T_l` so a backbone can report its `(T_l, P_l)` table.
    """

    def __init__(
        self,
        norm: str = "tgn",
        *,
        frames_per_group: int = 4,
        groups_per_stage: Sequence[int] | None = None,
        gn_groups: int = 32,
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if frames_per_group < 1:
            raise ValueError(f"frames_per_group must be >= 1, got {frames_per_group}")
        if groups_per_stage is not None:
            if norm != "tgn":
                raise ValueError("groups_per_stage applies to norm='tgn' only")
            groups_per_stage = tuple(int(p) for p in groups_per_stage)
            if any(p < 1 for p in groups_per_stage):
                raise ValueError(f"groups_per_stage must be positive, got {groups_per_stage}")
        self.norm = norm
        self.frames_per_group = frames_per_group
        self.groups_per_stage = groups_per_stage
        self.gn_groups = gn_groups
        self.frames: dict[int, int] = {}

    def groups(self, frames: int, stage: int) -> int:
        """The temporal group count `P_l` of a layer seeing `frames` frames in `stage`."""
        if self.norm != "tgn":
            return 1
        if self.groups_per_stage is None:
            return num_temporal_groups(frames, self.frames_per_group)
        if stage >= len(self.groups_per_stage):
            raise ValueError(
                f"groups_per_stage has {len(self.groups_per_stage)} entries; stage {stage} "
                "needs one (stem first)"
            )
        groups = self.groups_per_stage[stage]
        if groups > frames:
            raise ValueError(
                f"groups_per_stage[{stage}] = {groups} exceeds the {frames} frames that stage "
                "sees at this clip length"
            )
        return groups

    def __call__(self, num_channels: int, *, frames: int, stage: int) -> nn.Module:
        if self.norm == "bn":
            layer: nn.Module = nn.BatchNorm3d(num_channels)
        elif self.norm == "gn":
            layer = nn.GroupNorm(math.gcd(self.gn_groups, num_channels), num_channels)
        else:
            layer = TemporalGroupNorm(num_channels, self.groups(frames, stage))
        self.frames[id(layer)] = frames
        return layer
