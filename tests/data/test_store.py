import json
import pickle

import numpy as np
import pytest
import torch

import playspeed.data.store as store
from playspeed.data.datasets import UCF101
from playspeed.data.prepare import prepare_store
from playspeed.data.store import (
    FrameStore,
    frames_path,
    load_index,
    read_frames,
    shard_journal,
    temporary_files,
    write_frames,
    write_index,
)
from playspeed.data.video import RawVideos, open_video, to_rgb
from playspeed.errors import PlayspeedError


def _random_frames(n, height=24, width=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def _decode(path, size=(128, 171)):
    with open_video(path) as (container, stream):
        return np.stack([to_rgb(frame, size) for frame in container.decode(stream)])


def test_raw_frames_round_trip_exactly(tmp_path):
    frames = _random_frames(9)
    path = tmp_path / "a" / "v.avi.frames"
    assert write_frames(path, iter(frames), fmt="raw") == (9, 24, 32)
    assert np.array_equal(read_frames(path, range(9)), frames)
    order = [8, 0, 3, 3, 8, 1]
    assert np.array_equal(read_frames(path, order), frames[order])
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_jpeg_frames_round_trip_within_codec_tolerance(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    frames = np.stack([np.stack([(xx * 4 + t) % 256, yy * 5, np.full_like(xx, 9 * t)], -1)
                       for t in range(6)]).astype(np.uint8)
    path = tmp_path / "v.frames"
    write_frames(path, frames, fmt="jpeg", quality=90)
    back = read_frames(path, [5, 2, 2])
    assert back.shape == (3, 48, 64, 3)
    assert np.abs(back.astype(int) - frames[[5, 2, 2]]).mean() < 3
    assert np.array_equal(back[1], back[2])
    assert path.stat().st_size < frames.nbytes / 3


def test_failed_write_leaves_nothing_visible(tmp_path):
    def broken():
        yield from _random_frames(3)
        raise KeyboardInterrupt

    path = tmp_path / "v.frames"
    with pytest.raises(KeyboardInterrupt):
        write_frames(path, broken(), fmt="raw")
    with pytest.raises(ValueError, match="no frames"):
        write_frames(path, [], fmt="raw")
    with pytest.raises(ValueError, match="frame size changed"):
        write_frames(path, [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []


def test_read_frames_checks_indices_and_file(tmp_path):
    path = tmp_path / "v.frames"
    write_frames(path, _random_frames(4), fmt="raw")
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        read_frames(path, [4])
    with pytest.raises(IndexError):
        read_frames(path, [-1])
    cut = tmp_path / "cut.frames"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PlayspeedError, match="cut.frames: damaged raw frames file"):
        read_frames(cut, [0])
    junk = tmp_path / "junk.frames"
    junk.write_bytes(bytes(64))
    with pytest.raises(PlayspeedError, match="not a playspeed frames file"):
        read_frames(junk, [0])


def test_store_matches_decode_and_resize(synth_root, synth_store):
    store = FrameStore(synth_store)
    records = UCF101(synth_root / "UCF-101", synth_root / "ucfTrainTestlist", subset="all")
    assert len(store) == len(records) == 12
    for record in records[::4]:
        expected = _decode(record.path)
        assert store.num_frames(record) == len(expected) == 40
        assert store.fps(record) == 25.0
        assert store.info(record)["height"] == 128 and store.info(record)["width"] == 171
        indices = [39, 0, 8, 16, 16, 24]
        clip = store.read(record, indices)
        assert clip.dtype == torch.uint8 and clip.shape == (6, 128, 171, 3)
        error = np.abs(clip.numpy().astype(int) - expected[indices])
        assert error.mean() < 2.5 and np.percentile(error, 99) < 24  # JPEG quality 90


def test_raw_store_is_exact_and_matches_raw_videos(synth_root, tmp_path):
    records = UCF101(synth_root / "UCF-101", synth_root / "ucfTrainTestlist", subset="test")
    prepare_store(records, tmp_path / "raw", fmt="raw", resize=(64, 85), progress=False)
    store, raw = FrameStore(tmp_path / "raw"), RawVideos(resize=(64, 85))
    for record in records:
        indices = list(range(0, 40, 3))[::-1]
        assert store.num_frames(record) == raw.num_frames(record)
        assert torch.equal(store.read(record, indices), raw.read(record, indices))
    assert FrameStore(tmp_path / "raw").settings["format"] == "raw"


def test_short_side_keeps_aspect(synth_root, tmp_path):
    records = UCF101(synth_root / "UCF-101", synth_root / "ucfTrainTestlist", subset="test")[:1]
    prepare_store(records, tmp_path / "s", short_side=32, progress=False)
    assert FrameStore(tmp_path / "s").read(records[0], [0]).shape == (1, 32, 43, 3)


def test_unknown_key_and_missing_store(synth_store, tmp_path):
    store = FrameStore(synth_store)
    with pytest.raises(PlayspeedError, match=f"{synth_store}: no video 'Nope/v.avi'"):
        store.read("Nope/v.avi", [0])
    assert "Nope/v.avi" not in store and store.keys()[0] in store
    with pytest.raises(PlayspeedError, match="not a frame store"):
        FrameStore(tmp_path)


def test_store_pickles(synth_store):
    store = FrameStore(synth_store)
    key = store.keys()[0]
    clone = pickle.loads(pickle.dumps(store))
    assert torch.equal(clone.read(key, [1, 2]), store.read(key, [1, 2]))


def test_frames_path_mirrors_keys(tmp_path):
    assert frames_path(tmp_path, "Class/v_Class_g01_c01.avi") == \
        tmp_path / "frames" / "Class" / "v_Class_g01_c01.avi.frames"


# --- shard journals, the merge, and creating a store from several machines at once ---

SETTINGS = {"format": "raw", "quality": None, "resize": None, "short_side": None}


def _entry(frames):
    return {"num_frames": frames, "fps": 25.0, "height": 2, "width": 3}


def _journal(path, *keys):
    path.write_text("".join(json.dumps({"key": key, **_entry(7)}) + "\n" for key in keys))


def test_readers_see_every_shard_journal(tmp_path):
    write_index(tmp_path, SETTINGS, {"a.avi": _entry(5)})
    _journal(tmp_path / shard_journal(0, 2), "b.avi")
    _journal(tmp_path / shard_journal(1, 2), "c.avi")
    with open(tmp_path / shard_journal(1, 2), "a") as journal:
        journal.write('{"key": "d.a')  # cut short by a killed shard: ignored
    settings, videos = load_index(tmp_path)
    assert sorted(videos) == ["a.avi", "b.avi", "c.avi"] and settings["format"] == "raw"
    assert FrameStore(tmp_path).keys() == ["a.avi", "b.avi", "c.avi"]


def test_a_merge_while_reading_is_read_again(tmp_path, monkeypatch):
    """The merge replaces index.json and then removes the journals: a reader that took the
    old index.json and then found the journals gone would lose the shards' videos."""
    write_index(tmp_path, SETTINGS, {"a.avi": _entry(5)})
    _journal(tmp_path / shard_journal(0, 1), "b.avi")
    read_journal = store._read_journal
    merges = []

    def merge_first(path):
        if not merges:  # the merge happens between reading index.json and the journals
            merges.append(path)
            write_index(tmp_path, SETTINGS, {"a.avi": _entry(5), "b.avi": _entry(7)})
            (tmp_path / shard_journal(0, 1)).unlink()
        return read_journal(path)

    monkeypatch.setattr(store, "_read_journal", merge_first)
    assert sorted(load_index(tmp_path)[1]) == ["a.avi", "b.avi"] and merges


def test_creating_the_index_keeps_the_first(tmp_path):
    write_index(tmp_path, SETTINGS, {}, create=True)
    write_index(tmp_path, {**SETTINGS, "format": "jpeg"}, {"x.avi": _entry(1)}, create=True)
    settings, videos = load_index(tmp_path)
    assert settings["format"] == "raw" and videos == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]  # no temporary file


def test_temporary_files_name_their_video(tmp_path):
    write_frames(frames_path(tmp_path, "c/v.avi"), _random_frames(2), fmt="raw")
    stale = frames_path(tmp_path, "c/v 2.avi").with_name(".v 2.avi.frames.4242.tmp")
    stale.write_bytes(b"")
    assert temporary_files(tmp_path) == {stale: "c/v 2.avi"}
    assert temporary_files(tmp_path / "nowhere") == {}
