import numpy as np
import pytest
import torch

from playspeed.cli import main
from playspeed.data.pretext import PlaybackSpeedClips
from playspeed.data.video import write_video
from playspeed.preview import draw_pretext_sample, model_view, signed_speed_label


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_signed_speed_label():
    assert signed_speed_label(4, -1) == "-4x"
    assert signed_speed_label(1, 1) == "+1x"


def test_draw_has_a_row_per_clip(coded_videos, tmp_path):
    records, source = coded_videos([100])
    three = PlaybackSpeedClips(records, source, clip_len=8, num_clips=3)[0]
    five = PlaybackSpeedClips(records, source, clip_len=8, num_clips=5)[0]
    w3, h3 = png_size(draw_pretext_sample(three, out=tmp_path / "a" / "three.png"))
    w5, h5 = png_size(draw_pretext_sample(five, out=tmp_path / "five.png"))
    assert w3 == w5 and h5 > h3
    # Written whole or not at all: no temporary file is left beside the picture.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "five.png"]


SMALL = ["clip.len=8", "clip.size=32", "clip.resize=[40,53]", "pretext.speeds=[1,2,4]"]


def test_show_command_writes_a_png(tmp_path, capsys):
    frames = (np.full((48, 64, 3), 4 * i, dtype=np.uint8) for i in range(40))
    video = tmp_path / "v.avi"
    write_video(video, frames)
    out = tmp_path / "clips.png"
    assert main(["show", str(video), "--out", str(out), *SMALL]) == 0
    assert png_size(out)[0] > 400
    assert str(out) in capsys.readouterr().out


def test_model_view_shows_what_the_first_stage_sees():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    pixels = torch.rand(2, 3, 6, 8, 8)  # N x C x T x H x W in [0, 1]
    normalised = (pixels - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1, 1)
    rgb = model_view(normalised, input_mode="rgb", mean=mean, std=std)
    assert torch.allclose(rgb, pixels, atol=1e-6)
    still = normalised[:, :, :1].expand(-1, -1, 6, -1, -1)
    for mode in ("frame_diff", "frame_diff_unit"):
        # a still clip has no differences: uniform grey
        assert torch.equal(model_view(still, input_mode=mode, mean=mean, std=std),
                           torch.full_like(still, 0.5))
        view = model_view(normalised, input_mode=mode, mean=mean, std=std)
        assert torch.equal(view[:, :, 0], torch.full_like(view[:, :, 0], 0.5))  # no predecessor
        # brighter where the pixel got brighter than in the frame before
        brighter = pixels[:, :, 1:] > pixels[:, :, :-1]
        assert ((view[:, :, 1:] > 0.5) == brighter).all()
    # unit energy scales each clip, which the per-clip display range undoes
    assert torch.allclose(model_view(normalised, input_mode="frame_diff", mean=mean, std=std),
                          model_view(normalised, input_mode="frame_diff_unit", mean=mean,
                                     std=std), atol=1e-5)


def test_show_draws_the_input_of_a_checkpoint(tiny_pretrain_ckpt, tmp_path, capsys,
                                              monkeypatch):
    """With --ckpt the sample is drawn as that model trained on it (its sampling, crop and
    input mode: the synthetic_cpu model sees unit-energy differences); --input chooses."""
    frames = (np.full((48, 64, 3), 4 * i, dtype=np.uint8) for i in range(40))
    video = tmp_path / "v.avi"
    write_video(video, frames)
    drawn = []
    monkeypatch.setattr("playspeed.preview.draw_pretext_sample",
                        lambda item, **kwargs: drawn.append((item, kwargs)) or kwargs["out"])
    assert main(["show", str(video), "--ckpt", str(tiny_pretrain_ckpt),
                 "--out", str(tmp_path / "a.png")]) == 0
    assert main(["show", str(video), "--ckpt", str(tiny_pretrain_ckpt), "--input", "rgb",
                 "--out", str(tmp_path / "b.png")]) == 0
    (diff, diff_kwargs), (rgb, rgb_kwargs) = drawn
    assert "input frame_diff_unit" in diff_kwargs["title"] and "input rgb" in rgb_kwargs["title"]
    # the checkpoint's clips: 8 frames of 32x32 (tests/conftest.py TINY_OVERRIDES)
    assert diff["clips"].shape[2:] == rgb["clips"].shape[2:] == (8, 32, 32)
    assert torch.equal(diff["frame_indices"], rgb["frame_indices"])
    # the video brightens frame after frame: played forward every difference is brighter than
    # grey, played backwards darker
    for clip, direction in zip(diff["clips"], diff["direction"].tolist(), strict=True):
        brighter = (clip[:, 1:] > 0.5).float().mean()
        assert brighter > 0.9 if direction > 0 else brighter < 0.1


@pytest.mark.parametrize("args, message", [
    (["missing.avi"], "missing.avi: no such file"),
    (["VIDEO", "clip.len=40"], "too short"),
    (["VIDEO", "pretext.speeds=[1,two]"], "pretext.speeds"),
])
def test_show_errors(tmp_path, capsys, args, message):
    video = tmp_path / "v.avi"
    write_video(video, (np.zeros((16, 16, 3), dtype=np.uint8) for _ in range(20)))
    args = [str(video) if a == "VIDEO" else str(tmp_path / a) if a.endswith(".avi") else a
            for a in args]
    assert main(["show", *args, "--out", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err
