"""Preemption-safe training: a stop signal ends the run at a step's end, with a checkpoint of
that step from which ``--resume`` continues as if nothing had happened.

:class:`StopOnSignal` (every training run has it, :func:`playspeed.tasks.trainer.make_trainer`)
catches SIGTERM, SIGINT and SIGUSR1 during training (:mod:`playspeed.signals`) and:

- stops at the end of the training step in progress, writes ``OUT/checkpoints/last.ckpt``
  of that step (mid-epoch), and raises :class:`~playspeed.signals.Preempted` (once the
  step's values are logged, as the next batch comes in), which the command line turns into
  one line (where it stopped, how to resume) and exit status ``128 + signal``;
- a step that ends an epoch first finishes the epoch (its validation and its checkpoints),
  since Lightning resumes a checkpoint of an epoch's last step at the next epoch; the run
  then stops after the next step. A signal after the run's last step lets it end as usual;
- under DDP every rank stops at the same step, whichever rank was signalled: the ranks
  agree on it with one all-reduce of a number per step (a single process reads a flag);
  rank 0 writes the checkpoint.

What makes the resumed run equal to an uninterrupted one: Lightning's loop state (step,
batch within the epoch, optimiser and schedule), the training loader's position
(:class:`~playspeed.tasks.data.ResumableLoader`), the global RNG and clips seen
(:class:`~playspeed.tasks.base.VideoTask`), and the epoch's running means logged so far
(e.g. ``train/epoch_loss``), which Lightning does not keep in checkpoints: this callback
stores them with a stop's checkpoint, every rank's own, and adds them back after the first
step of the resumed epoch.

The signal is acted on at a step's end only, so validation, which may be long, finishes
first; a second signal stops the process at once without a checkpoint.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

from playspeed.signals import Preempted, SignalCatcher


class StopOnSignal(L.Callback):
    """Stop training on SIGTERM, SIGINT or SIGUSR1 with a checkpoint at ``checkpoint``."""

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.catcher = SignalCatcher()
        self._stopping = False  # writing a stop's checkpoint: state_dict() adds the means
        self._resumed: dict[str, Any] | None = None  # a stop's state, to add back
        self._trainer: L.Trainer | None = None
        self._stop: Preempted | None = None  # saved, to be raised

    # Signals ---------------------------------------------------------------------------

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Lightning installed its own SIGTERM handler for the run (it stops each rank on its
        # own, at different points); ours takes over for the training loop.
        if trainer.received_sigterm:
            self.catcher.received = signal.SIGTERM
        self.catcher.install()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.catcher.restore()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule,
                     exception: BaseException) -> None:
        self.catcher.restore()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self._resumed is not None:
            self._add_back_epoch_means(trainer, batch_idx)
        received = self.catcher.received or 0
        if trainer.world_size > 1:  # every rank learns of a signal any rank received
            received = int(trainer.strategy.reduce(
                torch.tensor(received, device=module.device), reduce_op="max"))
        if not received or self._ends_an_epoch_or_the_run(trainer, batch_idx):
            return
        self._stopping = True
        try:
            trainer.save_checkpoint(self.checkpoint, weights_only=False)
        finally:
            self._stopping = False
        # Raised as the next step starts: Lightning logs this step's values after this hook.
        self._stop = Preempted(
            signum=received, step=trainer.global_step, epoch=trainer.current_epoch,
            batch=batch_idx + 1, batches=int(trainer.num_training_batches),
            checkpoint=self.checkpoint, is_global_zero=trainer.is_global_zero)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            raise stop

    @staticmethod
    def _ends_an_epoch_or_the_run(trainer: L.Trainer, batch_idx: int) -> bool:
        return (batch_idx + 1 >= trainer.num_training_batches
                or 0 <= trainer.max_steps <= trainer.global_step)

    # The epoch's running means --------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if not self._stopping:
            return {}
        trainer = self._trainer
        sums = _epoch_sums(trainer)
        names = sorted(sums)
        packed = (torch.stack([torch.stack(sums[name]) for name in names]) if names else
                  torch.zeros(0, 2, dtype=torch.float64, device=trainer.strategy.root_device))
        ranks = [packed]
        if trainer.world_size > 1:  # each rank's own, in rank order
            ranks = [torch.empty_like(packed) for _ in range(trainer.world_size)]
            torch.distributed.all_gather(ranks, packed.contiguous())
        return {"epoch": trainer.current_epoch,
                "batches": trainer.fit_loop.epoch_loop.batch_progress.current.processed,
                "names": names, "epoch_sums": torch.stack(ranks).cpu()}

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resumed = state or None

    def _add_back_epoch_means(self, trainer: L.Trainer, batch_idx: int) -> None:
        """After the resumed epoch's first step: its sums so far start from the stop's."""
        state, self._resumed = self._resumed, None
        if (state["epoch"] != trainer.current_epoch or state["batches"] != batch_idx
                or state["epoch_sums"].shape[0] != trainer.world_size):
            return  # resumed elsewhere (a changed config): nothing to continue
        own = state["epoch_sums"][trainer.global_rank]
        metrics = _epoch_metrics(trainer)
        for name, (value, count) in zip(state["names"], own, strict=True):
            metric = metrics.get(name)
            if metric is None:
                continue
            meta, value = metric.meta, value.to(metric.value)
            if meta.is_mean_reduction or meta.is_sum_reduction:
                # stored + this step's: the order in which an uninterrupted run adds them
                metric.value = value + metric.value
            elif meta.is_max_reduction or meta.is_min_reduction:
                metric.value = meta.reduce_fx(value, metric.value)
            if meta.is_mean_reduction:
                metric.cumulated_batch_size = (count.to(metric.cumulated_batch_size)
                                               + metric.cumulated_batch_size)


def _epoch_metrics(trainer: L.Trainer) -> dict[str, _ResultMetric]:
    """The values logged with ``on_epoch=True`` in training steps, accumulating this epoch
    (Lightning's own collection, which checkpoints do not hold)."""
    results = trainer.fit_loop.epoch_loop._results
    return {name: metric for name, metric in results.items()
            if isinstance(metric, _ResultMetric) and metric.is_tensor and metric.meta.on_epoch}


def _epoch_sums(trainer: L.Trainer) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per epoch-logged value: (accumulated value, accumulated batch size), float64."""
    sums = {}
    for name, metric in _epoch_metrics(trainer).items():
        count = getattr(metric, "cumulated_batch_size", torch.tensor(0))
        sums[name] = (metric.value.detach().double(), count.detach().double().to(
            metric.value.device))
    return sums
