"""The labelled-clip dataset for fine-tuning (one random clip) and testing (evenly spaced clips)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from playspeed.data.pretext import EpochSeededDataset, apply_transform, read_clips
from playspeed.data.sampling import sample_test_clips, sample_train_clip
from playspeed.errors import PlayspeedError

MODES = ("train", "test")


class ClipClassification(EpochSeededDataset):
    """Action-recognition clips with their video's label.

    Args:
        records: the labelled videos (``VideoRecord`` sequence, ``.label`` 0-based).
        source: a frame source (``FrameStore`` or ``RawVideos``).
        clip_len: frames per clip ``T``.
        stride: take every ``stride``-th frame.
        mode: ``"train"``: one clip with a uniform random start per item; ``"test"``:
            ``num_test_clips`` clips evenly spaced over the video, the same every time
            (``num_test_clips=1`` is the centre clip of the clip-accuracy protocol).
        num_test_clips: ``N`` in test mode.
        transform: ``(uint8 T x H x W x C clip, numpy Generator) -> float C x T x H x W``;
            ``None`` keeps the clips uint8, channels first.
        seed: base of the per-item seeds (see :class:`~playspeed.data.pretext.EpochSeeded`).

    A video shorter than one clip repeats its last frame (it is never dropped).

    Item ``i`` (a dict):
        train: ``clips`` ``C x T x H x W``, ``frame_indices`` long ``T``;
        test: ``clips`` ``N x C x T x H x W``, ``frame_indices`` long ``N x T``;
        both: ``label`` long scalar, ``video_index`` long scalar (``= i``).
    """

    def __init__(
        self,
        records: Sequence[Any],
        source: Any,
        *,
        clip_len: int = 16,
        stride: int = 1,
        mode: str = "train",
        num_test_clips: int = 10,
        transform: Callable | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise PlayspeedError(f"mode must be one of {MODES}, got {mode!r}")
        if clip_len < 1 or stride < 1 or num_test_clips < 1:
            raise PlayspeedError(f"clip_len, stride and num_test_clips must be >= 1, got "
                                 f"{clip_len}, {stride}, {num_test_clips}")
        self.records = records
        self.source = source
        self.clip_len = int(clip_len)
        self.stride = int(stride)
        self.mode = mode
        self.num_test_clips = int(num_test_clips)
        self.transform = transform
        super().__init__(seed)  # test items never change: they draw nothing

    def __len__(self) -> int:
        return len(self.records)

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        num_frames = int(self.source.num_frames(record))
        if num_frames < 1:
            raise PlayspeedError(f"{record.path}: the video has no frames")
        rng = self._seeding.rng(index)
        if self.mode == "train":
            indices = sample_train_clip(num_frames, clip_len=self.clip_len, stride=self.stride,
                                        rng=rng)[None]
        else:
            indices = sample_test_clips(num_frames, clip_len=self.clip_len, stride=self.stride,
                                        num_clips=self.num_test_clips)
        clips = apply_transform(read_clips(self.source, record, indices), self.transform, rng)
        frame_indices = torch.from_numpy(indices)
        if self.mode == "train":
            clips, frame_indices = clips[0], frame_indices[0]
        return {
            "clips": clips,
            "label": torch.tensor(record.label, dtype=torch.int64),
            "frame_indices": frame_indices,
            "video_index": torch.tensor(index, dtype=torch.int64),
        }
