"""Stop signals: the ones a training run obeys, how they are caught, and how a stopped run
reports itself.

Cluster schedulers stop a job with SIGTERM (SLURM can send SIGUSR1 ahead of the time limit,
``sbatch --signal=USR1@120``; spot machines get SIGTERM before they are reclaimed), and a
user presses Ctrl+C (SIGINT). While a model trains, :class:`SignalCatcher` turns the first of
them into a request to stop at the end of the step in progress, with a checkpoint of that
step (:mod:`playspeed.tasks.preemption`); a second one stops the process at once, as
the signal does by default. The run then raises :class:`Preempted`, and the command exits
with ``128 + signal number`` (SIGINT 130, SIGUSR1 138, SIGTERM 143), the status a shell
gives a process ended by that signal, so a scheduler or script still sees why it ended.

Torch-free, so that the command line can catch :class:`Preempted` without importing the
training stack.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

#: The signals that stop a training run with a checkpoint.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Preempted(Exception):
    """Training stopped on a signal, after writing a checkpoint of its last step.

    ``is_global_zero``: raised in the process that speaks for the run (rank 0 of a
    distributed run; the others raise it too, to exit alike, and stay silent).
    """

    def __init__(self, *, signum: int, step: int, epoch: int, batch: int, batches: int,
                 checkpoint: Path, is_global_zero: bool = True) -> None:
        self.signum, self.step, self.epoch = signum, step, epoch
        self.batch, self.batches = batch, batches
        self.checkpoint, self.is_global_zero = Path(checkpoint), is_global_zero
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} (epoch "
                         f"{epoch + 1}, batch {batch} of {batches}), saved in {checkpoint}")

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by the signal."""
        return 128 + self.signum


class SignalCatcher:
    """Records the first stop signal instead of dying of it; a second one is let through.

    ``install()`` (main thread only: Python runs handlers there) replaces the handlers of
    :data:`STOP_SIGNALS`, ``restore()`` puts the previous ones back; :attr:`received` is the
    first signal's number, or ``None``.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            return
        # Asked twice: stop now, without the checkpoint (the signal's default action).
        self.restore()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
