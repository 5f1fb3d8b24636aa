"""Checkpoints are data, never code: a pickle that would run code is refused by every command
that reads a checkpoint or weights file, before anything in it runs; a checkpoint that is
not ours, lacks weights, has the wrong shapes or is of another task is one error line."""

import os
import pickle

import numpy as np
import pytest
import torch

import playspeed
from playspeed.cli import main
from playspeed.errors import PlayspeedError
from playspeed.tasks.checkpoints import read_checkpoint
from playspeed.tasks.features import FeatureCache


class _Payload:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write_malicious(path, marker, container):
    if container == "torch":  # a torch.save zip, shaped like one of our checkpoints
        torch.save({"state_dict": {}, "hyper_parameters": _Payload(marker)}, path)
    else:  # a bare pickle, the old torch format
        path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=2))
    return path


def _one_error_line(capsys, *, logs=False):
    """The one ``error:`` line on stderr; with ``logs``, after Lightning's log lines."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    assert logs or len(err) == 1, err
    return errors[0]


def _argv(command, ckpt, tmp_path, synth_root, tiny_overrides):
    """The command line of ``command`` reading ``ckpt`` (for --resume: placed where the run
    directory's last checkpoint goes)."""
    video = next((synth_root / "UCF-101").rglob("*.avi"))
    run = tmp_path / "run"
    if command in ("pretrain --resume", "finetune --resume"):
        (run / "checkpoints").mkdir(parents=True)
        ckpt.rename(run / "checkpoints" / "last.ckpt")
        kind = command.split()[0]
        return [kind, "--config", f"{kind}/synthetic_cpu", "--out", str(run), "--resume",
                *tiny_overrides]
    return {
        "test": ["test", "--ckpt", str(ckpt), "--out", str(run)],
        "retrieve": ["retrieve", "--ckpt", str(ckpt), "--out", str(run)],
        "probe": ["probe", "--ckpt", str(ckpt), "--out", str(run)],
        "extract": ["extract", "--ckpt", str(ckpt), "--videos", str(video.parent),
                    "--out", str(tmp_path / "features.npz")],
        "speed": ["speed", str(video), "--ckpt", str(ckpt), "--out", str(tmp_path / "s.png")],
        "finetune --init": ["finetune", "--config", "finetune/synthetic_cpu", "--init",
                            str(ckpt), "--out", str(run), *tiny_overrides],
        "export": ["export", "--ckpt", str(ckpt), "--format", "safetensors",
                   "--out", str(tmp_path / "backbone.safetensors")],
    }[command]


COMMANDS = ("test", "retrieve", "probe", "extract", "speed", "finetune --init",
            "pretrain --resume", "finetune --resume", "export")


@pytest.mark.parametrize("container", ["torch", "pickle"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_malicious_checkpoint_runs_nothing(command, container, tmp_path, capsys, synth_root,
                                             tiny_overrides):
    marker = tmp_path / "pwned"
    ckpt = _write_malicious(tmp_path / "model.ckpt", marker, container)
    argv = _argv(command, ckpt, tmp_path, synth_root, tiny_overrides)
    assert main(argv) == 2
    line = _one_error_line(capsys, logs=command.startswith("pretrain"))
    assert not marker.exists()
    assert "last.ckpt" in line if "--resume" in command else str(ckpt) in line
    if container == "torch":
        assert "refused: loading it would call Python code (posix.system)" in line
    else:
        assert "not a readable checkpoint" in line or "refused" in line
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_load_backbone_runs_nothing(suffix, tmp_path):
    marker = tmp_path / "pwned"
    path = _write_malicious(tmp_path / f"backbone{suffix}", marker, "torch")
    with pytest.raises(PlayspeedError, match=str(path)):
        playspeed.load_backbone(path)
    assert not marker.exists()


def test_our_checkpoints_load_with_weights_only(tiny_pretrain_ckpt):
    # A real Lightning checkpoint (loops, optimizer, scheduler, callbacks, RNG state) needs
    # no type beyond torch's weights_only allow-list.
    checkpoint = torch.load(tiny_pretrain_ckpt, weights_only=True)
    assert {"state_dict", "optimizer_states", "loops", "callbacks"} <= checkpoint.keys()
    assert read_checkpoint(tiny_pretrain_ckpt, expect="pretrain")["hyper_parameters"]["task"] \
        == "pretrain"


def _broken(path, tiny_config, untrained_checkpoint, case):
    config = tiny_config("pretrain")
    if case == "no state_dict":
        checkpoint = torch.load(untrained_checkpoint(config, path), weights_only=True)
        del checkpoint["state_dict"]
    elif case == "wrong shape":
        checkpoint = torch.load(untrained_checkpoint(config, path), weights_only=True)
        key = "backbone.stem.0.weight"
        checkpoint["state_dict"][key] = checkpoint["state_dict"][key][:, :, :1]
    elif case == "another backbone":
        checkpoint = torch.load(untrained_checkpoint(config, path), weights_only=True)
        checkpoint["hyper_parameters"]["config"]["model"]["backbone"] = "c3d"
    elif case == "not ours":
        checkpoint = {"state_dict": {"weight": torch.zeros(3)}, "epoch": 3}
    else:  # an unknown task
        checkpoint = torch.load(untrained_checkpoint(config, path), weights_only=True)
        checkpoint["hyper_parameters"]["task"] = "detection"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(("case", "message"), [
    ("no state_dict", "holds no state_dict of weights"),
    ("wrong shape", "weights do not fit the model its config builds (size mismatch for "
                    "backbone.stem.0.weight"),
    ("another backbone", "weights do not fit the model its config builds (Missing key"),
    ("not ours", "not a playspeed checkpoint (no stored config)"),
    ("unknown task", "a checkpoint of an unknown task 'detection'"),
])
def test_a_bad_checkpoint_is_one_error_line(case, message, tmp_path, capsys, tiny_config,
                                            untrained_checkpoint):
    ckpt = _broken(tmp_path / "model.ckpt", tiny_config, untrained_checkpoint, case)
    assert main(["retrieve", "--ckpt", str(ckpt), "--out", str(tmp_path / "r")]) == 2
    assert f"error: {ckpt}: {message}" in _one_error_line(capsys)


def test_a_checkpoint_of_another_task_is_named(tiny_pretrain_ckpt, tmp_path, capsys,
                                               tiny_overrides):
    assert main(["test", "--ckpt", str(tiny_pretrain_ckpt), "--out", str(tmp_path)]) == 2
    assert "a pretrain checkpoint; this command needs a finetune one" in _one_error_line(capsys)
    # A pretrain run resumed from a fine-tuning run's checkpoint is refused as well.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = torch.load(tiny_pretrain_ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["task"] = "finetune"
    torch.save(checkpoint, run / "checkpoints" / "last.ckpt")
    assert main(["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(run),
                 "--resume", *tiny_overrides]) == 2
    assert "a finetune checkpoint; this command needs a pretrain one" in _one_error_line(
        capsys, logs=True)


def test_feature_cache_reads_arrays_only(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.save("good", torch.ones(2, 3), torch.tensor([0, 1]))
    features, labels = cache.load("good")
    assert features.shape == (2, 3) and labels.tolist() == [0, 1]
    # An entry holding Python objects (a pickle inside the .npz) is recomputed, not unpickled.
    np.savez(tmp_path / "objects.npz", features=np.array([_Payload(tmp_path / "pwned")],
                                                        dtype=object), labels=np.zeros(1))
    assert cache.load("objects") is None
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "damaged.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert cache.load("damaged") is None
