"""Several trainings on one CPU: one process using every thread against N single-thread
processes side by side, in one run. Total train-step throughput (clips/s) of a pretraining
config's model, optimiser and memory format (default ``pretrain/synthetic_cpu``), which is
what ``playspeed compare`` and the recipe runs spend their time on.

    python benchmarks/parallel_runs.py                  # 2 processes against 1 x 2 threads
    python benchmarks/parallel_runs.py --processes 4 --steps 20
    python benchmarks/parallel_runs.py --config pretrain/synthetic_cpu model.width=0.5

Read the ratio: on a small CPU, one process's intra-op threads are poorly used by this small
model, so independent runs (seeds, objectives) finish sooner side by side with
``OMP_NUM_THREADS=1`` than one after another. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from playspeed.config import Config, load_config
from playspeed.objectives import OBJECTIVES
from playspeed.tasks.base import build_optimizer
from playspeed.tasks.inference import autocast_for
from playspeed.tasks.pretext import PlaybackSpeedPretraining


def random_batch(config: Config) -> dict[str, torch.Tensor]:
    """A pretext batch of the config's shape (``B x N x 3 x T x S x S`` clips, per-clip
    targets of every reading), random values: the step's cost does not depend on them."""
    pretext, clip = config.pretext, config.clip
    batch, clips = config.optim.batch_size, pretext.num_clips
    classes = OBJECTIVES[pretext.objective].num_classes(
        speeds=pretext.speeds, directions=pretext.directions, num_clips=clips)
    target = torch.stack([torch.randint(0, n, (batch, clips)) for n in classes.values()], -1)
    return {"clips": torch.randn(batch, clips, 3, clip.len, clip.size, clip.size),
            "target": target}


def _train_throughput(config: Config, threads: int, steps: int,
                      start: mp.Barrier | None = None) -> float:
    """Clips/s of ``steps`` train steps (after two warm-up steps) with ``threads`` threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    task = PlaybackSpeedPretraining(config).train()
    if config.trainer.memory_format == "channels_last_3d":
        task.to(memory_format=torch.channels_last_3d)
    batch = random_batch(config)
    optimizer = build_optimizer(config.optim, task.parameter_groups())
    device = torch.device("cpu")

    def step() -> None:
        with autocast_for(config, device):
            loss, _ = task.loss_and_hits(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    if start is not None:  # every process times the same stretch of wall clock
        start.wait()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    clips = batch["clips"].shape[0] * batch["clips"].shape[1]
    return steps * clips / (time.perf_counter() - began)


def _worker(config: Config, steps: int, start: mp.Barrier, results: mp.Queue) -> None:
    results.put(_train_throughput(config, 1, steps, start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="pretrain/synthetic_cpu")
    parser.add_argument("--processes", type=int, default=2, help="also the one process's threads")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    config = load_config(args.config, [*args.overrides, "trainer.accelerator=cpu"])

    alone = _train_throughput(config, args.processes, args.steps)
    context = mp.get_context("spawn")
    start, results = context.Barrier(args.processes), context.Queue()
    workers = [context.Process(target=_worker, args=(config, args.steps, start, results))
               for _ in range(args.processes)]
    for worker in workers:
        worker.start()
    each = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    together = sum(each)
    print(f"{args.config}: {config.model.backbone} ({config.model.norm}, width "
          f"{config.model.width}), clips {config.clip.shape}, batch {config.optim.batch_size} x "
          f"{config.pretext.num_clips} clips, {config.optim.name}")
    print(f"1 process x {args.processes} threads: {alone:6.1f} clips/s")
    print(f"{args.processes} processes x 1 thread:  {together:6.1f} clips/s in all "
          f"({', '.join(f'{x:.1f}' for x in each)})")
    print(f"ratio (side by side / one): {together / alone:.2f}x")


if __name__ == "__main__":
    main()
