"""The record of one video: what every layer above the files knows of a video.

Datasets build records from the official split files or a folder tree; frame sources, samplers
and tasks read them. Nothing downstream parses file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VideoRecord:
    """One video: where it is, its class, and its key in a frame store."""

    path: Path
    label: int               # 0-based class index; -1 when unlabeled
    key: str                 # POSIX path relative to the videos root: the frame-store key
    num_frames: int | None = None
    fps: float | None = None
    # The scene it shares with other videos: UCF-101's group (``gGG``, one actor and
    # background filmed several times); None where the dataset names none.
    group: str | None = None
