import pickle
from contextlib import contextmanager

import av
import numpy as np
import pytest
import torch

import playspeed.data.video as video
from playspeed.data.datasets import VideoRecord
from playspeed.data.video import RawVideos, open_video, output_size, to_rgb, write_video
from playspeed.errors import PlayspeedError


def _record(path):
    return VideoRecord(path=path, label=-1, key=path.name)


def _smooth_frames(n, height=48, width=64):
    """Smooth moving gradients: little codec loss, every frame different."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return [np.stack([128 + 100 * np.sin(xx / 9 + t / 5), 128 + 100 * np.cos(yy / 7 - t / 4),
                      np.full_like(xx, 4 * t % 256)], axis=-1).astype(np.uint8)
            for t in range(n)]


def _decode_all(path, size=None):
    with open_video(path) as (container, stream):
        return [to_rgb(frame, size) for frame in container.decode(stream)]


@pytest.fixture(scope="module")
def gop4(tmp_path_factory):
    """45 frames, a keyframe every 4 frames, so that seeking matters."""
    path = tmp_path_factory.mktemp("video") / "gop4.avi"
    write_video(path, _smooth_frames(45), options={"g": "4"})
    return path


def test_output_size_rules():
    assert output_size(240, 320) == (128, 171)
    assert output_size(240, 320, resize=(64, 85)) == (64, 85)
    assert output_size(240, 320, resize=None) == (240, 320)
    assert output_size(240, 320, short_side=128) == (128, 171)
    assert output_size(320, 240, short_side=128) == (171, 128)  # portrait keeps its aspect
    with pytest.raises(ValueError):
        output_size(240, 320, resize=(0, 10))


def test_resize_agrees_with_antialiased_bilinear():
    frame = _smooth_frames(1, 240, 320)[0]
    ours = to_rgb(av.VideoFrame.from_ndarray(frame, format="rgb24"), (128, 171))
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(frame).permute(2, 0, 1)[None], size=(128, 171), mode="bilinear",
        antialias=True, align_corners=False)[0].permute(1, 2, 0).numpy()
    assert ours.shape == (128, 171, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - reference).mean() < 1.0


def test_write_video_round_trip(tmp_path):
    frames = _smooth_frames(20)
    path = tmp_path / "v.avi"
    assert write_video(path, frames, fps=30) == 20
    decoded = _decode_all(path)
    assert len(decoded) == 20
    assert np.abs(np.stack(decoded).astype(int) - np.stack(frames)).mean() < 6
    source = RawVideos(resize=None)
    assert source.num_frames(_record(path)) == 20
    assert source.fps(_record(path)) == 30.0


def test_write_video_rejects_odd_sizes_and_nothing(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.avi", [np.zeros((9, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.avi", [])


@pytest.mark.parametrize("indices", [[0], [44], [7, 3, 3, 30, 0, 44], list(range(40, 16, -3))])
def test_raw_videos_reads_what_full_decoding_gives(gop4, indices):
    expected = np.stack(_decode_all(gop4, (128, 171)))
    clip = RawVideos().read(_record(gop4), indices)
    assert clip.dtype == torch.uint8 and clip.shape == (len(indices), 128, 171, 3)
    assert np.array_equal(clip.numpy(), expected[indices])


def test_raw_videos_seeks_instead_of_decoding_from_the_start(gop4, monkeypatch):
    decoded = []
    opened = video.open_video

    class CountingContainer:
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def decode(self, *args, **kwargs):
            for frame in self._container.decode(*args, **kwargs):
                decoded.append(frame.pts)
                yield frame

    @contextmanager
    def counting_open(path):
        with opened(path) as (container, stream):
            yield CountingContainer(container), stream

    source = RawVideos()
    record = _record(gop4)
    source.num_frames(record)  # builds the packet index first, outside the count
    monkeypatch.setattr(video, "open_video", counting_open)
    source.read(record, [41, 42])
    assert 2 <= len(decoded) <= 4  # from keyframe 40, not 43 frames from frame 0
    decoded.clear()
    source.read(record, [1, 42])  # two runs far apart: two seeks
    assert len(decoded) <= 6


def test_raw_videos_with_b_frames_in_mp4(tmp_path):
    path = tmp_path / "b.mp4"
    write_video(path, _smooth_frames(30), codec="libx264",
                options={"bf": "2", "g": "8", "preset": "ultrafast"})
    with open_video(path) as (container, stream):
        has_b_frames = stream.codec_context.has_b_frames
    expected = np.stack(_decode_all(path, (48, 64)))
    source = RawVideos(resize=(48, 64))
    assert source.num_frames(_record(path)) == len(expected) == 30
    indices = [29, 0, 13, 14, 5, 21]
    assert np.array_equal(source.read(_record(path), indices).numpy(), expected[indices])
    assert has_b_frames  # the case this test is about


def test_raw_videos_short_side_and_errors(gop4, tmp_path):
    record = _record(gop4)
    assert RawVideos(short_side=96).read(record, [0]).shape == (1, 96, 128, 3)
    with pytest.raises(IndexError):
        RawVideos().read(record, [45])
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(PlayspeedError, match="bad.avi: cannot open video"):
        RawVideos().num_frames(_record(bad))


def test_raw_videos_pickles_without_its_caches(gop4):
    source = RawVideos(resize=(32, 43))
    source.num_frames(_record(gop4))
    clone = pickle.loads(pickle.dumps(source))
    assert clone._indexes == {} and clone.resize == (32, 43)
    assert torch.equal(clone.read(_record(gop4), [3]), source.read(_record(gop4), [3]))
