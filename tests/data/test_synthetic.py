import re

import numpy as np
import pytest

from playspeed.cli import main
from playspeed.data.datasets import UCF101
from playspeed.data.synthetic import (
    CLASS_SETS,
    CLASSES,
    MIRROR_PAIRS,
    MOTIONS,
    REVERSAL_PAIRS,
    TEMPO,
    VARIANTS,
    Clock,
    SceneMotion,
    draw_distractors,
    draw_look,
    draw_scene_motion,
    draw_tempo,
    group_layout,
    render,
    split_groups,
    still_frames,
    synth_options,
    write_dataset,
)
from playspeed.data.video import RawVideos
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
    assert "wrote 8 videos (2 classes, 12 frames of 32x24, variant default)" in \
        capsys.readouterr().out
    assert len(UCF101(tmp_path / "d" / "UCF-101", tmp_path / "d" / "ucfTrainTestlist")) == 6
    assert main(["synth", str(tmp_path / "e"), "--size", "33", "24"]) == 2
    assert main(["synth", str(tmp_path / "e"), "--classes", str(len(CLASSES) + 1)]) == 2
    assert main(["synth", str(tmp_path / "e"), "--videos-per-class", "0"]) == 2
    assert "at least 4 videos per class" in capsys.readouterr().err


# --- the family of datasets (issue 11) ---


@pytest.fixture(scope="module")
def family_root(tmp_path_factory):
    """The mirror class set with a range of lengths, a wide tempo and still stretches."""
    root = tmp_path_factory.mktemp("family")
    summary = write_dataset(root, variant="mirror", videos_per_class=4, size=(32, 24),
                            frames=(16, 40), tempo=(0.5, 2.0), static=(0.2, 0.4), seed=1)
    return root, summary


def test_a_variant_keeps_the_ucf101_layout(family_root):
    root, summary = family_root
    classes = sorted(CLASS_SETS["mirror-pairs"])
    assert (root / "ucfTrainTestlist" / "classInd.txt").read_bytes() == "".join(
        f"{i} {name}\r\n" for i, name in enumerate(classes, start=1)).encode()
    keys = [p.relative_to(root / "UCF-101").as_posix()
            for p in (root / "UCF-101").rglob("*.avi")]
    assert len(keys) == 4 * len(classes) == summary["videos"]
    assert all(re.fullmatch(r"(\w+)/v_\1_g\d\d_c\d\d\.avi", key) for key in keys)
    train = UCF101(root / "UCF-101", root / "ucfTrainTestlist", subset="train")
    test = UCF101(root / "UCF-101", root / "ucfTrainTestlist", subset="test")
    assert len(train) + len(test) == len(keys) and list(train.classes) == classes


def test_video_lengths_are_drawn_from_the_range_and_match_the_files(family_root):
    root, summary = family_root
    lengths = {key: info["frames"] for key, info in summary["per_video"].items()}
    assert summary["frames"] == [16, 40]
    assert min(lengths.values()) >= 16 and max(lengths.values()) <= 40
    assert len(set(lengths.values())) > 10  # drawn per video
    train = UCF101(root / "UCF-101", root / "ucfTrainTestlist", subset="train")
    source = RawVideos(resize=(24, 32))
    for record in list(train)[:6]:
        assert source.num_frames(record) == lengths[record.key]


def test_tempo_spread_is_the_one_asked_for(family_root):
    _, summary = family_root
    tempos = np.array([info["tempo"] for info in summary["per_video"].values()])
    assert tempos.min() >= 0.5 and tempos.max() <= 2.0
    rng = np.random.default_rng(0)
    wide = np.array([draw_tempo(rng, VARIANTS["original-tempo"].tempo) for _ in range(2000)])
    assert wide.min() >= 0.6 and wide.max() <= 1.7 and wide.max() / wide.min() > 2.5


def test_still_stretches_hold_the_asked_share_and_freeze_the_objects(family_root):
    _, summary = family_root
    shares = [info["still_frames"] / info["frames"] for info in summary["per_video"].values()]
    assert min(shares) >= 0.2 - 1 / 16 and max(shares) <= 0.4 + 1 / 16
    still = still_frames(100, 0.3, np.random.default_rng(4))
    assert still.sum() == 30
    frames = _frames("RotateClockwise", still=still, pan=0.0, noise=(0.0, 0.0), num_frames=100)
    unchanged = (frames[1:] == frames[:-1]).all(axis=(1, 2, 3))
    # A frame repeats its predecessor exactly where the motion's clock stood still.
    assert np.array_equal(unchanged, still[:-1])


def _frames(name="MoveRight", *, size=(48, 36), num_frames=30, pan=0.05, noise=(2.0, 8.0),
            still=None, seed=0):
    look = draw_look(np.random.default_rng([seed, 0]), size, pan=pan)
    return np.stack(list(render(name, look=look, rng=np.random.default_rng([seed, 1]), size=size,
                                num_frames=num_frames, still=still, pan=pan, noise=noise)))


def test_pan_moves_the_background_and_noise_has_the_asked_strength():
    resting = np.ones(30, dtype=bool)  # objects never move: only the camera and noise change
    quiet = _frames(still=resting, pan=0.0, noise=(0.0, 0.0))
    assert quiet.shape == (30, 36, 48, 3)
    assert (quiet == quiet[0]).all()
    panned = _frames(still=resting, pan=0.3, noise=(0.0, 0.0))
    assert np.abs(panned[1:].astype(int) - panned[:-1]).mean() > 1.0
    noisy = _frames(still=resting, pan=0.0, noise=(6.0, 6.0))
    assert (noisy.astype(float) - quiet).std() == pytest.approx(6.0, rel=0.1)


def test_class_sets():
    reversal = {frozenset(p) for p in REVERSAL_PAIRS}
    no_reversal = set(CLASS_SETS["no-reversal-pairs"])
    assert not any(pair <= no_reversal for pair in reversal)
    mirror = CLASS_SETS["mirror-pairs"]
    paired = {name for pair in MIRROR_PAIRS if set(pair) <= set(mirror) for name in pair}
    assert len(paired) / len(mirror) >= 0.75
    assert CLASS_SETS["default"] == CLASSES and len(CLASSES) == 13
    assert synth_options(class_set=("Bounce", "Grow")).class_names() == ("Bounce", "Grow")
    with pytest.raises(PlayspeedError, match="class names"):
        synth_options(class_set=("Bounce", "Jump"))
    with pytest.raises(PlayspeedError, match="variant 'nope'"):
        synth_options("nope")


def test_new_mirror_classes_move_as_named():
    assert (_within_cycles(_track("MoveDown")["y"], 0.5) > 0).all()
    assert (_within_cycles(_track("MoveUp")["y"], 0.5) < 0).all()
    for name, sign in (("SlideLeft", -1), ("SlideRight", 1)):
        step = _within_cycles(_track(name)["x"], 0.1)
        assert (sign * step[np.abs(step) > 1e-9] > 0).all()


def test_cli_variant_and_options(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "d"), "--variant", "no-reversal", "--classes", "2",
                 "--videos-per-class", "4", "--size", "32", "24", "--frames", "12", "20",
                 "--static", "0.1", "0.2", "--pan", "0.1", "--noise", "1", "3"]) == 0
    assert "(2 classes, 12-20 frames of 32x24, variant no-reversal)" in capsys.readouterr().out
    import json

    summary = json.loads((tmp_path / "d" / "synth.json").read_text())
    assert summary["classes"] == sorted(CLASS_SETS["no-reversal-pairs"][:2])
    assert summary["options"]["pan"] == 0.1 and summary["options"]["noise"] == [1.0, 3.0]
    assert main(["synth", str(tmp_path / "e"), "--class-set", "Bounce,Grow",
                 "--videos-per-class", "4", "--size", "32", "24", "--frames", "8"]) == 0
    assert (tmp_path / "e" / "UCF-101" / "Grow").is_dir()
    assert main(["synth", str(tmp_path / "f"), "--tempo", "2", "1"]) == 2
    assert main(["synth", str(tmp_path / "f"), "--class-set", "odd"]) == 2
    assert "class set 'odd'" in capsys.readouterr().err


# --- motion unrelated to the class (issue 28) ---


def _scene(name, options, *, still=None, num_frames=24, seed=0, scene_seed=0):
    """Frames of class ``name`` in one scene (look, camera and scene motion fixed by
    ``seed``/``scene_seed``), sway and sensor noise as ``options`` say."""
    look = draw_look(np.random.default_rng([seed, 0]), options.size, pan=options.reach())
    scene = draw_scene_motion(options, (scene_seed, 0, 1, 1), look=look, num_frames=num_frames)
    return np.stack(list(render(name, look=look, rng=np.random.default_rng([seed, 1]),
                                size=options.size, num_frames=num_frames, still=still,
                                pan=options.pan, noise=options.noise, scene=scene))), look


def _dilate(mask):
    """A per-frame pixel mask (``T x H x W``) grown by one pixel in each direction."""
    grown = mask.copy()
    for axis in (1, 2):
        for shift in (1, -1):
            grown |= np.roll(mask, shift, axis=axis)
    grown[:, :, 1:] |= grown[:, :, :-1]
    grown[:, :, :-1] |= grown[:, :, 1:]
    return grown


QUIET = {"pan": 0.0, "noise": (0.0, 0.0), "size": (64, 48)}


def test_the_defaults_draw_no_scene_motion_and_see_no_further():
    for name, options in VARIANTS.items():
        if name in ("crowd", "handheld"):
            continue
        look = draw_look(np.random.default_rng(0), options.size, pan=options.reach())
        assert draw_scene_motion(options, (0, 0, 1, 1), look=look, num_frames=8) == SceneMotion()
        assert options.reach() == options.pan  # the look is the one drawn before
    assert VARIANTS["crowd"].distractors > 0
    handheld = VARIANTS["handheld"]
    assert handheld.zoom > 0 and handheld.shake > 0 and handheld.flow > 0
    assert handheld.pan > VARIANTS["default"].pan


def test_each_new_option_draws_only_its_own_part():
    options = synth_options(distractors=4, size=(64, 48))
    look = draw_look(np.random.default_rng(0), options.size, pan=options.reach())
    crowd = draw_scene_motion(options, (0, 0, 1, 1), look=look, num_frames=20)
    assert len(crowd.distractors) == 4 and crowd.zoom is None and crowd.shake is None \
        and crowd.flow is None
    both = draw_scene_motion(synth_options(distractors=4, shake=0.02, size=(64, 48)),
                             (0, 0, 1, 1), look=look, num_frames=20)
    assert both.shake.shape == (20, 2) and np.abs(both.shake).max() <= 0.02
    # the shake comes from a generator of its own: the distractors are the same
    for a, b in zip(crowd.distractors, both.distractors, strict=True):
        assert np.array_equal(a.track.x, b.track.x) and np.array_equal(a.track.y, b.track.y)


def test_distractors_move_on_their_own_whatever_the_class():
    """The same scene behind two classes: the frames differ only where the class's shapes
    are, so no frame (not even a single one) shows the class through the distractors; the
    distractors cover a good share of every frame and keep moving while the class rests."""
    crowd = synth_options("crowd", **QUIET)
    plain = synth_options(**QUIET)
    frames = {}
    for name in ("MoveLeft", "MoveRight", "BreakApart"):
        frames[name], look = _scene(name, crowd)
        frames[name, "plain"], _ = _scene(name, plain)
    background = look.background[:48, :64]  # pan 0: the camera sees the look's corner
    for a, b in (("MoveLeft", "MoveRight"), ("MoveLeft", "BreakApart")):
        shapes = _dilate((frames[a, "plain"] != background).any(-1)
                         | (frames[b, "plain"] != background).any(-1))
        differ = (frames[a] != frames[b]).any(-1)
        assert not differ[~shapes].any()
        assert differ.any()  # the classes' shapes still show
    covered = (frames["MoveLeft"] != frames["MoveLeft", "plain"]).any(-1).mean(axis=(1, 2))
    assert covered.min() > 0.15  # every frame
    resting, _ = _scene("MoveLeft", crowd, still=np.ones(24, dtype=bool))
    changed = (resting[1:] != resting[:-1]).any(-1).mean(axis=(1, 2))
    assert changed.min() > 0.03  # the crowd moves when the class does not


def test_distractor_paths_stay_in_the_frame_at_varied_speeds():
    distractors = draw_distractors(np.random.default_rng(3), count=30, num_frames=200,
                                   aspect=4 / 3, bright=True)
    speeds = []
    for d in distractors:
        radius = float(d.track.radius)
        assert d.track.x.min() >= radius - 1e-9 and d.track.x.max() <= 4 / 3 - radius + 1e-9
        assert d.track.y.min() >= radius - 1e-9 and d.track.y.max() <= 1 - radius + 1e-9
        speeds.append(np.median(np.hypot(np.diff(d.track.x), np.diff(d.track.y))))
    assert max(speeds) > 3 * min(speeds) > 0
    # looks drawn as the class's shape is: dark on a bright background, light on a dark one
    def luminance(shapes):
        return np.array([d.shape.colour @ np.array([0.299, 0.587, 0.114]) for d in shapes])

    light = draw_distractors(np.random.default_rng(3), count=30, num_frames=2, aspect=4 / 3,
                             bright=False)
    assert luminance(distractors).max() < 100 < 150 < luminance(light).min()


def test_handheld_camera_and_flow_move_the_background():
    resting = np.ones(24, dtype=bool)  # the objects rest: only the scene moves
    still, _ = _scene("RotateClockwise", synth_options(**QUIET), still=resting)
    assert (still == still[0]).all()
    for option in ({"zoom": 0.3}, {"shake": 0.1}, {"flow": 0.02}):
        frames, _ = _scene("RotateClockwise", synth_options(**QUIET, **option), still=resting)
        assert (frames != frames[0]).any(-1).mean(axis=(1, 2)).max() > 0.3, option
    flowing, look = _scene("RotateClockwise", synth_options(**QUIET, flow=0.02), still=resting)
    # the flow keeps to its region: outside it (pan 0, no zoom) the frames stay as they were
    scene = draw_scene_motion(synth_options(**QUIET, flow=0.02), (0, 0, 1, 1), look=look,
                              num_frames=24)
    outside = scene.flow.mask[:48, :64, 0] == 0
    assert outside.mean() > 0.3 and (flowing[:, outside] == flowing[0, outside]).all()
    assert (flowing[:, ~outside] != flowing[0, ~outside]).any(axis=-1).mean() > 0.3


def test_the_handheld_camera_is_the_same_behind_either_class():
    """A time-reversal pair in one handheld scene (zoom, shake, flow; one shape each, at the
    same place): the frames differ only inside that shape's disk."""
    handheld = synth_options("handheld", pan=0.0, noise=(0.0, 0.0), size=(64, 48))
    clockwise, _ = _scene("RotateClockwise", handheld)
    counter, _ = _scene("RotateCounterclockwise", handheld)
    scene_change = (clockwise[1:] != clockwise[:-1]).any(-1).mean()
    assert scene_change > 0.3
    assert (clockwise[1:] != counter[1:]).any(axis=(1, 2, 3)).all()  # the rotations differ
    for a, b in zip(clockwise[1:], counter[1:], strict=True):
        rows, cols = np.nonzero((a != b).any(-1))
        spread = np.hypot(rows - rows.mean(), cols - cols.mean()).max()
        assert spread < 0.14 * 1.25 * np.exp(0.3) * 48 + 2  # radius x bump x zoom, pixels


def test_cli_writes_the_new_variants_and_records_their_options(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "c"), "--variant", "crowd", "--classes", "2",
                 "--videos-per-class", "4", "--size", "32", "24", "--frames", "12",
                 "--distractors", "3"]) == 0
    assert "variant crowd" in capsys.readouterr().out
    import json

    options = json.loads((tmp_path / "c" / "synth.json").read_text())["options"]
    assert options["distractors"] == 3 and options["zoom"] == 0.0
    assert main(["synth", str(tmp_path / "h"), "--variant", "handheld", "--classes", "2",
                 "--videos-per-class", "4", "--size", "32", "24", "--frames", "12",
                 "--zoom", "0.2", "--shake", "0.01", "--flow", "0.03"]) == 0
    options = json.loads((tmp_path / "h" / "synth.json").read_text())["options"]
    assert (options["zoom"], options["shake"], options["flow"], options["pan"]) == \
        (0.2, 0.01, 0.03, 0.15)
    assert len(UCF101(tmp_path / "h" / "UCF-101", tmp_path / "h" / "ucfTrainTestlist")) == 6
    assert main(["synth", str(tmp_path / "x"), "--distractors", "-1"]) == 2
    assert main(["synth", str(tmp_path / "x"), "--zoom", "2"]) == 2
    assert "zoom must be in [0, 1]" in capsys.readouterr().err


def test_a_distractor_takes_nothing_from_the_class_draws(tmp_path, monkeypatch):
    """write_dataset with one distractor and without: the raw frames differ only inside one
    disk per frame, so the class's shapes, sway and noise are the default variant's (whose
    bytes therefore stay as they were)."""
    import playspeed.data.synthetic as synthetic

    written = {}

    def capture(path, frames, **kwargs):
        written[path.parent.name, path.name.replace(".tmp", "")] = np.stack(list(frames))
        path.write_bytes(b"")

    monkeypatch.setattr(synthetic, "write_video", capture)
    args = dict(num_classes=2, videos_per_class=4, size=(64, 48), frames=20)
    write_dataset(tmp_path / "plain", **args)
    plain, written = written, {}
    write_dataset(tmp_path / "one", distractors=1, **args)
    assert plain.keys() == written.keys() and len(plain) == 8
    for key, frames in written.items():
        differ = (frames != plain[key]).any(-1)
        assert differ.mean() > 0.005, key  # the distractor shows
        for mask in differ:
            rows, cols = np.nonzero(mask)
            if len(rows):
                spread = np.hypot(rows - rows.mean(), cols - cols.mean()).max()
                assert spread < 2 * 0.14 * 1.25 * 48 + 2, key
