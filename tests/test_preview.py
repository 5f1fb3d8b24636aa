import numpy as np
import pytest

from playspeed.cli import main
from playspeed.data.pretext import PlaybackSpeedClips
from playspeed.data.preview import draw_pretext_sample, signed_speed_label
from playspeed.data.video import write_video


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


def test_show_command_writes_a_png(tmp_path, capsys):
    frames = (np.full((48, 64, 3), 4 * i, dtype=np.uint8) for i in range(40))
    video = tmp_path / "v.avi"
    write_video(video, frames)
    out = tmp_path / "clips.png"
    assert main(["show", str(video), "--out", str(out), "--clip-len", "8", "--size", "32",
                 "--speeds", "1,2,4"]) == 0
    assert png_size(out)[0] > 400
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["missing.avi"], "missing.avi: no such file"),
    (["VIDEO", "--clip-len", "40"], "too short"),
    (["VIDEO", "--speeds", "1,two"], "--speeds"),
])
def test_show_errors(tmp_path, capsys, args, message):
    video = tmp_path / "v.avi"
    write_video(video, (np.zeros((16, 16, 3), dtype=np.uint8) for _ in range(20)))
    args = [str(video) if a == "VIDEO" else str(tmp_path / a) if a.endswith(".avi") else a
            for a in args]
    assert main(["show", *args, "--out", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err
