"""Video records, frame sources (prepared store or raw videos), clip datasets."""

from playspeed.data.clips import ClipClassification
from playspeed.data.datasets import (
    HMDB51,
    UCF101,
    Kinetics,
    SSv2,
    VideoFolder,
    build_records,
)
from playspeed.data.pretext import PlaybackSpeedClips, PretextGrid
from playspeed.data.records import VideoRecord
from playspeed.data.store import FrameStore
from playspeed.data.video import RawVideos

__all__ = [
    "HMDB51",
    "SSv2",
    "UCF101",
    "ClipClassification",
    "FrameStore",
    "Kinetics",
    "PlaybackSpeedClips",
    "PretextGrid",
    "RawVideos",
    "VideoFolder",
    "VideoRecord",
    "build_records",
]
