"""The playback-speed detector: the pretext head read along a video.

A video played as recorded looks like ``+1x`` to a model pretrained on playback speeds.
Sliding ``clip_len``-frame windows (frame skip 1, as the video plays) over the video and
reading each window's predicted speed and direction therefore finds stretches that were
sped up (predicted ``2x``, ``4x``, ...) or reversed (predicted direction ``-1``). Runs of
at least ``min_windows`` consecutive windows whose prediction is not ``+1x`` are flagged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Segment:
    first_frame: int
    last_frame: int  # inclusive
    signed_speed: int  # the most frequent prediction over the segment's windows
    kind: str  # "sped up" | "slowed down" | "reversed"


Predictor = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""Clips ``B x C x T x H x W`` -> (speed probabilities ``B x S``, direction probs ``B x D``)."""


def window_starts(num_frames: int, *, clip_len: int, stride: int) -> list[int]:
    """Window starts every ``stride`` frames, the last window ending at the last frame."""
    if num_frames < clip_len:
        raise PlayspeedError(f"video has {num_frames} frames; one window needs {clip_len}")
    starts = list(range(0, num_frames - clip_len + 1, stride))
    if starts[-1] != num_frames - clip_len:
        starts.append(num_frames - clip_len)
    return starts


def predict_windows(predict: Predictor, source, record, *, clip_len: int, stride: int,
                    speeds: list[int], directions: list[int], transform=None,
                    batch_size: int = 16) -> list[WindowPrediction]:
    """Each window's most likely (speed, direction) and its probability."""
    starts = window_starts(source.num_frames(record), clip_len=clip_len, stride=stride)
    generator = np.random.default_rng(0)  # eval transforms draw nothing; kept for the API
    predictions: list[WindowPrediction] = []
    for first in range(0, len(starts), batch_size):
        batch_starts = starts[first:first + batch_size]
        clips = []
        for start in batch_starts:
            clip = source.read(record, np.arange(start, start + clip_len))  # T x H x W x C
            clips.append(transform(clip, generator) if transform else clip.permute(3, 0, 1, 2))
        speed_probs, direction_probs = predict(torch.stack(clips))
        joint = speed_probs[:, :, None] * direction_probs[:, None, :]  # B x S x D
        best = joint.flatten(1).argmax(1)
        for row, start in enumerate(batch_starts):
            s, d = divmod(int(best[row]), len(directions))
            predictions.append(WindowPrediction(start=start, speed=speeds[s],
                                                direction=directions[d],
                                                confidence=float(joint[row, s, d])))
    return predictions


def flag_segments(predictions: list[WindowPrediction], *, clip_len: int,
                  min_windows: int = 2) -> list[Segment]:
    """Runs of >= ``min_windows`` consecutive windows not predicted ``+1x``, as frame ranges.

    A segment spans from its first window's start to its last window's end; its speed is
    the most frequent prediction among its windows.
    """
    segments: list[Segment] = []
    run: list[WindowPrediction] = []
    for prediction in [*predictions, None]:
        if prediction is not None and prediction.signed_speed != 1:
            run.append(prediction)
            continue
        if len(run) >= min_windows:
            values, counts = np.unique([p.signed_speed for p in run], return_counts=True)
            signed = int(values[counts.argmax()])
            kind = "reversed" if signed < 0 else ("sped up" if signed > 1 else "slowed down")
            segments.append(Segment(run[0].start, run[-1].start + clip_len - 1, signed, kind))
        run = []
    return segments


def detect_speed(ckpt: Path, video: Path, *, out: Path | None = None, stride: int | None = None,
                 min_windows: int = 2) -> dict[str, Any]:
    """Predict playback speed along ``video`` with a ``classify`` pretrain checkpoint.

    Prints nothing; returns the timeline and flagged segments and writes a plot to ``out``.
    """
    from playspeed.data import RawVideos, VideoRecord
    from playspeed.report import plot_speed_timeline
    from playspeed.tasks.checkpoints import load_task
    from playspeed.tasks.data import clip_transform
    from playspeed.tasks.evaluation import autocast_for, inference_device

    task = load_task(ckpt, expect="pretrain")
    config = task.config
    if config.pretext.objective != "classify" or config.pretext.joint:
        raise PlayspeedError(f"{ckpt}: needs a pretrain checkpoint of the classify objective "
                             f"with two heads (this one: {config.pretext.objective}"
                             f"{', joint' if config.pretext.joint else ''})")
    if not Path(video).is_file():
        raise PlayspeedError(f"{video}: no such video")
    device = inference_device()
    task.to(device)

    def predict(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), autocast_for(config, device):
            outputs = task(clips.to(device)[:, None])  # one clip per sample
        return (outputs["speed"].float().softmax(-1).cpu(),
                outputs["direction"].float().softmax(-1).cpu())

    source = RawVideos(resize=tuple(config.clip.resize))
    record = VideoRecord(path=Path(video), label=-1, key=Path(video).name)
    clip_len = config.clip.len
    predictions = predict_windows(
        predict, source, record, clip_len=clip_len, stride=stride or max(1, clip_len // 2),
        speeds=list(config.pretext.speeds), directions=list(config.pretext.directions),
        transform=clip_transform(config, train=False))
    segments = flag_segments(predictions, clip_len=clip_len, min_windows=min_windows)
    fps = source.fps(record)
    if out is not None:
        plot_speed_timeline(predictions, segments, clip_len=clip_len, fps=fps, path=Path(out),
                            title=Path(video).name)
    return {"fps": fps, "windows": predictions, "segments": segments}
