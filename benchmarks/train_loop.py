"""Pretraining loop throughput: ``pretrain``'s whole runs against the bare train step.

Both sides use one config (default ``pretrain/synthetic_cpu``), so one model, one objective,
one batch size, one optimiser, one precision and one memory format, measured in the same run:

- ``bare step``: the task's training loss (:meth:`PlaybackSpeedPretraining.training_loss`,
  what ``training_step`` optimises, ``speed_contrast``'s key encoder and queue included),
  backward and the config's optimiser (over the task's parameter groups), on one batch of
  clips held in memory (taken from the real loader), nothing else;
- ``whole runs``: ``playspeed.tasks.pretext.pretrain`` itself (frame store -> loader ->
  Lightning step, with validation, logging, checkpoints, metrics and plots), run twice, for
  ``--epochs A B``; the clips the longer run adds, over the seconds it adds, is the loop's
  speed with every cost that comes per epoch or per validation, none of the run's one-off
  costs (start, datasets, the final report). The difference is split into train steps,
  validation and the rest, per epoch and per validation.

The ratio whole runs / bare step is what the loop keeps of the model's speed. A shared
machine's speed drifts by tens of percent over minutes, so the pair of runs is repeated
(``--repeats``, 3 by default), each pair timed between two bare-step measurements and set
against them, and the median ratio is printed with every repeat's. On CUDA, the loop is also
run for several loader worker counts, to show how many keep the GPU busy.

    python benchmarks/train_loop.py                              # synthetic_cpu, ~6 minutes
    python benchmarks/train_loop.py --config pretrain/ucf101_r3d_18 --data DIR  # on a GPU
    python benchmarks/train_loop.py pretext.objective=speed_contrast data.workers=1  # overrides

Data: ``--data DIR`` (a UCF-101 layout root such as ``playspeed synth`` writes), else a
fresh synthetic set of 20 videos per class (the quick demo's); it is prepared into a frame
store at the config's ``clip.resize``, raw unless ``--store-format jpeg``.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    """Splits a run's training into train steps (batch start to batch end, the optimiser
    included), validations and the rest (waiting for batches, logging, checkpoints, epoch
    boundaries, the framework's own work), and counts clips, epochs and validations."""

    def __init__(self) -> None:
        self.clips = self.validations = 0
        self.batch_shape: tuple[int, ...] | None = None
        self.num_parameters = 0
        self.seconds = {"train steps": 0.0, "validation": 0.0}
        self.fit_seconds = 0.0
        self._since = self._fit_start = 0.0

    def _lap(self, module: L.LightningModule) -> float:
        _sync(module.device)
        return time.perf_counter()

    def on_train_start(self, trainer, module) -> None:
        self._fit_start = self._lap(module)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._since = self._lap(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        clips = batch["clips"]
        if self.batch_shape is None:
            self.batch_shape = tuple(clips.shape)
            self.num_parameters = sum(p.numel() for p in module.parameters())
        self.clips += clips.shape[0] * clips.shape[1]
        self.seconds["train steps"] += self._lap(module) - self._since

    def on_validation_start(self, trainer, module) -> None:
        self._since = self._lap(module)

    def on_validation_end(self, trainer, module) -> None:
        self.seconds["validation"] += self._lap(module) - self._since
        self.validations += 1

    def on_train_end(self, trainer, module) -> None:
        self.fit_seconds = self._lap(module) - self._fit_start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step(config: Config, *, steps: int, rounds: int = 3, warmup: int = 2
              ) -> dict[str, Any]:
    """Clips/s of the pretext train step alone, on the first batch of the real loader: each
    of ``rounds`` rounds times ``steps`` steps (``rates``, their median ``clips_per_second``;
    a shared machine slows some rounds, never speeds one up)."""
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
            loss, *_ = task.training_loss(batch)  # what training_step optimises
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(rounds):
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        rates.append(steps * clips.shape[0] * clips.shape[1] / (time.perf_counter() - start))
    return {"clips_per_second": statistics.median(rates), "rates": rates,
            "batch_shape": tuple(clips.shape),
            "num_parameters": sum(p.numel() for p in task.parameters())}


def whole_run(config: Config, out: Path) -> dict[str, Any]:
    """``pretrain`` from start to end: its wall time and its :class:`LoopClock`."""
    clock = LoopClock()
    start = time.perf_counter()
    pretrain(config, out, callbacks=[clock])
    return {"seconds": time.perf_counter() - start, "clock": clock,
            "epochs": config.trainer.max_epochs}


def difference(short: dict[str, Any], long: dict[str, Any]) -> dict[str, Any]:
    """What the longer run adds: clips/s, and its time per epoch (steps, the rest) and per
    validation."""
    clocks = short["clock"], long["clock"]
    seconds = long["seconds"] - short["seconds"]
    epochs = long["epochs"] - short["epochs"]
    validations = clocks[1].validations - clocks[0].validations
    steps, validation = (clocks[1].seconds[name] - clocks[0].seconds[name]
                         for name in ("train steps", "validation"))
    clips = clocks[1].clips - clocks[0].clips
    return {"clips_per_second": clips / seconds, "clips": clips, "seconds": seconds,
            "epochs": epochs, "validations": validations,
            "per_epoch": {"train steps": steps / epochs,
                          "rest": (seconds - steps - validation) / epochs},
            "per_validation": validation / validations if validations else 0.0,
            "steps_clips_per_second": clips / steps}


def compare(config: Config, out: Path, *, bare_steps: int, bare_rounds: int = 3,
            epochs: Sequence[int] = (5, 15), repeats: int = 1) -> dict[str, Any]:
    """``repeats`` times: the two whole runs between bare-step measurements (bare, runs,
    bare, runs, ..., bare), each pair of runs against the median of the bare rounds on
    either side of it, as the machine's speed drifts over minutes. The result is the
    repeat with the median ratio, with every repeat's ratio in ``ratios``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    bare_before = bare_step(config, steps=bare_steps, rounds=bare_rounds)
    measured = []
    for repeat in range(repeats):
        where = out if repeats == 1 else out / f"repeat{repeat}"
        short, long = (whole_run(override_config(config, [f"trainer.max_epochs={n}"]),
                                 where / f"epochs{n}") for n in epochs)
        bare_after = bare_step(config, steps=bare_steps, rounds=bare_rounds)
        bare = statistics.median(bare_before["rates"] + bare_after["rates"])
        added = difference(short, long)
        measured.append({"bare": {**bare_before, "clips_per_second": bare,
                                  "after": bare_after["rates"]},
                         "short": short, "long": long, "whole": added,
                         "ratio": added["clips_per_second"] / bare,
                         "steps_ratio": added["steps_clips_per_second"] / bare})
        bare_before = bare_after
    ratios = [result["ratio"] for result in measured]
    median = sorted(measured, key=lambda result: result["ratio"])[(repeats - 1) // 2]
    return {**median, "ratios": ratios}


def synthetic_data(root: Path, config: Config, *, classes: int | None, videos_per_class: int,
                   seed: int, fmt: str) -> list[str]:
    """Write a synthetic set and its store under ``root``; the overrides that point at them."""
    write_dataset(root, num_classes=classes, videos_per_class=videos_per_class, seed=seed,
                  frames=128, size=(160, 120), progress=False)
    return data_overrides(root, config, workers=min(4, os.cpu_count() or 1), fmt=fmt)


def data_overrides(root: Path, config: Config, *, workers: int, fmt: str = "jpeg"
                   ) -> list[str]:
    """Prepare ``root`` (a UCF-101 layout) into ``root/store_<fmt>`` at the config's frame
    size."""
    videos, splits, store = root / "UCF-101", root / "ucfTrainTestlist", root / f"store_{fmt}"
    prepare_dataset("ucf101", videos=videos, splits=splits, out=store, fmt=fmt,
                    resize=tuple(config.clip.resize), workers=workers, progress=False)
    return [f"data.videos={videos}", f"data.splits={splits}", f"data.store={store}"]


def report(result: dict[str, Any]) -> str:
    """The measurement in lines, for the console."""
    added, clock = result["whole"], result["long"]["clock"]
    rates = ", ".join(f"{rate:.0f}" for rate in result["bare"]["rates"])
    ratios = result["ratios"]
    lines = [f"whole runs / bare step: {result['ratio']:.2f}"
             + (f" (median of {len(ratios)} repeats: "
                f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}; the repeat below is the "
                "median one)" if len(ratios) > 1 else ""),
             f"{'':<28}{'clips/s':>9}",
             f"{'bare step':<28}{result['bare']['clips_per_second']:>9.1f}   median of rounds "
             f"({rates} before the runs; as many after)",
             f"{'whole runs (difference)':<28}{added['clips_per_second']:>9.1f}   "
             f"{result['ratio']:.2f} of the bare step "
             f"({added['clips']} clips in {added['seconds']:.1f}s over {added['epochs']} "
             f"epochs and {added['validations']} validations)",
             f"{'train steps alone':<28}{added['steps_clips_per_second']:>9.1f}   "
             f"{result['steps_ratio']:.2f} of the bare step",
             f"per epoch: train steps {added['per_epoch']['train steps']:.2f}s, the rest "
             f"{added['per_epoch']['rest']:.2f}s; per validation "
             f"{added['per_validation']:.2f}s",
             f"the {result['long']['epochs']}-epoch run: {result['long']['seconds']:.1f}s "
             f"in all, {clock.fit_seconds:.1f}s in fit"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="pretrain/synthetic_cpu")
    parser.add_argument("--data", type=Path, default=None, help="UCF-101 layout root")
    parser.add_argument("--classes", type=int, default=None, help="synthetic set: classes")
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--store-format", choices=("jpeg", "raw"), default="raw",
                        help="format of the frame store the runs read (prepare --format; "
                             "raw, as docs/data.md advises for frames as small as the CPU "
                             "configs')")
    parser.add_argument("--epochs", type=int, nargs=2, default=(5, 15), metavar=("A", "B"),
                        help="epochs of the two whole runs")
    parser.add_argument("--repeats", type=int, default=3,
                        help="pairs of whole runs, each between bare-step measurements; the "
                             "median ratio is reported")
    parser.add_argument("--bare-steps", type=int, default=10, help="steps of a bare round")
    parser.add_argument("--bare-rounds", type=int, default=5,
                        help="bare rounds before the first runs and after each pair")
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2, 4, 8],
                        help="CUDA only: loader worker counts to try")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    quiet_dependencies()  # as the CLI: the measurements, not the libraries' notices

    config = load_config(args.config, [*args.overrides, "trainer.progress_bar=false"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.data is None:
            data = synthetic_data(root / "data", config, classes=args.classes,
                                  videos_per_class=args.videos_per_class, seed=config.seed,
                                  fmt=args.store_format)
        else:
            data = data_overrides(args.data, config, workers=min(4, os.cpu_count() or 1),
                                  fmt=args.store_format)
        config = override_config(config, data)
        device = training_device_type(config)
        print(f"{args.config}: {config.model.backbone} ({config.model.norm}, width "
              f"{config.model.width}), {config.pretext.objective}, clips {config.clip.shape}, "
              f"batch {config.optim.batch_size} x {config.pretext.num_clips} clips, "
              f"{config.optim.name}, precision {config.trainer.precision}, "
              f"{config.trainer.memory_format}, validation every "
              f"{config.trainer.check_val_every_n_epoch} epochs, {device}, "
              f"{torch.get_num_threads()} threads, {config.data.workers} loader workers, "
              f"{args.store_format} frame store")
        result = compare(config, root / "run", bare_steps=args.bare_steps,
                         bare_rounds=args.bare_rounds, epochs=args.epochs,
                         repeats=args.repeats)
        print(report(result))
        if device == "cuda":
            print("\nloader workers -> whole-run clips/s (share of the bare step)")
            for workers in args.workers:
                run = override_config(config, [f"data.workers={workers}"])
                runs = [whole_run(override_config(run, [f"trainer.max_epochs={n}"]),
                                  root / f"workers{workers}_epochs{n}") for n in args.epochs]
                added = difference(*runs)
                share = added["clips_per_second"] / result["bare"]["clips_per_second"]
                print(f"{workers:>3} workers: {added['clips_per_second']:8.1f} ({share:.0%})")


if __name__ == "__main__":
    main()
