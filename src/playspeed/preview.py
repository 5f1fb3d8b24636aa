"""Pictures of pretext samples: what the network sees, one row per clip."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from playspeed.errors import PlayspeedError


def signed_speed_label(speed: int, direction: int) -> str:
    """``"+2x"`` for a forward clip at skip 2, ``"-4x"`` for a reversed one at skip 4."""
    return f"{'+' if direction > 0 else '-'}{speed}x"


def draw_pretext_sample(
    item: dict[str, torch.Tensor], *, out: str | os.PathLike, frames_per_row: int = 8,
    title: str | None = None,
) -> Path:
    """Draw one :class:`~playspeed.data.pretext.PlaybackSpeedClips` item as a PNG grid.

    A row per clip, in sample order, labelled with its signed speed (and its rotation, where
    the clip is turned); up to ``frames_per_row``
    frames of the clip at a constant step, each captioned with its source frame index (they
    count down in a reversed clip). ``item["clips"]`` is ``N x C x T x H x W``, uint8 or
    float in ``[0, 1]`` (a transform with ``mean=0, std=1``). Returns the path written.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    clips = item["clips"]
    if clips.dtype == torch.uint8:
        clips = clips.float() / 255
    images = clips.clamp(0, 1).permute(0, 2, 3, 4, 1).numpy()  # N x T x H x W x C
    num_clips, clip_len = images.shape[:2]
    # A constant step, so the motion between neighbouring pictures shows the clip's speed.
    columns = np.arange(0, clip_len, -(-clip_len // max(1, frames_per_row)))
    height, width = images.shape[2:4]
    cell = 1.3  # inches per frame, wide enough for a caption
    fig = Figure(figsize=(cell * (len(columns) + 0.8), cell * height / width * num_clips + 1.0),
                 layout="constrained")
    axes = fig.subplots(num_clips, len(columns), squeeze=False)
    indices = item["frame_indices"]
    for row in range(num_clips):
        speed, direction = int(item["speed"][row]), int(item["direction"][row])
        for col, t in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(images[row, t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"frame {int(indices[row, t])}", fontsize=8, labelpad=2)
        label = signed_speed_label(speed, direction)
        turns = int(item["rotation"][row]) if "rotation" in item else 0
        if turns:
            label += f"\n{90 * turns}°"
        axes[row, 0].set_ylabel(label, fontsize=16,
                                fontweight="bold", rotation=0, ha="right", va="center",
                                color="tab:blue" if direction > 0 else "tab:red")
    fig.suptitle(title or "pretext sample: one row per clip, labelled with its signed speed",
                 fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def show_video(
    video: str | os.PathLike,
    *,
    out: str | os.PathLike,
    clip_len: int = 16,
    speeds: Sequence[int] = (1, 2, 4, 8),
    directions: Sequence[int] = (1, -1),
    num_clips: int = 3,
    objective: str = "classify",
    clip_gap: int = 8,
    size: int = 112,
    resize: Sequence[int] = (128, 171),
    frames_per_row: int = 8,
    seed: int = 0,
) -> Path:
    """Decode one pretext sample of ``video`` with the training augmentation and draw it.

    The clips go through the pretext training transform (resize to ``resize``, scale-jittered
    crop to ``size``, flip) without normalisation, so the picture is the network's input.
    ``objective`` chooses how the clips are drawn (:mod:`playspeed.objectives`); the title
    gives the sample's target.
    """
    from playspeed.data.datasets import VideoRecord
    from playspeed.data.pretext import PlaybackSpeedClips
    from playspeed.data.sampling import min_objective_frames, permutations
    from playspeed.data.transforms import ClipTransform
    from playspeed.data.video import RawVideos

    video = Path(video)
    if not video.is_file():
        raise PlayspeedError(f"{video}: no such file")
    record = VideoRecord(path=video, label=-1, key=video.name)
    source = RawVideos(resize=resize)
    num_frames = source.num_frames(record)
    try:
        needed = min_objective_frames(objective, clip_len=clip_len, speeds=speeds,
                                      directions=directions, num_clips=num_clips, gap=clip_gap)
    except ValueError as err:
        raise PlayspeedError(str(err)) from None
    if num_frames < needed:
        raise PlayspeedError(f"{video}: {num_frames} frames, too short for {num_clips} clips of "
                             f"{clip_len} frames ({objective} at speeds {list(speeds)}; "
                             f"needs {needed})")
    transform = ClipTransform(train=True, size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    data = PlaybackSpeedClips([record], source, clip_len=clip_len, speeds=speeds,
                              directions=directions, num_clips=num_clips, objective=objective,
                              transform=transform, seed=seed, clip_gap=clip_gap)
    item = data[0]
    target = item["target"]
    title = (f"{video.name}: {num_frames} frames; {objective}: {num_clips} clips of "
             f"{clip_len} frames, rows in sample order (seed {seed})"
             + (f"; order class {int(target)} = {permutations(num_clips)[int(target)]}"
                if target.ndim == 0 else ""))
    return draw_pretext_sample(item, out=out, frames_per_row=frames_per_row, title=title)
