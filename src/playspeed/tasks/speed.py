"""The playback-speed detector: the pretext head read along a video.

A video played as recorded looks like ``+1x`` to a model pretrained on playback speeds.
Sliding ``clip_len``-frame windows (frame skip 1, as the video plays) over the video and
reading each window's predicted speed and direction therefore finds stretches that were
sped up (predicted ``2x``, ``4x``, ...) or reversed (predicted direction ``-1``).

Flagging: each window is *normal* (``+1x``), *reversed* (any negative speed) or *sped up*
(``+2x`` and faster); runs of at least ``min_windows`` consecutive windows of the same
non-normal kind are flagged, so a sped-up stretch right next to a reversed one gives two
segments. A flagged segment covers the frames whose nearest window centre belongs to it
(windows overlap, so this is where the change sits, not the windows' whole extent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from playspeed.errors import PlayspeedError


@dataclass(frozen=True)
class WindowPrediction:
    start: int  # first frame of the window
    speed: int  # predicted frame skip
    direction: int  # predicted +1 / -1
    confidence: float  # probability of the predicted (speed, direction) pair

    @property
    def signed_speed(self) -> int:
        return self.speed * self.direction

    @property
    def kind(self) -> str:
        """``normal`` | ``sped up`` | ``reversed``."""
        if self.direction < 0:
            return "reversed"
        return "normal" if self.speed == 1 else "sped up"


@dataclass(frozen=True)
class Segment:
    first_frame: int
    last_frame: int  # inclusive
    signed_speed: int  # the most frequent prediction over the segment's windows
    kind: str  # "sped up" | "reversed"


Predictor = Callable[[torch.Tensor], torch.Tensor]
"""Clips ``B x C x T x H x W`` -> probabilities ``B x S x D`` of each (speed, direction)."""


def window_starts(num_frames: int, *, clip_len: int, stride: int) -> list[int]:
    """Window starts every ``stride`` frames, the last window ending at the last frame."""
    if stride < 1:
        raise PlayspeedError(f"stride must be >= 1, got {stride}")
    if num_frames < clip_len:
        raise PlayspeedError(f"video has {num_frames} frames; one window needs {clip_len}")
    starts = list(range(0, num_frames - clip_len + 1, stride))
    if starts[-1] != num_frames - clip_len:
        starts.append(num_frames - clip_len)
    return starts


def predict_windows(predict: Predictor, source, record, *, clip_len: int, stride: int,
                    speeds: list[int], directions: list[int], transform=None,
                    batch_size: int = 16) -> list[WindowPrediction]:
    """Each window's most likely (speed, direction) and its probability.

    Windows are read a batch at a time: the frames a batch spans are read once.
    """
    starts = window_starts(source.num_frames(record), clip_len=clip_len, stride=stride)
    generator = np.random.default_rng(0)  # eval transforms draw nothing; kept for the API
    predictions: list[WindowPrediction] = []
    for first in range(0, len(starts), batch_size):
        batch_starts = starts[first:first + batch_size]
        offset = batch_starts[0]
        frames = source.read(record, np.arange(offset, batch_starts[-1] + clip_len))
        clips = []
        for start in batch_starts:
            clip = frames[start - offset:start - offset + clip_len]  # T x H x W x C
            clips.append(transform(clip, generator) if transform else clip.permute(3, 0, 1, 2))
        joint = predict(torch.stack(clips)).float()  # B x S x D
        if joint.shape[1:] != (len(speeds), len(directions)):
            raise ValueError(f"predictor gave {tuple(joint.shape)}, expected "
                             f"B x {len(speeds)} x {len(directions)}")
        best = joint.flatten(1).argmax(1)
        for row, start in enumerate(batch_starts):
            s, d = divmod(int(best[row]), len(directions))
            predictions.append(WindowPrediction(start=start, speed=speeds[s],
                                                direction=directions[d],
                                                confidence=float(joint[row, s, d])))
    return predictions


def flag_segments(predictions: list[WindowPrediction], *, clip_len: int,
                  min_windows: int = 2, num_frames: int | None = None) -> list[Segment]:
    """Runs of >= ``min_windows`` consecutive windows of one non-normal kind, as frame ranges.

    A segment covers the frames nearer to one of its windows' centres than to any other
    window's (the first and last windows also own the video's ends, up to ``num_frames``;
    default: the last window's end); its speed is the most frequent prediction among its
    windows (ties: the slower one).
    """
    if not predictions:
        return []
    starts = [p.start for p in predictions]
    centres = [start + (clip_len - 1) / 2 for start in starts]
    last = (num_frames - 1) if num_frames is not None else starts[-1] + clip_len - 1
    # Frame boundaries between neighbouring windows: halfway between their centres.
    lower = [0] + [int(np.floor((a + b) / 2)) + 1 for a, b in pairwise(centres)]
    upper = [bound - 1 for bound in lower[1:]] + [last]
    segments: list[Segment] = []
    first = 0
    while first < len(predictions):
        kind = predictions[first].kind
        end = first
        while end + 1 < len(predictions) and predictions[end + 1].kind == kind:
            end += 1
        if kind != "normal" and end - first + 1 >= min_windows:
            counts = Counter(p.signed_speed for p in predictions[first:end + 1])
            signed = max(counts, key=lambda value: (counts[value], -abs(value)))
            segments.append(Segment(lower[first], upper[end], signed, kind))
        first = end + 1
    return segments


def detect_speed(ckpt: Path, video: Path, *, out: Path | None = None, stride: int | None = None,
                 min_windows: int = 2, truth=None) -> dict[str, Any]:
    """Predict playback speed along ``video`` with a ``classify`` pretrain checkpoint.

    Prints nothing; returns the timeline and flagged segments and writes a plot to ``out``
    (with the known segments ``truth`` of a video re-timed on purpose, if given).
    ``stride`` defaults to half a window.
    """
    from playspeed.data import RawVideos, VideoRecord
    from playspeed.report import plot_speed_timeline
    from playspeed.tasks.checkpoints import load_task
    from playspeed.tasks.data import clip_transform
    from playspeed.tasks.evaluation import autocast_for, inference_device

    task = load_task(ckpt, expect="pretrain")
    config = task.config
    if config.pretext.objective != "classify":
        raise PlayspeedError(f"{ckpt}: needs a pretrain checkpoint of the classify objective "
                             f"(this one: {config.pretext.objective}, which predicts clip "
                             "order, not each clip's speed)")
    if not Path(video).is_file():
        raise PlayspeedError(f"{video}: no such video")
    device = inference_device()
    task.to(device)
    speeds, directions = list(config.pretext.speeds), list(config.pretext.directions)

    def predict(clips: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast_for(config, device):
            outputs = task(clips.to(device)[:, None])  # one clip per sample
        if config.pretext.joint:  # class k = speed index * D + direction index
            return outputs["signed_speed"].float().softmax(-1).view(
                -1, len(speeds), len(directions)).cpu()
        speed = outputs["speed"].float().softmax(-1)
        direction = outputs["direction"].float().softmax(-1)
        return (speed[:, :, None] * direction[:, None, :]).cpu()

    source = RawVideos(resize=tuple(config.clip.resize))
    record = VideoRecord(path=Path(video), label=-1, key=Path(video).name)
    clip_len = config.clip.len
    num_frames = source.num_frames(record)
    predictions = predict_windows(
        predict, source, record, clip_len=clip_len, stride=stride or max(1, clip_len // 2),
        speeds=speeds, directions=directions, transform=clip_transform(config, train=False))
    segments = flag_segments(predictions, clip_len=clip_len, min_windows=min_windows,
                             num_frames=num_frames)
    fps = source.fps(record) or 25.0
    if out is not None:
        plot_speed_timeline(predictions, segments, clip_len=clip_len, fps=fps, path=Path(out),
                            title=Path(video).name, truth=truth)
    return {"fps": fps, "num_frames": num_frames, "windows": predictions, "segments": segments}
