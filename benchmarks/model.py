"""Backbone throughput: train and inference clips/s per backbone and norm, fp32 eager (default
memory layout) against the fast path (channels_last_3d + bf16 autocast), in one run; then the
cost of TemporalGroupNorm against BatchNorm3d alone.

    python benchmarks/model.py                         # all backbones, width 0.5, a few minutes
    python benchmarks/model.py --width 1.0 --batch 8   # the full-size models
    python benchmarks/model.py --backbones r3d_18 --norms bn tgn gn --threads 2

Targets: fast path >= 4x fp32 eager on CPU for every backbone; TGN within 10% of BN.
Timings are the best of --iters calls; a shared CPU still makes single figures noisy, so
the ratios within one run are what to read.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from playspeed.models import TemporalGroupNorm, build_backbone, configure_for_speed, list_backbones


def _timed(step: Callable[[], None], *, iters: int, warmup: int, device: torch.device) -> float:
    """Fastest of `iters` calls of `step`, in seconds: other processes on a shared machine only
    ever slow a call down, so the minimum is the steadiest estimate."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def _model_throughput(args, name: str, norm: str, fast: bool) -> tuple[float, float]:
    """(train clips/s, inference clips/s) of one backbone + linear head."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    backbone = build_backbone(name, norm=norm, clip_len=args.frames, width=args.width)
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.feature_dim, 101)).to(device)
    memory_format = torch.contiguous_format
    if fast:
        configure_for_speed(model, memory_format="channels_last_3d")
        memory_format = torch.channels_last_3d
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, 101, (args.batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast)

    def train_step() -> None:
        with autocast():
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode(), autocast():
            model(x)

    model.train()
    train = _timed(train_step, iters=args.iters, warmup=args.warmup, device=device)
    model.eval()
    infer = _timed(infer_step, iters=args.iters, warmup=args.warmup, device=device)
    return args.batch / train, args.batch / infer


def _norm_cost(args) -> None:
    """TGN against BatchNorm3d alone at the size of R3D's first stage: training forward +
    backward, and eval forward under inference mode."""
    device = torch.device(args.device)
    channels = max(1, round(64 * args.width))
    shape = (args.batch, channels, args.frames, args.size // 2, args.size // 2)
    groups = (1, 2, 4)
    print(f"\nnorm layer alone, input {' x '.join(map(str, shape))} (ms)")
    print(f"{'':<38}{'BN':>7}" + "".join(f"{f'TGN P={p}':>10}" for p in groups) + "   TGN/BN")
    for label, dtype, memory_format in (
        ("fp32 contiguous", torch.float32, torch.contiguous_format),
        ("bf16 channels_last_3d", torch.bfloat16, torch.channels_last_3d),
    ):
        x = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=memory_format)
        grad = torch.randn_like(x)
        layers = [torch.nn.BatchNorm3d(channels)] + [TemporalGroupNorm(channels, p) for p in groups]
        for mode in ("train fwd+bwd", "eval fwd"):
            row = []
            for layer in layers:
                layer.to(device).train(mode.startswith("train"))

                def step(layer=layer, mode=mode, x=x, grad=grad) -> None:
                    if mode.startswith("train"):
                        layer(x.detach().requires_grad_()).backward(grad)
                    else:
                        with torch.inference_mode():
                            layer(x)

                row.append(_timed(step, iters=args.iters * 3, warmup=args.warmup, device=device))
            cells = "".join(f"{t * 1e3:>10.1f}" for t in row[1:])
            ratios = " ".join(f"{t / row[0]:.2f}" for t in row[1:])
            print(f"{label + ', ' + mode:<38}{row[0] * 1e3:>7.1f}{cells}   {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backbones", nargs="+", default=list_backbones(), choices=list_backbones()
    )
    parser.add_argument("--norms", nargs="+", default=["bn", "tgn"], choices=["bn", "tgn", "gn"])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-norm-cost", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"device {args.device}, {args.threads} thread(s), batch {args.batch}, "
        f"{args.frames}x{args.size}x{args.size}, width {args.width}; clips/s (best of "
        f"{args.iters}); fast = channels_last_3d + bf16 autocast"
    )
    header = f"{'backbone':<13}{'norm':<5}{'fp32 train':>11}{'fast train':>11}{'speedup':>8}"
    header += f"{'fp32 infer':>11}{'fast infer':>11}{'speedup':>8}"
    print(header)
    results: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    for name in args.backbones:
        for norm in args.norms:
            slow_train, slow_infer = _model_throughput(args, name, norm, fast=False)
            fast_train, fast_infer = _model_throughput(args, name, norm, fast=True)
            results[name, norm] = (slow_train, fast_train, slow_infer, fast_infer)
            print(
                f"{name:<13}{norm:<5}{slow_train:>11.2f}{fast_train:>11.2f}"
                f"{fast_train / slow_train:>7.1f}x{slow_infer:>11.2f}{fast_infer:>11.2f}"
                f"{fast_infer / slow_infer:>7.1f}x",
                flush=True,
            )
    others = [n for n in args.norms if n != "bn"]
    if "bn" in args.norms and others:
        print("\nnorm throughput / BN throughput (fp32 train, fast train, fp32 infer, fast infer)")
        for name in args.backbones:
            base = results[name, "bn"]
            for norm in others:
                ratios = "  ".join(
                    f"{a / b:.2f}" for a, b in zip(results[name, norm], base, strict=True)
                )
                print(f"{name:<13}{norm:<5}{ratios}")
    if not args.skip_norm_cost:
        _norm_cost(args)


if __name__ == "__main__":
    main()
