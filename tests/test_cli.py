"""The CLI's contract: --help everywhere, one-line errors with exit 2, tracebacks on --debug."""

import pytest

from playspeed.cli import COMMANDS, main
from playspeed.errors import PlayspeedError


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: playspeed" in capsys.readouterr().out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize(("argv", "expected"), [
    (["pretrain", "--config", "absent.yaml"], "absent.yaml: no such config file"),
    (["pretrain", "--config", "pretrain/synthetic_cpu"], "data.videos is not set"),
    (["finetune", "--config", "finetune/synthetic_cpu", "model.depth=3"],
     "unknown config key 'model.depth'"),
    (["pretrain", "--config", "pretrain/synthetic_cpu", "data.videos=/no/such/dir",
      "data.splits=/no/such/lists"], "/no/such"),
    (["test", "--ckpt", "absent.ckpt"], "absent.ckpt: no such checkpoint"),
    (["retrieve", "--ckpt", "absent.ckpt", "--topk", "1,x"], "--topk '1,x'"),
])
def test_bad_input_is_one_error_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert expected in _error_line(capsys)


@pytest.mark.parametrize("command", ["test", "retrieve", "probe", "extract"])
def test_model_overrides_of_an_evaluation_are_refused(command, tiny_pretrain_ckpt,
                                                      untrained_checkpoint, tiny_config,
                                                      tmp_path, capsys):
    """The model is the checkpoint's: a model.* override would reach the reports and the
    feature cache's key but not the network, so it is refused in one line."""
    ckpt = tiny_pretrain_ckpt
    if command == "test":
        ckpt = untrained_checkpoint(tiny_config("finetune"), tmp_path / "ft.ckpt",
                                    task="finetune", classes=["a", "b", "c"])
    extra = ["--videos", str(tmp_path)] if command == "extract" else []
    out = ["--out", str(tmp_path / ("f.npz" if command == "extract" else "out"))]
    assert main([command, "--ckpt", str(ckpt), *extra, *out, "model.width=0.5"]) == 2
    assert "model.width: the model comes from the checkpoint" in _error_line(capsys)


def test_garbage_checkpoint_is_named(tmp_path, capsys):
    garbage = tmp_path / "model.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["probe", "--ckpt", str(garbage)]) == 2
    assert f"{garbage}: not a readable checkpoint" in _error_line(capsys)


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlayspeedError):
        main(["--debug", "test", "--ckpt", "absent.ckpt"])


def test_prepare_stores_frames_at_the_size_asked(synth_root, tmp_path, capsys):
    from playspeed.data import FrameStore, build_records

    store = tmp_path / "store"
    assert main(["prepare", "--dataset", "ucf101", "--videos", str(synth_root / "UCF-101"),
                 "--splits", str(synth_root / "ucfTrainTestlist"), "--out", str(store),
                 "--resize", "40", "53"]) == 0
    record = build_records("ucf101", videos=synth_root / "UCF-101",
                           splits=synth_root / "ucfTrainTestlist", split=1, subset="test")[0]
    assert FrameStore(store).read(record, [0, 1]).shape == (2, 40, 53, 3)
