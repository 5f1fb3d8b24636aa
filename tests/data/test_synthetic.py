import re

import numpy as np
import pytest

from playspeed.cli import main
from playspeed.data.datasets import UCF101
from playspeed.data.synthetic import (
    CLASSES,
    MOTIONS,
    TEMPO,
    Clock,
    draw_tempo,
    group_layout,
    split_groups,
    write_dataset,
)
from playspeed.errors import PlayspeedError


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_is_ucf101s(synth_root):
    names = sorted(p.name for p in (synth_root / "ucfTrainTestlist").iterdir())
    assert names == ["classInd.txt", "testlist01.txt", "testlist02.txt", "testlist03.txt",
                     "trainlist01.txt", "trainlist02.txt", "trainlist03.txt"]
    assert (synth_root / "ucfTrainTestlist" / "classInd.txt").read_bytes() == \
        b"1 MoveLeft\r\n2 MoveRight\r\n3 RotateClockwise\r\n"
    videos = sorted((synth_root / "UCF-101").rglob("*"))
    keys = [p.relative_to(synth_root / "UCF-101").as_posix() for p in videos if p.is_file()]
    assert len(keys) == 12
    assert all(re.fullmatch(r"(\w+)/v_\1_g\d\d_c\d\d\.avi", key) for key in keys)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_splits_hold_out_whole_groups(synth_root, split):
    def groups(subset):
        records = UCF101(synth_root / "UCF-101", synth_root / "ucfTrainTestlist", split=split,
                         subset=subset)
        return {(r.label, r.key.split("_g")[1][:2]) for r in records}, len(records)

    (train, n_train), (test, n_test) = groups("train"), groups("test")
    assert n_train + n_test == 12 and n_test == 3
    assert not {g for _, g in train} & {g for _, g in test}
    assert {g for _, g in test} == {f"{split:02d}"}


def test_groups_and_splits_follow_ucf101():
    assert split_groups(25) == [list(range(1, 8)), list(range(8, 15)), list(range(15, 22))]
    assert split_groups(8) == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(PlayspeedError, match="at least 4 videos per class"):
        split_groups(3)
    assert group_layout(24) == [(g, c) for g in range(1, 9) for c in (1, 2, 3)]
    assert group_layout(4) == [(1, 1), (2, 1), (3, 1), (4, 1)]


def test_same_seed_same_bytes_and_classes_are_stable(synth_root, tmp_path):
    args = dict(videos_per_class=4, size=(64, 48), frames=40)
    write_dataset(tmp_path / "again", num_classes=3, **args)
    assert _files(tmp_path / "again") == _files(synth_root)
    write_dataset(tmp_path / "fewer", num_classes=2, **args)
    shared = _files(tmp_path / "fewer")
    assert {k for k in shared if k.endswith(".avi")} < set(_files(synth_root))
    assert all(shared[k] == _files(synth_root)[k] for k in shared if k.endswith(".avi"))
    write_dataset(tmp_path / "other", num_classes=2, seed=1, **args)
    other = _files(tmp_path / "other")
    assert all(other[k] != shared[k] for k in shared if k.endswith(".avi"))


def _clock(tempo=1.0, frames=200, seed=0):
    return Clock(t=np.arange(frames, dtype=float), tempo=tempo, radius=0.1, aspect=4 / 3,
                 rng=np.random.default_rng(seed))


def _track(name, **kwargs):
    (track,) = MOTIONS[name](_clock(**kwargs))
    return {f: np.broadcast_to(np.asarray(getattr(track, f), dtype=float), (200,))
            for f in ("x", "y", "radius", "angle")}


def _within_cycles(values, jump):
    """Frame-to-frame changes, leaving out the jumps where a new cycle starts."""
    step = np.diff(values)
    return step[np.abs(step) < jump]


def test_reversal_pairs_move_in_opposite_directions():
    assert (_within_cycles(_track("MoveRight")["x"], 0.5) > 0).all()
    assert (_within_cycles(_track("MoveLeft")["x"], 0.5) < 0).all()
    assert (np.diff(_track("RotateClockwise")["angle"]) > 0).all()
    assert (np.diff(_track("RotateCounterclockwise")["angle"]) < 0).all()
    assert (_within_cycles(_track("Grow")["radius"], 0.05) > 0).all()
    assert (_within_cycles(_track("Shrink")["radius"], 0.05) < 0).all()


def _speed(track):
    return np.hypot(np.diff(track["x"]), np.diff(track["y"]))


def test_speed_profiles():
    accelerate, constant = _speed(_track("Accelerate")), _speed(_track("ConstantSpeed"))
    accelerate, constant = accelerate[accelerate < 0.1], constant[constant < 0.1]
    assert np.ptp(constant) < 1e-9 and np.ptp(accelerate) > 0.01
    fall = np.diff(_track("FreeFall")["y"])
    falling = fall[(fall > 0) & (fall < 0.2)]
    assert (np.diff(falling)[np.diff(falling) > -0.05] >= -1e-12).all()  # speeds up
    assert falling.max() > 4 * falling[falling > 0].min()
    slide = _speed(_track("SlideToRest"))
    slide = slide[slide < 0.1]  # leave out the jumps to a new start
    slowing = -np.diff(slide)[np.diff(slide) < -1e-9]
    assert (slide < 1e-9).sum() >= 10  # comes to rest and stays a while
    assert np.isclose(slowing, np.median(slowing)).mean() > 0.8  # constant friction


def test_tempo_scales_speed():
    slow = np.median(np.abs(_within_cycles(_track("MoveRight", tempo=0.6)["x"], 0.5)))
    fast = np.median(np.abs(_within_cycles(_track("MoveRight", tempo=1.5)["x"], 0.5)))
    assert fast / slow == pytest.approx(2.5)


def test_tempo_spread_keeps_adjacent_playback_speeds_apart():
    # A clip at speed s moves at s x tempo: with the tempo spread under 2x, the fastest
    # 1x video still moves slower than the slowest 2x one, so speed labels never overlap.
    rng = np.random.default_rng(0)
    tempos = np.array([draw_tempo(rng) for _ in range(2000)])
    assert TEMPO[0] <= tempos.min() and tempos.max() <= TEMPO[1]
    assert tempos.max() < 2 * tempos.min()
    assert tempos.max() / tempos.min() > 0.9 * TEMPO[1] / TEMPO[0]  # the range is used


def test_bounces_lose_height():
    y = _track("Bounce", frames=200, seed=3)["y"]
    floor = y.max()
    # Apexes: local minima of y (y points down), strictly above the floor.
    apex = [i for i in range(1, 199) if y[i] <= y[i - 1] and y[i] < y[i + 1] and y[i] < floor]
    heights = floor - y[apex]
    drops = np.diff(heights)
    assert (drops < 0).sum() >= 3  # within one drop sequence every bounce is lower


def test_ripples_spread_and_fade_and_pieces_fly_apart():
    rings = MOTIONS["Ripple"](_clock())
    radius, alpha = np.asarray(rings[0].radius), np.asarray(rings[0].alpha)
    alive = alpha > 0
    assert (_within_cycles(radius[alive], 0.2) >= 0).all()
    assert (_within_cycles(alpha[alive], 0.5) <= 0).all()
    pieces = MOTIONS["BreakApart"](_clock())
    assert len(pieces) >= 3 and all(p.sector is not None for p in pieces)
    centre = np.mean([p.x for p in pieces], axis=0), np.mean([p.y for p in pieces], axis=0)
    spread = np.mean([np.hypot(p.x - centre[0], p.y - centre[1]) for p in pieces], axis=0)
    assert spread.max() > 0.2 and (spread < 1e-9).any()  # whole, then apart


def test_cli_writes_a_small_dataset(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "d"), "--classes", "2", "--videos-per-class", "4",
                 "--size", "32", "24", "--frames", "12", "--seed", "5"]) == 0
    assert "wrote 8 videos (2 classes, 12 frames of 32x24)" in capsys.readouterr().out
    assert len(UCF101(tmp_path / "d" / "UCF-101", tmp_path / "d" / "ucfTrainTestlist")) == 6
    assert main(["synth", str(tmp_path / "e"), "--size", "33", "24"]) == 2
    assert main(["synth", str(tmp_path / "e"), "--classes", str(len(CLASSES) + 1)]) == 2
    assert main(["synth", str(tmp_path / "e"), "--videos-per-class", "0"]) == 2
    assert "at least 4 videos per class" in capsys.readouterr().err
