"""Video decoding and encoding with PyAV, the one frame resize, and the ``RawVideos`` source.

Frames are resized while they are converted from the decoder's YUV to RGB (FFmpeg's
swscale, bilinear): measured at 320x240 -> 171x128 this takes 0.15 ms a frame against
0.21 ms for full-size RGB conversion followed by an antialiased bilinear
``torch.nn.functional.interpolate``, and it keeps torch out of the decode workers.
``prepare`` and ``RawVideos`` both go through :func:`to_rgb`, so the frame store and
direct reading give the same pixels up to the store's codec.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from playspeed.data.records import VideoRecord
from playspeed.errors import PlayspeedError, first_line

#: File endings treated as videos when a folder is scanned (a list file may name any file).
VIDEO_EXTENSIONS = frozenset(
    {".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
     ".ogv", ".3gp", ".ts"}
)

#: Frame size (H, W) every frame is resized to unless told otherwise: the field's convention.
DEFAULT_RESIZE = (128, 171)


def output_size(
    height: int, width: int, *, resize: Sequence[int] | None = DEFAULT_RESIZE,
    short_side: int | None = None,
) -> tuple[int, int]:
    """The (H, W) a ``height x width`` frame is resized to.

    ``short_side`` wins over ``resize``: the shorter side becomes ``short_side`` and the
    other keeps the aspect ratio (rounded). With neither, frames keep their size.
    """
    if short_side is not None:
        if short_side <= 0:
            raise ValueError(f"short_side must be positive, got {short_side}")
        scale = short_side / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    if resize is None:
        return height, width
    h, w = (int(v) for v in resize)
    if h <= 0 or w <= 0:
        raise ValueError(f"resize must be two positive sizes (H, W), got {tuple(resize)}")
    return h, w


def to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """A decoded frame as ``H x W x 3`` uint8 RGB, resized to ``size`` (H, W) if given."""
    if size is None or (frame.height, frame.width) == tuple(size):
        return frame.to_ndarray(format="rgb24")
    height, width = size
    return frame.reformat(
        width=width, height=height, format="rgb24", interpolation="BILINEAR"
    ).to_ndarray()


@contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple[av.container.InputContainer,
                                                          av.video.stream.VideoStream]]:
    """Open ``path`` for single-threaded decoding of its first video stream.

    One thread per decoder: parallelism comes from decoding several videos at once
    (``prepare --workers``, DataLoader workers), which scales better than frame threads.
    Raises :class:`PlayspeedError` naming the file when it cannot be opened.
    """
    try:
        if os.path.getsize(path) == 0:
            raise PlayspeedError(f"{path}: empty file (0 bytes)")
        container = av.open(os.fspath(path))
    except (av.FFmpegError, OSError) as err:
        raise PlayspeedError(f"{path}: cannot open video ({_reason(err)})") from err
    try:
        if not container.streams.video:
            raise PlayspeedError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        yield container, stream
    finally:
        container.close()


def stream_fps(stream: av.video.stream.VideoStream) -> float:
    """Frames per second of a stream (the container's average rate, else its guess)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _reason(err: BaseException) -> str:
    """One-line cause of a decode error, without PyAV's errno prefix."""
    strerror = getattr(err, "strerror", None)
    return strerror.splitlines()[0] if strerror else first_line(err)


def write_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], *, fps: int | Fraction = 25,
    codec: str = "mpeg4", bit_rate: int | None = None, options: dict[str, str] | None = None,
) -> int:
    """Encode ``H x W x 3`` uint8 RGB frames into ``path`` (container from its ending).

    Single-threaded so the same frames always give the same bytes. ``bit_rate`` defaults
    to 0.15 bits per pixel per frame (UCF-101: about 0.3). Returns the frame count.
    """
    count = 0
    with av.open(os.fspath(path), mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = frame.shape[:2]
                if height % 2 or width % 2:
                    raise ValueError(f"frame size must be even for yuv420p, got {width}x{height}")
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.bit_rate = bit_rate or int(0.15 * width * height * float(fps))
                stream.codec_context.thread_count = 1
                if options:
                    stream.options = options
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        container.mux(stream.encode())
    return count


@dataclass(frozen=True)
class _Index:
    """Presentation timestamps of a video's frames, found by demuxing (no decoding)."""

    pts: np.ndarray          # int64, ascending: frame i is the one shown i-th
    keyframes: np.ndarray    # ascending frame indices where decoding can start
    fps: float


class RawVideos:
    """Frame source that decodes video files on demand, for small jobs without ``prepare``.

    ``read`` seeks to the keyframe before each run of wanted frames and decodes from
    there, so reading a clip costs a keyframe interval or two, not the whole video.
    Frames are resized like the frame store's (``resize`` (H, W), or ``short_side``).
    Frame ``i`` is the ``i``-th frame in presentation order, found from packet
    timestamps, the same numbering ``prepare`` gives by decoding from the start.
    Picklable: the per-video timestamp indexes are rebuilt lazily in each process.
    """

    def __init__(
        self, *, resize: Sequence[int] | None = DEFAULT_RESIZE, short_side: int | None = None
    ) -> None:
        self.resize = None if resize is None else tuple(int(v) for v in resize)
        self.short_side = short_side
        self._indexes: dict[Path, _Index] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_indexes": {}}

    def __repr__(self) -> str:
        return f"RawVideos(resize={self.resize}, short_side={self.short_side})"

    def num_frames(self, record: VideoRecord) -> int:
        return len(self._index(record.path).pts)

    def fps(self, record: VideoRecord) -> float:
        return self._index(record.path).fps

    def read(self, record: VideoRecord, frame_indices: Sequence[int]) -> torch.Tensor:
        """Frames ``frame_indices`` (any order, repeats allowed) as uint8 ``T x H x W x C``."""
        path = record.path
        index = self._index(path)
        wanted = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            raise ValueError("frame_indices is empty")
        if wanted.min() < 0 or wanted.max() >= len(index.pts):
            raise IndexError(
                f"{path}: frame indices must lie in [0, {len(index.pts)}), got "
                f"{int(wanted.min())}..{int(wanted.max())}"
            )
        targets = np.unique(wanted)
        target_set = set(targets.tolist())
        frame_of_pts = {int(p): i for i, p in enumerate(index.pts)}
        decoded: dict[int, np.ndarray] = {}
        with open_video(path) as (container, stream):
            size = output_size(stream.height, stream.width, resize=self.resize,
                               short_side=self.short_side)
            frames = None
            position = -1  # index of the frame the decoder returned last
            try:
                for target in targets.tolist():
                    if target in decoded:
                        continue
                    key = int(index.keyframes[np.searchsorted(index.keyframes, target,
                                                              side="right") - 1])
                    if frames is None or key > position + 1:
                        container.seek(int(index.pts[key]), stream=stream, backward=True)
                        frames = container.decode(stream)
                        position = key - 1
                    for frame in frames:
                        position = (frame_of_pts.get(frame.pts, position + 1)
                                    if frame.pts is not None else position + 1)
                        if position in target_set and position not in decoded:
                            decoded[position] = to_rgb(frame, size)
                        if position >= target:
                            break
            except av.FFmpegError as err:
                raise PlayspeedError(f"{path}: cannot decode ({_reason(err)})") from err
        lost = [t for t in targets.tolist() if t not in decoded]
        if lost:
            raise PlayspeedError(f"{path}: frames {lost[:5]} could not be decoded")
        return torch.from_numpy(np.stack([decoded[i] for i in wanted.tolist()]))

    def _index(self, path: Path) -> _Index:
        index = self._indexes.get(path)
        if index is None:
            index = self._indexes[path] = _build_index(path)
        return index


def _build_index(path: Path) -> _Index:
    with open_video(path) as (container, stream):
        pts, key_pts = [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream flush packet
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise PlayspeedError(f"{path}: packets carry no timestamps; run prepare")
                pts.append(stamp)
                if packet.is_keyframe:
                    key_pts.append(stamp)
        except av.FFmpegError as err:
            raise PlayspeedError(f"{path}: cannot read ({_reason(err)})") from err
        fps = stream_fps(stream)
    if not pts:
        raise PlayspeedError(f"{path}: no frames")
    order = np.sort(np.asarray(pts, dtype=np.int64))
    keyframes = np.searchsorted(order, np.asarray(key_pts, dtype=np.int64))
    # Decoding must be able to start somewhere: without a marked keyframe, start at 0.
    keyframes = np.unique(np.concatenate([[0], keyframes]))
    return _Index(pts=order, keyframes=keyframes, fps=fps)
