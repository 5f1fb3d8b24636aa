"""Pretext training: the loss falls, every objective trains and its checkpoint serves the
downstream commands, a resumed run equals an uninterrupted one, and 2-process DDP works on
CPU."""

import json
import subprocess
import sys

import pytest
import torch

import playspeed.tasks.trainer as trainer_module
from playspeed.objectives import OBJECTIVES
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


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["sort", "speed_contrast"])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tiny_config, tmp_path,
                                                                  monkeypatch, objective):
    # sort: its head's dropout draws from the global RNG, which a resume must restore;
    # speed_contrast: its key sub-batches draw from it, and its key encoder and queue are
    # task state (compared with the weights below).
    config = tiny_config("pretrain", "trainer.max_epochs=3", f"pretext.objective={objective}")
    pretrain(config, tmp_path / "straight")

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
        pretrain(config, tmp_path / "resumed")
    monkeypatch.setattr(trainer_module, "make_trainer", make_trainer)
    pretrain(config, tmp_path / "resumed", resume=True)

    def weights(run):
        return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    # The interrupted start and the resume each keep their log; together they cover every step.
    from playspeed.report import read_run_logs

    steps = {run: sorted({step for step, _ in read_run_logs(tmp_path / run)["train/loss"]})
             for run in ("straight", "resumed")}
    assert steps["resumed"] == steps["straight"]
    seen = [json.loads((tmp_path / run / "metrics.json").read_text())["clips_seen"]
            for run in ("straight", "resumed")]
    assert seen[0] == seen[1] > 0
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tiny_overrides, tmp_path):
    """Lightning's own DDP (gloo) across two processes, launched as a user would."""
    command = [
        sys.executable, "-m", "playspeed", "pretrain", "--config", "pretrain/synthetic_cpu",
        "--out", str(tmp_path), *tiny_overrides, "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.strategy=ddp", "trainer.max_epochs=1", "trainer.sync_norm=true",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["protocol"]["effective_batch"] == 2 * 3
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


# classify in the fast loop (pytest -m "not slow"), every other objective marked slow
@pytest.mark.parametrize("objective", [
    pytest.param(name, marks=() if name == "classify" else pytest.mark.slow)
    for name in OBJECTIVES])
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
