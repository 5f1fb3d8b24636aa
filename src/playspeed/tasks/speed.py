"""The playback-speed detector: the pretext head read along a video.

A video played as recorded looks like ``+1x`` to a model pretrained on playback speeds.
Sliding ``clip_len``-frame windows (frame skip 1, as the video plays) over the video and
reading each window's predicted speed and direction therefore finds stretches that were
sped up or reversed.

Each window gives two readings from the two heads: its expected ``log2`` frame skip
(0 = as recorded, 2 = 4x) and its probability of playing backwards. The rule, chosen on
synthetic videos re-timed on purpose (``playspeed.tasks.retime``):

- readings are smoothed over neighbouring windows with weights 1/4, 1/2, 1/4 (windows
  overlap by half, so a frame's evidence comes from two or three of them);
- they are compared with the video's *typical* window (the median), not with ``+1x``:
  how fast a scene moves varies from video to video (the synthetic classes' tempo spans
  0.9-1.7, real actions more), so a brisk scene played as recorded often reads ``+2x``
  everywhere. A window looks sped up when it reads at least ``speed_margin`` octaves
  (default 0.5: nearer 2x than 1x) faster than typical; reversed when its probability of
  playing backwards is above 1/2 and its log-odds exceed the typical window's by
  ``direction_margin``. The typical reading itself is returned, so a video that is sped
  up or reversed as a whole still shows as such;
- runs of at least ``min_windows`` consecutive such windows are flagged, sped-up and
  reversed runs independently (a stretch can be both). A flagged segment covers the frames
  whose nearest window centre belongs to it (this is where the change sits, not the
  windows' whole extent).

Resolution: with windows every half window, a segment about one window long (``clip_len``
frames) is the shortest an ideal reader finds; shorter ones mix with their surroundings
in every window. What the rule cannot fix is the model: a reversed clip of a
time-symmetric motion (a rotation, a slide to the left played backwards) looks exactly
like another video played forward.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from playspeed.data import RawVideos, VideoRecord
from playspeed.errors import PlayspeedError
from playspeed.models.heads import speed_direction_probabilities
from playspeed.objectives import OBJECTIVES
from playspeed.report import plot_speed_timeline
from playspeed.tasks.data import clip_transform
from playspeed.tasks.inference import autocast_for, inference_device
from playspeed.tasks.registry import load_task


@dataclass(frozen=True)
class WindowPrediction:
    start: int  # first frame of the window
    speed: int  # most likely frame skip
    direction: int  # most likely direction, +1 / -1
    confidence: float  # probability of that (speed, direction) pair
    log2_speed: float = 0.0  # expected log2 frame skip (0: as recorded)
    p_reversed: float = 0.0  # probability of playing backwards

    @property
    def signed_speed(self) -> int:
        return self.speed * self.direction


@dataclass(frozen=True)
class Segment:
    first_frame: int
    last_frame: int  # inclusive
    signed_speed: int  # the most frequent prediction over its windows (sped up: >= 2x)
    kind: str  # "sped up" | "reversed"
    relative_speed: float = 1.0  # 2 ** (mean log2 speed over its windows - typical)
    p_reversed: float = 0.0  # mean probability of playing backwards over its windows


@dataclass(frozen=True)
class Typical:
    """The video's median window: what the rest is compared with."""

    speed: float  # 2 ** median expected log2 speed
    p_reversed: float  # median probability of playing backwards


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
    """Each window's readings: most likely (speed, direction) and its probability, expected
    log2 speed and probability of playing backwards.

    Windows are read a batch at a time: the frames a batch spans are read once.
    """
    starts = window_starts(source.num_frames(record), clip_len=clip_len, stride=stride)
    log2_speeds = torch.tensor([math.log2(s) for s in speeds])
    backwards = directions.index(-1) if -1 in directions else None
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
        expected_log2 = joint.sum(2) @ log2_speeds
        p_reversed = joint.sum(1)[:, backwards] if backwards is not None else torch.zeros(
            len(joint))
        for row, start in enumerate(batch_starts):
            s, d = divmod(int(best[row]), len(directions))
            predictions.append(WindowPrediction(
                start=start, speed=speeds[s], direction=directions[d],
                confidence=float(joint[row, s, d]), log2_speed=float(expected_log2[row]),
                p_reversed=float(p_reversed[row])))
    return predictions


def _smooth(values: np.ndarray) -> np.ndarray:
    """Weights 1/4, 1/2, 1/4 over each window and its neighbours (ends repeated)."""
    padded = np.pad(values, 1, mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _smoothed_readings(predictions: list[WindowPrediction]) -> tuple[np.ndarray, np.ndarray]:
    """Per window, smoothed: expected log2 speed and log-odds of playing backwards."""
    speed = _smooth(np.array([p.log2_speed for p in predictions]))
    odds = _smooth(_log_odds(np.array([p.p_reversed for p in predictions])))
    return speed, odds


def typical_window(predictions: list[WindowPrediction]) -> Typical:
    """The video's median (smoothed) readings."""
    speed, odds = _smoothed_readings(predictions)
    return Typical(speed=float(2 ** np.median(speed)),
                   p_reversed=float(1 / (1 + np.exp(-np.median(odds)))))


def flag_segments(predictions: list[WindowPrediction], *, clip_len: int,
                  min_windows: int = 2, num_frames: int | None = None,
                  speed_margin: float = 0.5, direction_margin: float = 0.4) -> list[Segment]:
    """Sped-up and reversed segments (see the module's docstring for the rule), in order.

    ``num_frames`` (default: the last window's end) lets a run at the end reach the last
    frame.
    """
    if min_windows < 1:
        raise PlayspeedError(f"min_windows must be >= 1, got {min_windows}")
    if not predictions:
        return []
    speed, odds = _smoothed_readings(predictions)
    typical_speed, typical_odds = np.median(speed), np.median(odds)
    tracks = {"sped up": speed - typical_speed > speed_margin,
              "reversed": (odds > 0) & (odds - typical_odds >= direction_margin)}

    starts = [p.start for p in predictions]
    centres = [start + (clip_len - 1) / 2 for start in starts]
    last = (num_frames - 1) if num_frames is not None else starts[-1] + clip_len - 1
    # Frame boundaries between neighbouring windows: halfway between their centres.
    lower = [0] + [int(np.floor((a + b) / 2)) + 1 for a, b in pairwise(centres)]
    upper = [bound - 1 for bound in lower[1:]] + [last]
    segments: list[Segment] = []
    for kind, flagged in tracks.items():
        first = 0
        while first < len(predictions):
            end = first
            while flagged[first] and end + 1 < len(predictions) and flagged[end + 1]:
                end += 1
            if flagged[first] and end - first + 1 >= min_windows:
                run = predictions[first:end + 1]
                segments.append(Segment(
                    lower[first], upper[end], _segment_speed(run, kind), kind,
                    relative_speed=float(2 ** (speed[first:end + 1].mean() - typical_speed)),
                    p_reversed=float(np.mean([p.p_reversed for p in run]))))
            first = end + 1
    return sorted(segments, key=lambda s: (s.first_frame, s.kind))


def _segment_speed(run: list[WindowPrediction], kind: str) -> int:
    """The most frequent predicted speed of a run (ties: the slower); sped up: of the
    windows predicted faster than 1x (2 if none); reversed: negative."""
    speeds = [p.speed for p in run]
    if kind == "sped up":
        speeds = [s for s in speeds if s > 1] or [2]
    counts = Counter(speeds)
    speed = max(counts, key=lambda value: (counts[value], -value))
    return -speed if kind == "reversed" else speed


def detect_speed(ckpt: Path, video: Path, *, out: Path | None = None, stride: int | None = None,
                 min_windows: int = 2, truth=None) -> dict[str, Any]:
    """Predict playback speed along ``video`` with a pretrain checkpoint that reads speed
    (``classify``; ``speed``, whose clips all play forward, so nothing reads as reversed).

    Prints nothing; returns the windows, the ``typical`` window and the flagged
    ``segments``, and writes a plot to ``out`` (with the known segments ``truth`` of a video
    re-timed on purpose, if given). ``stride`` defaults to half a window.
    """
    task = load_task(ckpt, expect="pretrain")
    config = task.config
    objective = task.objective
    if not objective.has_speed_head:
        speed_objectives = ", ".join(o.name for o in OBJECTIVES.values() if o.has_speed_head)
        raise PlayspeedError(f"{ckpt}: a {objective.name} checkpoint has no speed head (it "
                             f"predicts {objective.predicts}); playspeed speed needs one of "
                             f"{speed_objectives}")
    if not Path(video).is_file():
        raise PlayspeedError(f"{video}: no such video")
    device = inference_device()
    task.to(device)
    speeds = list(objective.speeds(config.pretext.speeds))
    directions = list(objective.directions(config.pretext.directions))

    def predict(clips: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast_for(config, device):
            outputs = task(clips.to(device)[:, None])  # one clip per sample
        return speed_direction_probabilities(outputs, num_speeds=len(speeds),
                                             num_directions=len(directions)).cpu()

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
    typical = typical_window(predictions)
    if out is not None:
        plot_speed_timeline(predictions, segments, clip_len=clip_len, fps=fps, path=Path(out),
                            title=Path(video).name, truth=truth, typical_speed=typical.speed)
    return {"fps": fps, "num_frames": num_frames, "windows": predictions, "typical": typical,
            "segments": segments}
