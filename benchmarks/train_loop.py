"""Pretraining loop throughput: ``pretrain``'s real loop against the bare train step.

Both sides use one config (default ``pretrain/synthetic_cpu``), so one model, one batch size,
one precision and one memory format, measured in the same run:

- ``bare step``: forward, backward and optimiser step (the config's optimiser over the task's
  parameter groups) of the pretext task on one batch of clips held in memory (taken from
  the real loader), nothing else;
- ``end to end``: ``playspeed.tasks.pretext.pretrain`` itself: frame store -> loader ->
  Lightning step, with validation, logging and checkpoints. Clips/s over whole validation
  periods after the first (``trainer.check_val_every_n_epoch`` epochs; the first pays
  one-off costs: worker start, kernel selection) to the end of training; the whole call is
  printed too.

The ratio end to end / bare is what the loop keeps of the model's speed. The bare step is
timed before and after the loop and averaged, as other processes on a shared machine slow
either. On CUDA, the loop is also run for several loader worker counts, to show how many
keep the GPU busy.

    python benchmarks/train_loop.py                              # synthetic_cpu, a few minutes
    python benchmarks/train_loop.py --config pretrain/ucf101_r3d_18 --data DIR  # on a GPU
    python benchmarks/train_loop.py trainer.precision=32-true data.workers=0   # overrides

Data: ``--data DIR`` (a UCF-101 layout root such as ``playspeed synth`` writes), else a
fresh synthetic set; it is prepared into a frame store at the config's ``clip.resize``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from playspeed.config import Config, load_config, override_config
from playspeed.console import quiet_dependencies
from playspeed.data.prepare import prepare_dataset
from playspeed.data.synthetic import write_dataset
from playspeed.tasks.base import build_optimizer
from playspeed.tasks.data import make_loader
from playspeed.tasks.inference import autocast_for
from playspeed.tasks.pretext import PlaybackSpeedPretraining, pretrain, pretrain_datasets
from playspeed.tasks.trainer import training_device_type


class LoopClock(L.Callback):
    """Times the training epochs from ``first_epoch`` on, counts the clips they trained on, and
    splits their time into train steps, validation and the rest (waiting for batches,
    logging, checkpoints, the framework's own work)."""

    def __init__(self, *, first_epoch: int = 1) -> None:
        self.first_epoch = first_epoch
        self.start: float | None = None
        self.end: float | None = None
        self.clips = 0
        self.batch_shape: tuple[int, ...] | None = None
        self.num_parameters = 0
        self.seconds = {"train steps": 0.0, "validation": 0.0}
        self._since: float | None = None

    def _lap(self, module: L.LightningModule) -> float:
        _sync(module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == self.first_epoch:
            self.start = self._lap(module)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.start is not None:
            self._since = self._lap(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        clips = batch["clips"]
        if self.batch_shape is None:
            self.batch_shape = tuple(clips.shape)
            self.num_parameters = sum(p.numel() for p in module.parameters())
        if self.start is not None:
            self.clips += clips.shape[0] * clips.shape[1]
            self.seconds["train steps"] += self._lap(module) - self._since

    def on_validation_start(self, trainer, module) -> None:
        if self.start is not None:
            self._since = self._lap(module)

    def on_validation_end(self, trainer, module) -> None:
        if self.start is not None:
            self.seconds["validation"] += self._lap(module) - self._since

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        _sync(module.device)
        self.end = time.perf_counter()

    @property
    def clips_per_second(self) -> float:
        if self.start is None or self.end is None:
            raise RuntimeError(f"the loop ran {self.first_epoch} epochs or fewer: nothing was "
                               "timed")
        return self.clips / (self.end - self.start)

    def shares(self) -> dict[str, float]:
        """Share of the timed loop in train steps, validation and everything else."""
        total = self.end - self.start
        return {**{name: t / total for name, t in self.seconds.items()},
                "other": 1 - sum(self.seconds.values()) / total}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step(config: Config, *, steps: int, warmup: int = 2) -> dict[str, Any]:
    """Clips/s of the pretext train step alone, on the first batch of the real loader."""
    device = torch.device(training_device_type(config))
    L.seed_everything(config.seed, verbose=False)
    train_set, _ = pretrain_datasets(config)
    batch = next(iter(make_loader(train_set, config, train=True)))
    clips = batch["clips"]
    task = PlaybackSpeedPretraining(config).to(device).train()
    if config.trainer.memory_format == "channels_last_3d":
        task.to(memory_format=torch.channels_last_3d)
    batch = {key: value.to(device) for key, value in batch.items()}
    # the config's optimiser over the task's own parameter groups, as the real loop builds it
    optimizer = build_optimizer(config.optim, task.parameter_groups())

    def step() -> None:
        with autocast_for(config, device):
            loss, _ = task.loss_and_hits(batch)  # what training_step computes
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    return {"clips_per_second": steps * clips.shape[0] * clips.shape[1] / seconds,
            "batch_shape": tuple(clips.shape),
            "num_parameters": sum(p.numel() for p in task.parameters())}


def end_to_end(config: Config, out: Path) -> dict[str, Any]:
    """Clips/s of ``pretrain`` after its first validation period (see :class:`LoopClock`)."""
    clock = LoopClock(first_epoch=config.trainer.check_val_every_n_epoch)
    start = time.perf_counter()
    pretrain(config, out, callbacks=[clock])
    total = time.perf_counter() - start
    return {"clips_per_second": clock.clips_per_second, "batch_shape": clock.batch_shape,
            "num_parameters": clock.num_parameters, "seconds": total, "shares": clock.shares()}


def compare(config: Config, out: Path, *, bare_steps: int) -> dict[str, Any]:
    """Bare step, then the loop, then the bare step again; the bare figure is their mean."""
    before = bare_step(config, steps=bare_steps)
    loop = end_to_end(config, out)
    after = bare_step(config, steps=bare_steps)
    bare = (before["clips_per_second"] + after["clips_per_second"]) / 2
    return {"bare": {**before, "clips_per_second": bare}, "loop": loop,
            "ratio": loop["clips_per_second"] / bare}


def synthetic_data(root: Path, config: Config, *, classes: int | None, videos_per_class: int,
                   seed: int) -> list[str]:
    """Write a synthetic set and its store under ``root``; the overrides that point at them."""
    write_dataset(root, num_classes=classes, videos_per_class=videos_per_class, seed=seed,
                  frames=128, size=(160, 120), progress=False)
    return data_overrides(root, config, workers=min(4, os.cpu_count() or 1))


def data_overrides(root: Path, config: Config, *, workers: int) -> list[str]:
    """Prepare ``root`` (a UCF-101 layout) into ``root/store`` at the config's frame size."""
    videos, splits, store = root / "UCF-101", root / "ucfTrainTestlist", root / "store"
    prepare_dataset("ucf101", videos=videos, splits=splits, out=store,
                    resize=tuple(config.clip.resize), workers=workers, progress=False)
    return [f"data.videos={videos}", f"data.splits={splits}", f"data.store={store}"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="pretrain/synthetic_cpu")
    parser.add_argument("--data", type=Path, default=None, help="UCF-101 layout root")
    parser.add_argument("--classes", type=int, default=None, help="synthetic set: classes")
    parser.add_argument("--videos-per-class", type=int, default=10)
    parser.add_argument("--periods", type=int, default=2,
                        help="validation periods timed (after one untimed)")
    parser.add_argument("--bare-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2, 4, 8],
                        help="CUDA only: loader worker counts to try")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    quiet_dependencies()  # as the CLI: the measurements, not the libraries' notices

    config = load_config(args.config, [*args.overrides, "trainer.progress_bar=false"])
    epochs = config.trainer.check_val_every_n_epoch * (1 + args.periods)
    config = override_config(config, [f"trainer.max_epochs={epochs}"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.data is None:
            data = synthetic_data(root / "data", config, classes=args.classes,
                                  videos_per_class=args.videos_per_class, seed=config.seed)
        else:
            data = data_overrides(args.data, config, workers=min(4, os.cpu_count() or 1))
        config = override_config(config, data)
        device = training_device_type(config)
        print(f"{args.config}: {config.model.backbone} ({config.model.norm}, width "
              f"{config.model.width}), clips {config.clip.shape}, batch {config.optim.batch_size}"
              f" x {config.pretext.num_clips} clips, precision {config.trainer.precision}, "
              f"{config.trainer.memory_format}, {device}, {torch.get_num_threads()} threads, "
              f"{config.data.workers} loader workers")
        result = compare(config, root / "run", bare_steps=args.bare_steps)
        print(f"{'':<12}{'clips/s':>9}")
        print(f"{'bare step':<12}{result['bare']['clips_per_second']:>9.1f}")
        loop = result["loop"]
        print(f"{'end to end':<12}{loop['clips_per_second']:>9.1f}   {result['ratio']:.0%} of the "
              f"bare step (whole call {loop['seconds']:.0f}s)")
        print("loop time: " + ", ".join(f"{name} {share:.1%}"
                                        for name, share in loop["shares"].items()))
        if device == "cuda":
            print("\nloader workers -> end to end clips/s (share of the bare step)")
            for workers in args.workers:
                run = override_config(config, [f"data.workers={workers}"])
                loop = end_to_end(run, root / f"run_workers{workers}")
                share = loop["clips_per_second"] / result["bare"]["clips_per_second"]
                print(f"{workers:>3} workers: {loop['clips_per_second']:8.1f} ({share:.0%})")


if __name__ == "__main__":
    main()
