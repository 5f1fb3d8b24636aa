"""Every pretext objective on videos whose pixels encode the frame index: the label each
sample carries is the one its frames show (the clip order, the rotation, the direction the
frames run in, the speed they step at), every label occurs, and a sampler that mislabels
fails these checks."""

from pathlib import Path

import numpy as np
import pytest
import torch

import playspeed.data.pretext as pretext_module
from playspeed.data.datasets import VideoRecord
from playspeed.data.pretext import PlaybackSpeedClips
from playspeed.data.sampling import permutations
from playspeed.data.transforms import ClipTransform
from playspeed.data.video import RawVideos, write_video
from playspeed.objectives import OBJECTIVES

SPEEDS, DIRECTIONS, CLIP_LEN, GAP = (1, 2, 4, 8), (1, -1), 4, 8
# Every label of each objective (per clip for per-clip objectives, per sample for orders).
ALL_LABELS = {
    "classify": {(s, d) for s in range(4) for d in range(2)},
    "speed": {(s,) for s in range(4)},
    "direction": {(0,), (1,)},
    "rotation": {(k,) for k in range(4)},
    "sort": set(range(6)),
    "vcop": set(range(6)),
    "speed_contrast": {(s, d) for s in range(4) for d in range(2)},
}


def order_index(keys):
    """The class (index in ``permutations``) of the permutation that sorts ``keys``."""
    return permutations(len(keys)).index(tuple(int(i) for i in np.argsort(keys)))


def turns_shown(clip, upright):
    """Quarter turns counter-clockwise that take the ``upright`` clip to ``clip`` (exactly one)."""
    found = [k for k in range(4) if torch.equal(torch.rot90(upright, k, dims=(-2, -1)), clip)]
    assert len(found) == 1, found
    return found[0]


def labels_shown(objective, codes, rotations=None, *, speeds=SPEEDS):
    """The target of a sample as its frames show it.

    ``codes``: ``N x T`` frame indices read from the pixels; ``rotations``: the quarter
    turns read from the pixels (per clip); ``speeds``: the dataset's frame skips.
    """
    steps = np.diff(codes, axis=1)
    assert (steps == steps[:, :1]).all()  # each clip steps evenly through the video
    signed = steps[:, 0]
    if objective == "sort":
        return order_index(signed)
    if objective == "vcop":
        assert (signed == 1).all()
        starts = np.sort(codes[:, 0])
        assert (np.diff(starts) == CLIP_LEN + GAP).all()  # consecutive, GAP frames apart
        return order_index(codes[:, 0])
    speed = [speeds.index(abs(s)) for s in signed]
    direction = [DIRECTIONS.index(int(np.sign(s))) for s in signed]
    if objective not in ("classify", "speed_contrast"):  # speed_contrast draws as classify
        assert objective in ("speed", "direction", "rotation")
        assert objective == "direction" or (signed > 0).all()  # the others play forward
        assert objective == "speed" or (np.abs(signed) == 1).all()  # the others at 1x
    columns = {"classify": [speed, direction], "speed_contrast": [speed, direction],
               "speed": [speed], "direction": [direction], "rotation": [rotations]}[objective]
    return np.stack(columns, axis=1)


def check_samples(objective, data, source, *, epochs):
    """Every item's target is what its pixels show; returns the labels seen."""
    seen = set()
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for item in data:
            clips = item["clips"]  # uint8 N x C x T x H x W
            codes = clips[:, 0, :, 0, 0].numpy().astype(np.int64)  # red = frame index
            assert (codes == item["frame_indices"].numpy()).all()
            record = data.records[int(item["video_index"])]
            upright = [source.read(record, idx.tolist()).permute(3, 0, 1, 2)
                       for idx in item["frame_indices"]]
            rotations = [turns_shown(clip, up) for clip, up in zip(clips, upright, strict=True)]
            assert rotations == item["rotation"].tolist()
            shown = labels_shown(objective, codes, rotations)
            target = item["target"].numpy()
            assert np.array_equal(target, shown), (target, shown)
            seen |= {int(shown)} if target.ndim == 0 else {tuple(row) for row in shown.tolist()}
    return seen


def coded_dataset(coded_videos, objective):
    # square frames, so rotations keep the shape; the column/row codes make them asymmetric
    records, source = coded_videos([60, 100, 256], height=12, width=12)
    return PlaybackSpeedClips(records, source, clip_len=CLIP_LEN, speeds=SPEEDS,
                              directions=DIRECTIONS, num_clips=3, objective=objective,
                              clip_gap=GAP, seed=5), source


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_labels_match_the_frames_and_every_label_occurs(coded_videos, objective):
    data, source = coded_dataset(coded_videos, objective)
    assert check_samples(objective, data, source, epochs=20) == ALL_LABELS[objective]


def _mislabel(target):
    # the first reading of the first clip (or the order class) moves to the next class
    target = target.copy()
    if target.ndim == 0:
        return np.asarray((int(target) + 1) % 6)
    target[0, 0] = (target[0, 0] + 1) % {"rotation": 4}.get(_mislabel.objective, 2)
    return target


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_the_checks_catch_a_sampler_that_mislabels(coded_videos, objective, monkeypatch):
    real = pretext_module.objective_target
    _mislabel.objective = objective
    monkeypatch.setattr(pretext_module, "objective_target",
                        lambda *args, **kwargs: _mislabel(real(*args, **kwargs)))
    data, source = coded_dataset(coded_videos, objective)
    with pytest.raises(AssertionError):
        check_samples(objective, data, source, epochs=1)


def test_rotation_survives_crop_flip_and_normalisation(coded_videos):
    """With the training transform the row code (which a horizontal flip leaves alone) still
    runs down the clip once it is turned back by its label."""
    records, source = coded_videos([80], height=48, width=64)
    transform = ClipTransform(train=True, size=16, scale=(0.5, 1.0), flip=True)
    data = PlaybackSpeedClips(records, source, clip_len=CLIP_LEN, num_clips=4,
                              objective="rotation", transform=transform)
    seen = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        item = data[0]
        for clip, turns in zip(item["clips"], item["target"][:, 0].tolist(), strict=True):
            upright = torch.rot90(clip, -turns, dims=(-2, -1))[2, 0]  # blue = row, frame 0
            assert (upright.diff(dim=0) > 0).all() and (upright.diff(dim=1).abs() < 1e-4).all()
            seen.add(turns)
    assert seen == {0, 1, 2, 3}


def test_rotation_needs_square_clips(coded_videos):
    records, source = coded_videos([80], height=12, width=16)
    data = PlaybackSpeedClips(records, source, clip_len=CLIP_LEN, objective="rotation")
    with pytest.raises(Exception, match="rotation needs square clips, got 12x16"):
        data[0]


@pytest.fixture(scope="module")
def encoded_video(tmp_path_factory):
    """A real encoded video: frame i is grey level 30 + 3 i, with a white top-left block of
    the centred square (it shows where the clip was turned to)."""
    path = tmp_path_factory.mktemp("coded") / "coded.avi"
    frames = []
    for i in range(60):
        frame = np.full((48, 64, 3), 30 + 3 * i, np.uint8)
        frame[:20, 8:28] = 255
        frames.append(frame)
    write_video(path, frames)
    return path


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_labels_match_the_frames_of_an_encoded_video(encoded_video, objective):
    record = VideoRecord(path=Path(encoded_video), label=0, key="coded.avi")
    transform = ClipTransform(train=False, size=24, mean=(0, 0, 0), std=(1, 1, 1))
    data = PlaybackSpeedClips([record], RawVideos(resize=None), clip_len=CLIP_LEN,
                              speeds=(1, 2, 4), num_clips=3, objective=objective,
                              clip_gap=GAP, transform=transform)
    for epoch in range(4):
        data.set_epoch(epoch)
        item = data[0]
        grey = item["clips"] * 255  # N x C x T x 24 x 24, the centred 48x48 square
        codes = ((grey[:, 0].flatten(-2).median(-1).values - 30) / 3).round().long().numpy()
        assert (codes == item["frame_indices"].numpy()).all()
        quadrants = grey[:, 0, 0].unfold(-2, 12, 12).unfold(-2, 12, 12).mean((-2, -1))
        # the white block sits in the top-left quadrant turned k times counter-clockwise
        corner = [(0, 0), (1, 0), (1, 1), (0, 1)]
        rotations = [corner.index(divmod(int(q.argmax()), 2)) for q in quadrants]
        shown = labels_shown(objective, codes, rotations, speeds=(1, 2, 4))
        assert np.array_equal(item["target"].numpy(), shown)
