"""Pretext training: the loss falls, every objective trains and its checkpoint serves the
downstream commands, a resumed run equals an uninterrupted one, and 2-process DDP works on
CPU."""

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
import torch

import playspeed.tasks.trainer as trainer_module
from playspeed.cli import main
from playspeed.objectives import OBJECTIVES
from playspeed.signals import Preempted
from playspeed.tasks.data import build_source, load_records, pretext_dataset
from playspeed.tasks.pretext import PlaybackSpeedPretraining, pretrain


def _fixed_batch(config, size=4):
    dataset = pretext_dataset(config, load_records(config, "train"), build_source(config))
    items = [dataset[i] for i in range(size)]
    return {key: torch.stack([item[key] for item in items]) for key in ("clips", "target")}


@pytest.mark.parametrize("objective", ["classify", pytest.param("sort", marks=pytest.mark.slow)])
def test_training_reduces_the_loss_on_a_fixed_batch(tiny_config, objective):
    torch.manual_seed(0)
    config = tiny_config("pretrain", f"pretext.objective={objective}")
    task = PlaybackSpeedPretraining(config).train()
    batch = _fixed_batch(config)
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, hits = task.loss_and_hits(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    task.eval()
    with torch.no_grad():
        _, hits = task.loss_and_hits(batch)
    assert hits["pretext_acc"].float().mean() == 1.0


def test_pretrain_writes_run_directory(tiny_config, tmp_path, capsys):
    # Two epochs of a few clips: the pretext cannot learn, which the run must say.
    metrics = pretrain(tiny_config("pretrain"), tmp_path)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "config.yaml").is_file()
    assert (tmp_path / "logs" / "csv" / "version_0" / "metrics.csv").is_file()
    assert any((tmp_path / "logs" / "tensorboard").iterdir())
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored == json.loads(json.dumps(metrics))
    for key in ("pretext_val_acc", "speed_val_acc", "direction_val_acc", "num_videos",
                "protocol"):
        assert key in stored
    assert 0 <= stored["pretext_val_acc"] <= 100
    assert stored["num_videos"] == 3  # one held-out video per class
    # The fixed grid: 3 speeds x 2 directions x 1 start per held-out video (40 frames).
    assert stored["pretext_val_chance"] == pytest.approx(100 / 6, abs=1e-3)
    assert stored["speed_val_chance"] == pytest.approx(100 / 3, abs=1e-3)
    assert stored["direction_val_chance"] == 50.0
    per_speed = stored["speed_val_acc_per_speed"]
    assert list(per_speed) == ["1", "2", "4"]
    assert sum(per_speed.values()) / 3 == pytest.approx(stored["speed_val_acc"], abs=0.01)
    assert stored["clips_seen"] == 2 * 2 * 3 * 3  # epochs x steps x batch x clips
    assert "18 fixed items" in stored["protocol"]["measured_on"]
    for plot in ("curves.png", "speed_confusion.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
    assert stored["pretext_learned"] is False
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warning == [f"warning: {stored['pretext_warning']}"]
    assert "did not learn" in warning[0] and "trainer.max_epochs" in warning[0]


class _Crash(Exception):
    pass


@pytest.fixture(scope="module")
def straight_run(tiny_config, tmp_path_factory):
    """An uninterrupted run of 3 epochs, 2 steps each, validated after epochs 2 and 3 (sort:
    its head's dropout draws from the global RNG, which a resume must restore)."""
    config = tiny_config("pretrain", "trainer.max_epochs=3", "pretext.objective=sort")
    out = tmp_path_factory.mktemp("straight")
    pretrain(config, out)
    return config, out


def _crash_at_epoch_2_then_resume(config, out, monkeypatch):
    class CrashAtEpoch2(trainer_module.L.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 2:
                raise _Crash

    make_trainer = trainer_module.make_trainer

    def crashing_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        trainer.callbacks.append(CrashAtEpoch2())
        return trainer

    monkeypatch.setattr(trainer_module, "make_trainer", crashing_trainer)
    with pytest.raises(_Crash):
        pretrain(config, out)
    monkeypatch.setattr(trainer_module, "make_trainer", make_trainer)
    pretrain(config, out, resume=True)


@pytest.mark.slow
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(straight_run, tmp_path,
                                                                  monkeypatch, assert_same_run):
    config, straight = straight_run

    _crash_at_epoch_2_then_resume(config, tmp_path, monkeypatch)
    # The interrupted start and the resume each keep their log; together they cover every step.
    assert_same_run(straight, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["clips_seen"] == 3 * 2 * 3 * 3


@pytest.mark.slow
def test_a_resumed_speed_contrast_run_keeps_its_key_encoder_and_queue(tiny_config, tmp_path,
                                                                      monkeypatch,
                                                                      assert_same_run):
    """Its key sub-batches draw from the global RNG, and its key encoder and queue are task
    state (in the compared weights)."""
    config = tiny_config("pretrain", "trainer.max_epochs=3", "pretext.objective=speed_contrast")
    pretrain(config, tmp_path / "straight")
    _crash_at_epoch_2_then_resume(config, tmp_path / "resumed", monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")


# Runs the command line with a callback that, on rank 0, announces global step WAIT_AT and
# waits there for a signal from outside: the signal reaches a running training loop.
_WAITING_DRIVER = """
import sys, time
import lightning as L
import playspeed.tasks.trainer as trainer_module
from playspeed.cli import main
from playspeed.tasks.preemption import StopOnSignal

WAIT_AT = int(sys.argv[1])


class WaitForSignal(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == WAIT_AT and trainer.is_global_zero:
            stop = next(c for c in trainer.callbacks if isinstance(c, StopOnSignal))
            print(f"waiting after step {WAIT_AT}", flush=True)
            deadline = time.monotonic() + 120
            while stop.catcher.received is None and time.monotonic() < deadline:
                time.sleep(0.01)


make_trainer = trainer_module.make_trainer


def make(*args, **kwargs):
    trainer = make_trainer(*args, **kwargs)
    trainer.callbacks.append(WaitForSignal())
    return trainer


trainer_module.make_trainer = make
sys.exit(main(sys.argv[2:]))
"""


def _stop_by_signal(argv, *, after_step, tmp_path, env=None, signum=signal.SIGTERM):
    """Run ``playspeed argv`` in a new process, send rank 0 ``signum`` while it trains the
    step after ``after_step``; returns (exit status, stderr lines)."""
    driver = tmp_path / "driver.py"
    driver.write_text(_WAITING_DRIVER)
    process = subprocess.Popen([sys.executable, str(driver), str(after_step), *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("waiting after step"):
            process.send_signal(signum)
    _, err = process.communicate(timeout=300)
    return process.returncode, err.strip().splitlines()


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(
        straight_run, tiny_overrides, tmp_path, assert_same_run):
    _, straight = straight_run
    argv = ["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(tmp_path / "run"),
            *tiny_overrides, "trainer.max_epochs=3", "pretext.objective=sort"]
    # The same thread count as this process, so that both compute alike to the last bit.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    status, err = _stop_by_signal(argv, after_step=2, tmp_path=tmp_path, env=env)
    assert status == 143, err
    # One line: where it stopped (the second epoch's first of 2 steps) and how to resume.
    assert len(err) == 1, err
    stopped, _, command = err[0].partition("; resume with: ")
    assert stopped == (f"stopped by SIGTERM at step 3 (epoch 2, batch 1 of 2), saved in "
                       f"{tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}")
    words = shlex.split(command)
    assert words[:3] == ["playspeed", "pretrain", "--resume"] and words[3:] == argv[1:]
    assert main(words[1:]) == 0
    assert_same_run(straight, tmp_path / "run")


@pytest.mark.slow
def test_a_stop_in_the_last_epoch_resumes_to_the_same_metrics(straight_run, tmp_path,
                                                               signal_at_step, assert_same_run):
    """Also the last epoch's mean training loss, over the steps before and after the stop,
    and its validation, which the resumed run reaches without the epoch's start."""
    config, straight = straight_run
    signal_at_step(4, signal.SIGUSR1)
    with pytest.raises(Preempted) as stop:
        pretrain(config, tmp_path)
    assert (stop.value.step, stop.value.epoch, stop.value.exit_code) == (5, 2, 138)
    assert not (tmp_path / "metrics.json").exists()
    signal_at_step(None)
    pretrain(config, tmp_path, resume=True)
    assert_same_run(straight, tmp_path)


# 2-process DDP on CPU (gloo), 1 video a step per process: 3 steps an epoch, 2 epochs.
_DDP = ("trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
        "trainer.sync_norm=true", "optim.batch_size=1")


def _ddp_argv(out, tiny_overrides, *extra):
    return ["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(out),
            *tiny_overrides, *_DDP, *extra]


@pytest.fixture(scope="module")
def ddp_run(tiny_overrides, tmp_path_factory):
    """Lightning's own DDP across two processes, launched as a user would: (result, run)."""
    out = tmp_path_factory.mktemp("ddp")
    result = subprocess.run([sys.executable, "-m", "playspeed",
                             *_ddp_argv(out, tiny_overrides)],
                            capture_output=True, text=True, timeout=300)
    return result, out


@pytest.mark.slow
def test_two_process_ddp_on_cpu(ddp_run):
    result, out = ddp_run
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["effective_batch"] == 2 * 1
    assert metrics["clips_seen"] == 2 * 3 * 2 * 3  # epochs x steps x processes x clips
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert result.stdout.count("pretext accuracy") == 1  # rank 0 speaks for the run


@pytest.mark.slow
def test_two_process_ddp_stops_every_rank_at_one_step_and_resumes_exactly(
        ddp_run, tiny_overrides, tmp_path, assert_same_run):
    """SIGTERM to rank 0 alone: rank 1 stops at the same step; the resumed 2-process run
    equals the uninterrupted one."""
    _, straight = ddp_run
    argv = _ddp_argv(tmp_path / "run", tiny_overrides)
    status, err = _stop_by_signal(argv, after_step=4, tmp_path=tmp_path)
    assert status == 143, err
    stops = [line for line in err if line.startswith("stopped by")]
    assert len(stops) == 1, err  # rank 0 speaks for the run
    assert stops[0].startswith(
        f"stopped by SIGTERM at step 5 (epoch 2, batch 2 of 3), saved in "
        f"{tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}; resume with: playspeed "
        "pretrain --resume ")
    resumed = subprocess.run([sys.executable, "-m", "playspeed", *argv, "--resume"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(straight, tmp_path / "run")


@pytest.mark.slow
def test_a_run_stopped_at_max_steps_mid_epoch_leaves_a_checkpoint_for_the_next_commands(
        tiny_overrides, tmp_path, capsys):
    """Validation every 2nd epoch of 2 steps; the run stops at step 3, inside the 2nd epoch."""
    run = tmp_path / "pre"
    assert main(["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(run),
                 *tiny_overrides, "trainer.max_epochs=5", "trainer.max_steps=3",
                 "trainer.check_val_every_n_epoch=2"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 3
    assert not (run / "checkpoints" / "best.ckpt").exists()  # nothing validated to pick
    assert main(["retrieve", "--ckpt", str(ckpt), "--out", str(tmp_path / "retrieval")]) == 0
    assert main(["finetune", "--config", "finetune/synthetic_cpu", "--init", str(ckpt),
                 "--out", str(tmp_path / "ft"), *tiny_overrides, "trainer.max_epochs=1"]) == 0
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["protocol"]["init"] \
        == str(ckpt)


@pytest.mark.slow
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_every_objective_trains_and_its_checkpoint_serves_every_command(
        objective, tiny_config, tiny_overrides, synth_root, tmp_path, capsys):
    """Pretrain a few steps, then the commands a user runs on the checkpoint (and ``show``,
    which draws the objective's sample), unchanged."""
    from playspeed.cli import main
    from playspeed.tasks.speed import detect_speed

    small = ["trainer.max_epochs=1", "trainer.limit_train_batches=2"]
    config = tiny_config("pretrain", f"pretext.objective={objective}", *small)
    metrics = pretrain(config, tmp_path / "pre")
    assert metrics["protocol"]["objective"] == objective
    assert metrics["protocol"]["input_mode"] == "frame_diff_unit"  # the synthetic_cpu configs'
    assert 0 <= metrics["pretext_val_acc"] <= 100
    for reading in OBJECTIVES[objective].readings:  # each reading has its own accuracy
        assert reading == "order" or 0 <= metrics[f"{reading}_val_acc"] <= 100
    if OBJECTIVES[objective].contrast:  # instance discrimination, held out and in training
        assert 0 <= metrics["instance_val_acc"] <= 100
        assert 0 < metrics["instance_val_chance"] < 100
        from playspeed.report import read_run_logs

        logs = read_run_logs(tmp_path / "pre")
        assert {"train/contrast_loss", "train/instance_acc", "train/instance_chance"} <= set(logs)
    ckpt = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    assert main(["finetune", "--config", "finetune/synthetic_cpu", "--init", str(ckpt),
                 "--out", str(tmp_path / "ft"), *tiny_overrides, *small]) == 0
    assert main(["test", "--ckpt", str(tmp_path / "ft" / "checkpoints" / "last.ckpt"),
                 "--clips", "2"]) == 0
    for command in ("retrieve", "probe"):
        assert main([command, "--ckpt", str(ckpt), "--out", str(tmp_path / command)]) == 0
        assert (tmp_path / command / "metrics.json").is_file()
    folder = min((synth_root / "UCF-101").iterdir())  # one class folder
    assert main(["extract", "--ckpt", str(ckpt), "--videos", str(folder),
                 "--out", str(tmp_path / "f.npz")]) == 0
    video = next(folder.glob("*.avi"))
    assert main(["export", "--ckpt", str(ckpt), "--format", "safetensors",
                 "--out", str(tmp_path / "backbone.safetensors")]) == 0
    assert main(["show", str(video), "--ckpt", str(ckpt), "--out", str(tmp_path / "show.png")
                 ]) == 0  # drawn as the checkpoint's objective samples
    capsys.readouterr()
    if OBJECTIVES[objective].has_speed_head:
        windows = detect_speed(ckpt, video)["windows"]
        # a forward-only objective reads nothing as reversed
        assert windows and all(w.p_reversed == 0 for w in windows) == (objective == "speed")
    else:
        assert main(["speed", str(video), "--ckpt", str(ckpt)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.count("\n") == 0 and "has no speed head" in error
        assert "classify, speed" in error
