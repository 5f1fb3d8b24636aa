"""Pictures of pretext samples as the network sees them: one row per clip.

``playspeed show`` draws one training sample of a video with a config's sampling and
augmentation (clip length, speeds, directions, clips per sample, objective, crop) and in the
config's input mode: the RGB frames, or the frame differences (``frame_diff``, and at unit
energy per clip for ``frame_diff_unit``) that the backbone's first stage receives.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

from playspeed.config import INPUT_MODES, Config, override_config
from playspeed.data import RawVideos, VideoRecord
from playspeed.data.sampling import min_objective_frames, permutations
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_bytes
from playspeed.models.backbone import frame_differences, unit_energy
from playspeed.tasks.data import pretext_dataset

#: Differences are drawn grey at zero, saturating at this many times the clip's RMS.
DIFFERENCE_RANGE_RMS = 3.0


def signed_speed_label(speed: int, direction: int) -> str:
    """``"+2x"`` for a forward clip at skip 2, ``"-4x"`` for a reversed one at skip 4."""
    return f"{'+' if direction > 0 else '-'}{speed}x"


def model_view(clips: torch.Tensor, *, input_mode: str, mean, std) -> torch.Tensor:
    """What the backbone's first stage sees, as pictures in ``[0, 1]``.

    ``clips``: normalised ``N x C x T x H x W`` (as the training transform returns them).
    ``rgb``: the frames, un-normalised. ``frame_diff`` / ``frame_diff_unit``: the backbone's
    own :func:`~playspeed.models.backbone.frame_differences` (and
    :func:`~playspeed.models.backbone.unit_energy`), drawn grey at zero, brighter where a
    pixel got brighter, saturating at :data:`DIFFERENCE_RANGE_RMS` times the clip's RMS (the
    first frame of a clip has no predecessor and stays grey).
    """
    if input_mode not in INPUT_MODES:
        raise PlayspeedError(f"input mode {input_mode!r}: expected one of "
                             f"{', '.join(INPUT_MODES)}")
    if input_mode == "rgb":
        shape = (1, 3, 1, 1, 1)
        return clips * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    view = frame_differences(clips)
    if input_mode == "frame_diff_unit":
        view = unit_energy(view)
    rms = view.pow(2).mean(dim=(1, 2, 3, 4), keepdim=True).sqrt().clamp_min(1e-8)
    return 0.5 + view / (2 * DIFFERENCE_RANGE_RMS * rms)


def draw_pretext_sample(
    item: dict[str, torch.Tensor], *, out: str | os.PathLike, frames_per_row: int = 8,
    title: str | None = None,
) -> Path:
    """Draw one :class:`~playspeed.data.pretext.PlaybackSpeedClips` item as a PNG grid.

    A row per clip, in sample order, labelled with its signed speed (and its rotation, where
    the clip is turned); up to ``frames_per_row`` frames of the clip at a constant step, each
    captioned with its source frame index (they count down in a reversed clip).
    ``item["clips"]`` is ``N x C x T x H x W``, uint8 or float in ``[0, 1]`` (values outside
    are clipped). Returns the path written.
    """
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
    # Rendered in memory first so that an interrupted run never leaves half a picture.
    buffer = io.BytesIO()
    fig.savefig(buffer, format=out.suffix.lstrip(".").lower() or "png", dpi=100)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def show_video(video: str | os.PathLike, *, out: str | os.PathLike, config: Config,
               input_mode: str | None = None, frames_per_row: int = 8, seed: int = 0) -> Path:
    """Decode one pretext sample of ``video`` as ``config`` trains on it and draw it.

    The clips are drawn as ``config.pretext`` says (objective, speeds, directions, clips per
    sample, ``clip.len``) through the pretext training transform (resize to ``clip.resize``,
    scale-jittered crop to ``clip.size``, flip), and shown as the backbone sees them in
    ``input_mode`` (default: ``config.model.input_mode``; see :func:`model_view`). ``seed``
    draws another sample. The title gives the sample's target.
    """
    video = Path(video)
    if not video.is_file():
        raise PlayspeedError(f"{video}: no such file")
    input_mode = input_mode or config.model.input_mode
    config = override_config(config, [f"seed={seed}"])
    clip, pretext = config.clip, config.pretext
    record = VideoRecord(path=video, label=-1, key=video.name)
    source = RawVideos(resize=tuple(clip.resize))
    num_frames = source.num_frames(record)
    needed = min_objective_frames(pretext.objective, clip_len=clip.len, speeds=pretext.speeds,
                                  directions=pretext.directions, num_clips=pretext.num_clips,
                                  gap=pretext.clip_gap)
    if num_frames < needed:
        raise PlayspeedError(f"{video}: {num_frames} frames, too short for {pretext.num_clips} "
                             f"clips of {clip.len} frames ({pretext.objective} at speeds "
                             f"{list(pretext.speeds)}; needs {needed})")
    item = pretext_dataset(config, [record], source)[0]
    item["clips"] = model_view(item["clips"], input_mode=input_mode, mean=clip.mean,
                               std=clip.std)
    target = item["target"]
    title = (f"{video.name}: {num_frames} frames; {pretext.objective}: {pretext.num_clips} "
             f"clips of {clip.len} frames, rows in sample order (seed {seed}); input "
             f"{input_mode}"
             + (f"; order class {int(target)} = {permutations(pretext.num_clips)[int(target)]}"
                if target.ndim == 0 else ""))
    return draw_pretext_sample(item, out=out, frames_per_row=frames_per_row, title=title)
