"""Several trainings on one CPU: one process using every thread against N single-thread
processes side by side, in one run. Total train-step throughput (clips/s) of the
``synthetic_cpu`` pretraining model (R3D-10 at width 0.25, TGN, 16x40x40, batch 24, fp32
channels_last), which is what ``playspeed compare`` and the recipe runs spend their time on.

    python benchmarks/parallel_runs.py                  # 2 processes against 1 x 2 threads
    python benchmarks/parallel_runs.py --processes 4 --steps 20

Read the ratio: on a small CPU, one process's intra-op threads are poorly used by this small
model, so independent runs (seeds, objectives) finish sooner side by side with
``OMP_NUM_THREADS=1`` than one after another. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch
import torch.nn.functional as F

from playspeed.models import build_backbone, configure_for_speed


def _train_throughput(threads: int, steps: int, batch: int, start: mp.Barrier | None = None
                      ) -> float:
    """Clips/s of ``steps`` train steps (after two warm-up steps) with ``threads`` threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = build_backbone("r3d_10", norm="tgn", clip_len=16, width=0.25)
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.feature_dim, 8))
    configure_for_speed(model, memory_format="channels_last_3d")
    clips = torch.randn(batch, 3, 16, 40, 40).contiguous(memory_format=torch.channels_last_3d)
    labels = torch.randint(0, 8, (batch,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(model(clips), labels).backward()
        optimizer.step()

    for _ in range(2):
        step()
    if start is not None:  # every process times the same stretch of wall clock
        start.wait()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - began)


def _worker(steps: int, batch: int, start: mp.Barrier, results: mp.Queue) -> None:
    results.put(_train_throughput(1, steps, batch, start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="also the one process's threads")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=24)
    args = parser.parse_args()

    alone = _train_throughput(args.processes, args.steps, args.batch)
    context = mp.get_context("spawn")
    start, results = context.Barrier(args.processes), context.Queue()
    workers = [context.Process(target=_worker, args=(args.steps, args.batch, start, results))
               for _ in range(args.processes)]
    for worker in workers:
        worker.start()
    each = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    together = sum(each)
    print(f"1 process x {args.processes} threads: {alone:6.1f} clips/s")
    print(f"{args.processes} processes x 1 thread:  {together:6.1f} clips/s in all "
          f"({', '.join(f'{x:.1f}' for x in each)})")
    print(f"ratio (side by side / one): {together / alone:.2f}x")


if __name__ == "__main__":
    main()
