import pytest
import torch

from playspeed.data.clips import ClipClassification
from playspeed.data.sampling import sample_test_clips
from playspeed.data.transforms import ClipTransform
from playspeed.errors import PlayspeedError

IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255, 1 / 255, 1 / 255)}  # output = pixel value


def test_train_item_is_one_random_clip_with_the_label(coded_videos):
    records, source = coded_videos([100, 150], labels=[4, 7])
    data = ClipClassification(records, source, clip_len=8, stride=2, mode="train",
                              transform=ClipTransform(train=True, size=16, **IDENTITY))
    assert len(data) == 2
    item = data[1]
    assert set(item) == {"clips", "label", "frame_indices", "video_index"}
    assert item["clips"].shape == (3, 8, 16, 16) and item["clips"].dtype == torch.float32
    assert item["frame_indices"].shape == (8,) and item["frame_indices"].dtype == torch.int64
    assert int(item["label"]) == 7 and int(item["video_index"]) == 1
    assert (item["frame_indices"].diff() == 2).all()
    # pixels are the named frames, forward, one crop for the clip
    red = item["clips"][0]
    assert (red == item["frame_indices"].float().view(8, 1, 1)).all()
    assert (item["clips"][1:] == item["clips"][1:, :1]).all()


def test_train_clips_change_with_the_epoch_and_repeat_within_it(coded_videos):
    records, source = coded_videos([200])
    data = ClipClassification(records, source, clip_len=8)
    first = data[0]["frame_indices"]
    assert torch.equal(data[0]["frame_indices"], first)
    starts = set()
    for epoch in range(10):
        data.set_epoch(epoch)
        starts.add(int(data[0]["frame_indices"][0]))
    assert len(starts) > 5


def test_test_item_holds_evenly_spaced_clips_and_ignores_the_epoch(coded_videos):
    records, source = coded_videos([120], labels=[2])
    data = ClipClassification(records, source, clip_len=16, mode="test", num_test_clips=10,
                              transform=ClipTransform(train=False, size=16, **IDENTITY))
    item = data[0]
    assert item["clips"].shape == (10, 3, 16, 16, 16)
    assert item["frame_indices"].shape == (10, 16)
    expected = sample_test_clips(120, clip_len=16, num_clips=10)
    assert item["frame_indices"].tolist() == expected.tolist()
    assert (item["clips"][:, 0, :, 0, 0] == item["frame_indices"].float()).all()
    assert int(item["label"]) == 2
    data.set_epoch(5)
    torch.testing.assert_close(data[0], item)


def test_short_video_repeats_its_last_frame(coded_videos):
    records, source = coded_videos([5])
    for mode in ("train", "test"):
        item = ClipClassification(records, source, clip_len=8, mode=mode, num_test_clips=2)[0]
        expected = [0, 1, 2, 3, 4, 4, 4, 4]
        indices = item["frame_indices"].view(-1, 8).tolist()
        assert all(row == expected for row in indices)
        clips = item["clips"].view(-1, 3, 8, 24, 32)
        assert (clips[:, 0, :, 0, 0] == torch.tensor(expected, dtype=torch.uint8)).all()


def test_bad_arguments(coded_videos):
    records, source = coded_videos([10])
    with pytest.raises(PlayspeedError, match="mode"):
        ClipClassification(records, source, mode="val")
    with pytest.raises(PlayspeedError, match="stride"):
        ClipClassification(records, source, stride=0)


def test_reads_a_prepared_frame_store(synth_root, synth_store):
    from playspeed.data import UCF101, FrameStore

    records = UCF101(synth_root / "UCF-101", synth_root / "ucfTrainTestlist", subset="test")
    store = FrameStore(synth_store)
    item = ClipClassification(records, store, clip_len=8, mode="test", num_test_clips=3)[1]
    assert item["clips"].shape == (3, 3, 8, 128, 171) and int(item["label"]) == records[1].label
    frames = store.read(records[1], item["frame_indices"].flatten().tolist())
    assert torch.equal(item["clips"].permute(0, 2, 3, 4, 1).reshape(frames.shape), frames)
