import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from playspeed.data.clips import ClipClassification
from playspeed.data.pretext import PlaybackSpeedClips, PretextGrid
from playspeed.data.sampling import permutations
from playspeed.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from playspeed.errors import PlayspeedError

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)


def decode(clips):
    """Pixels of normalised ``N x C x T x H x W`` clips back to 0..255 values."""
    return torch.round((clips * STD + MEAN) * 255)


def train_transform(size=16):
    # Default normalisation, crop and flip on, colour jitter off: the red frame code stays exact.
    return ClipTransform(train=True, size=size, scale=(0.5, 1.0), flip=True)


def test_item_format_classify(coded_videos):
    records, source = coded_videos([120, 150])
    data = PlaybackSpeedClips(records, source, clip_len=8, num_clips=3,
                              transform=train_transform())
    item = data[1]
    assert set(item) == {"clips", "speed", "direction", "rotation", "frame_indices", "target",
                         "video_index"}
    assert item["clips"].shape == (3, 3, 8, 16, 16) and item["clips"].dtype == torch.float32
    assert (item["rotation"] == 0).all()
    for key, shape in (("speed", (3,)), ("direction", (3,)), ("frame_indices", (3, 8)),
                       ("target", (3, 2)), ("video_index", ())):
        assert item[key].shape == shape and item[key].dtype == torch.int64, key
    assert int(item["video_index"]) == 1
    speeds, directions = (1, 2, 4, 8), (1, -1)
    for (s_cls, d_cls), s, d in zip(item["target"], item["speed"], item["direction"],
                                    strict=True):
        assert speeds[s_cls] == s and directions[d_cls] == d
    signed = (item["speed"] * item["direction"]).tolist()
    assert len(set(signed)) == 3


def test_without_transform_clips_are_uint8_channels_first(coded_videos):
    records, source = coded_videos([60])
    item = PlaybackSpeedClips(records, source, clip_len=4, num_clips=2)[0]
    assert item["clips"].dtype == torch.uint8
    assert item["clips"].shape == (2, 3, 4, 24, 32)
    assert (item["clips"][:, 0, :, 0, 0] == item["frame_indices"]).all()


def test_pixels_come_from_the_named_frames_and_reversed_clips_run_backwards(coded_videos):
    records, source = coded_videos([130, 200, 90, 256])
    data = PlaybackSpeedClips(records, source, clip_len=8, num_clips=4,
                              transform=train_transform(), seed=3)
    reversed_seen = 0
    for epoch in range(3):
        data.set_epoch(epoch)
        for item in data:
            red = decode(item["clips"])[:, 0]  # N x T x H x W
            # every pixel of output frame t is source frame frame_indices[t]
            assert (red == item["frame_indices"][:, :, None, None].float()).all()
            steps = item["frame_indices"].diff(dim=1)
            assert (steps == (item["direction"] * item["speed"])[:, None]).all()
            backwards = item["direction"] < 0
            assert (red[backwards, 1:, 0, 0] < red[backwards, :-1, 0, 0]).all()
            reversed_seen += int(backwards.sum())
    assert reversed_seen > 10


def test_one_crop_per_clip_and_clips_crop_independently(coded_videos):
    records, source = coded_videos([200], height=48, width=64)
    data = PlaybackSpeedClips(records, source, clip_len=6, num_clips=8, transform=train_transform(),
                              speeds=(1, 2, 4, 8), directions=(1, -1))
    position = decode(data[0]["clips"])[:, 1:]  # N x 2 x T x H x W: column and row codes
    assert (position == position[:, :, :1]).all()  # all frames of a clip share the crop
    assert len({tuple(p[:, 0].flatten().tolist()) for p in position}) == 8


def test_sort_target_orders_clips_by_signed_speed_read_from_pixels(coded_videos):
    records, source = coded_videos([150, 256, 200])
    data = PlaybackSpeedClips(records, source, clip_len=6, num_clips=3, objective="sort",
                              transform=train_transform())
    targets = set()
    for epoch in range(4):
        data.set_epoch(epoch)
        for item in data:
            target = item["target"]
            assert target.shape == () and target.dtype == torch.int64
            targets.add(int(target))
            red = decode(item["clips"])[:, 0, :, 0, 0]  # N x T frame codes
            observed = (red[:, 1] - red[:, 0]).tolist()  # the signed step each clip shows
            order = list(permutations(3)[int(target)])
            assert [observed[i] for i in order] == sorted(observed)
    assert len(targets) >= 4  # the clips really come shuffled


def test_same_index_same_item_and_epochs_differ(coded_videos):
    records, source = coded_videos([100, 180, 256])

    def build(seed=0):
        return PlaybackSpeedClips(records, source, clip_len=8, transform=train_transform(),
                                  seed=seed)

    a, b = build(), build()
    for i in range(3):
        torch.testing.assert_close(a[i], b[i])
    indices = [a[i]["frame_indices"] for i in range(3)]
    a.set_epoch(1)
    assert a.epoch == 1
    assert any(not torch.equal(a[i]["frame_indices"], indices[i]) for i in range(3))
    a.set_epoch(0)
    assert all(torch.equal(a[i]["frame_indices"], indices[i]) for i in range(3))
    other = build(seed=1)
    assert any(not torch.equal(other[i]["frame_indices"], indices[i]) for i in range(3))


def test_dataloader_workers_give_the_same_items_and_see_set_epoch(coded_videos):
    records, source = coded_videos([100, 120, 140, 160, 180, 200])
    data = PlaybackSpeedClips(records, source, clip_len=4, transform=train_transform(8))
    loader = DataLoader(data, batch_size=2, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        data.set_epoch(epoch)  # before the epoch's iterator, as a sampler's set_epoch does
        batches = list(loader)
        expected = [data[i] for i in range(len(data))]
        got = torch.cat([b["frame_indices"] for b in batches])
        torch.testing.assert_close(got, torch.stack([e["frame_indices"] for e in expected]))
        torch.testing.assert_close(torch.cat([b["clips"] for b in batches]),
                                   torch.stack([e["clips"] for e in expected]))
        if epoch == 0:
            first = got
    assert not torch.equal(first, got)


def test_short_videos_are_excluded_and_counted_in_one_warning(coded_videos):
    # clip_len 16 at speeds 1, 2 needs 16 and 31 frames: 3 signed-speed clips need 31.
    records, source = coded_videos([30, 31, 10, 200])
    with pytest.warns(UserWarning, match="2 of 4 videos") as caught:
        data = PlaybackSpeedClips(records, source, clip_len=16, num_clips=3)
    assert len(caught) == 1
    assert data.excluded == [records[0].key, records[2].key]
    assert len(data) == 2
    assert [int(data[i]["video_index"]) for i in range(2)] == [1, 3]
    short = data[0]  # 31 frames: only skips 1 and 2 fit
    assert set(short["speed"].tolist()) <= {1, 2}
    with pytest.raises(IndexError):
        data[2]
    with pytest.raises(PlayspeedError, match="no video has the 31 frames"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PlaybackSpeedClips(records[:1], source, clip_len=16)


def test_loop_keeps_short_videos(coded_videos):
    records, source = coded_videos([20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = PlaybackSpeedClips(records, source, clip_len=16, num_clips=3, loop=True)
    item = data[0]
    assert data.excluded == []
    assert (item["clips"][:, 0, :, 0, 0] == item["frame_indices"]).all()
    steps = item["frame_indices"].diff(dim=1) % 20
    assert (steps == (item["speed"] * item["direction"])[:, None] % 20).all()


def test_each_distinct_frame_is_read_once_per_item(coded_videos):
    records, source = coded_videos([40])
    data = PlaybackSpeedClips(records, source, clip_len=16, num_clips=4, speeds=(1, 2))
    item = data[0]
    _, read = source.reads[-1]
    assert read == sorted(set(item["frame_indices"].flatten().tolist()))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_clips": 9}, "num_clips"),
    ({"speeds": (1, 1, 2)}, "speeds"),
    ({"directions": (1, 2)}, "directions"),
    ({"objective": "order"}, "objective"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments(coded_videos, kwargs, message):
    records, source = coded_videos([100])
    with pytest.raises(PlayspeedError, match=message):
        PlaybackSpeedClips(records, source, **kwargs)


def test_classify_with_one_clip_and_one_direction(coded_videos):
    records, source = coded_videos([100])
    data = PlaybackSpeedClips(records, source, clip_len=8, num_clips=1, directions=(1,),
                              speeds=(2, 4))
    rng_speeds = {int(data[0]["speed"][0])}
    for epoch in range(1, 12):
        data.set_epoch(epoch)
        item = data[0]
        assert item["target"].tolist() == [[(2, 4).index(int(item["speed"][0])), 0]]
        rng_speeds.add(int(item["speed"][0]))
    assert rng_speeds == {2, 4}
    assert np.all(item["direction"].numpy() == 1)


def test_reads_a_prepared_frame_store(synth_root, synth_store):
    from playspeed.data import UCF101, FrameStore

    records = UCF101(synth_root / "UCF-101", synth_root / "ucfTrainTestlist", subset="train")
    store = FrameStore(synth_store)
    plain = PlaybackSpeedClips(records, store, clip_len=8, speeds=(1, 2, 4))
    item = plain[2]
    frames = store.read(records[2], item["frame_indices"].flatten().tolist())
    assert torch.equal(item["clips"].permute(0, 2, 3, 4, 1).reshape(frames.shape), frames)
    transformed = PlaybackSpeedClips(records, store, clip_len=8, speeds=(1, 2, 4),
                                     transform=ClipTransform(train=True))[2]
    assert transformed["clips"].shape == (3, 3, 8, 112, 112)
    assert torch.equal(transformed["frame_indices"], item["frame_indices"])


def _grid_items(data):
    return [data[i] for i in range(len(data))]


def test_validation_grid_is_the_same_every_epoch_and_holds_every_speed_and_direction(
        coded_videos):
    records, source = coded_videos([130, 200, 50])
    data = PretextGrid(records, source, clip_len=8, num_starts=3,
                       transform=ClipTransform(train=False, size=16))
    # 130 and 200 frames fit every speed (8x spans 57); 50 frames fit 1x, 2x and 4x (29).
    assert len(data) == (4 + 4 + 3) * 2 * 3 and data.num_videos == 3
    first = _grid_items(data)
    data.set_epoch(5)
    for item, again in zip(first, _grid_items(data), strict=True):
        for key in item:
            assert torch.equal(item[key], again[key]), key
    loader_items = [item for batch in DataLoader(data, batch_size=5, num_workers=2)
                    for item in batch["frame_indices"]]
    assert all(torch.equal(a, b["frame_indices"]) for a, b in zip(loader_items, first,
                                                                    strict=True))
    for video in range(3):
        items = [i for i in first if int(i["video_index"]) == video]
        assert all(i["clips"].shape == (1, 3, 8, 16, 16) for i in items)
        signed = [int(i["speed"] * i["direction"]) for i in items]
        speeds = (1, 2, 4, 8) if video < 2 else (1, 2, 4)
        assert sorted(signed) == sorted(d * s for s in speeds for d in (1, -1) for _ in range(3))
        # Pixels come from the named frames, reversed clips run backwards.
        for item in items:
            red = decode(item["clips"])[0, 0, :, 0, 0]
            assert torch.equal(red, item["frame_indices"][0].float())


def test_validation_grid_chance_levels(coded_videos):
    records, source = coded_videos([130, 200])
    chance = PretextGrid(records, source, clip_len=8).chance_levels()
    assert chance == {"pretext": 12.5, "speed": 25.0, "direction": 50.0}
    one_way = PretextGrid(records, source, clip_len=8, speeds=(1, 2, 4), directions=(1,))
    assert one_way.chance_levels() == {"pretext": pytest.approx(100 / 3),
                                       "speed": pytest.approx(100 / 3), "direction": 100.0}
    # A video too short for 8x makes 8x rarer: chance is the most frequent label's share.
    records, source = coded_videos([40])
    short = PretextGrid(records, source, clip_len=8, speeds=(1, 2, 8))
    assert short.chance_levels()["speed"] == 50.0


def test_validation_grid_for_sort_is_a_fixed_seeded_set_of_samples(coded_videos):
    records, source = coded_videos([130, 200])
    data = PretextGrid(records, source, clip_len=8, objective="sort", samples_per_video=5,
                       seed=3)
    assert len(data) == 10
    first = _grid_items(data)
    data.set_epoch(2)
    assert all(torch.equal(a["frame_indices"], b["frame_indices"])
               for a, b in zip(first, _grid_items(data), strict=True))
    assert all(a["clips"].shape[0] == 3 for a in first)
    assert len({tuple(a["frame_indices"].flatten().tolist()) for a in first}) == 10
    chance = data.chance_levels()
    targets = [int(a["target"]) for a in first]
    assert chance == {"pretext": 100 * max(map(targets.count, targets)) / 10}


def test_items_are_built_on_one_thread_and_the_count_is_restored(coded_videos):
    """A clip's tensors are too small for intra-op threads: items built in the training
    process (no loader workers) run on one, and the training keeps its own count."""
    records, source = coded_videos([100, 100])
    seen = []

    def transform(clip, rng):
        seen.append(torch.get_num_threads())
        return clip.permute(3, 0, 1, 2).float()

    torch.set_num_threads(2)
    PlaybackSpeedClips(records, source, clip_len=8, num_clips=2, transform=transform)[1]
    ClipClassification(records, source, clip_len=8, transform=transform)[0]
    assert seen == [1, 1, 1] and torch.get_num_threads() == 2
