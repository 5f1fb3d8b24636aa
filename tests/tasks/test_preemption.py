"""StopOnSignal: a signal stops training at the end of the step in progress, but an epoch's
last step first finishes the epoch and the run's last step lets the run end as usual."""

import signal

import pytest
import torch

from playspeed.report import read_run_logs
from playspeed.signals import STOP_SIGNALS, Preempted
from playspeed.tasks.pretext import pretrain


def test_a_signal_at_an_epochs_last_step_stops_after_the_next_step(tiny_config, tmp_path,
                                                                   signal_at_step):
    # 2 steps an epoch, validated every epoch: the signal comes during step 2, the epoch's last.
    config = tiny_config("pretrain", "trainer.check_val_every_n_epoch=1")
    signal_at_step(1)
    with pytest.raises(Preempted) as stop:
        pretrain(config, tmp_path)
    assert (stop.value.step, stop.value.epoch, stop.value.batch) == (3, 1, 1)
    assert [step for step, _ in read_run_logs(tmp_path)["val/loss"]] == [1]  # epoch 1 validated
    saved = torch.load(stop.value.checkpoint, weights_only=True)
    assert saved["global_step"] == 3


def test_a_signal_at_the_runs_last_step_lets_it_end(tiny_config, tmp_path, signal_at_step):
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signal_at_step(3)  # during step 4 of 4
    metrics = pretrain(tiny_config("pretrain"), tmp_path)
    assert metrics["validated_at_step"] == metrics["protocol"]["steps"] == 4
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == handlers
