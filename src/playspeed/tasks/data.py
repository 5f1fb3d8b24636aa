"""From a :class:`Config` to records, frame sources, datasets and data loaders.

The one place where config values become the library's keyword arguments for the data
layer. Epoch-dependent randomness lives in the datasets (seeded by seed, epoch and index);
:class:`EpochSampler` carries the epoch to them, so an epoch is one pass over the videos
whatever the number of workers or devices, and a resumed run draws what an uninterrupted
one would have drawn. Training loaders (:class:`ResumableLoader`) also resume part-way through
an epoch, for a run stopped mid-epoch (:mod:`playspeed.tasks.preemption`).
"""

from __future__ import annotations

import itertools
import signal
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from playspeed.config import Config
from playspeed.data import (
    ClipClassification,
    FrameStore,
    PlaybackSpeedClips,
    RawVideos,
    VideoRecord,
    build_records,
)
from playspeed.data.datasets import SINGLE_SPLIT, VideoDataset
from playspeed.data.pretext import PretextGrid
from playspeed.data.transforms import ClipTransform
from playspeed.errors import PlayspeedError


def load_records(config: Config, subset: str) -> Sequence[VideoRecord]:
    """The ``subset`` ("train" | "test") of the configured dataset and split.

    Where missing videos are skipped (Kinetics and SSv2 always, the others with
    ``data.skip_missing``), so are those that the prepared ``data.store`` lacks: ``prepare``
    could not read them (its report says why), and a run should not stop at the first one.
    """
    data = config.data
    if not data.videos:
        raise PlayspeedError("config: data.videos is not set (give data.videos=PATH)")
    records = build_records(data.dataset, videos=data.videos, splits=data.splits,
                            split=data.split, subset=subset, skip_missing=data.skip_missing)
    if not data.store or not (data.skip_missing or data.dataset in SINGLE_SPLIT):
        return records
    stored = FrameStore(data.store)
    kept = [record for record in records if record in stored]
    if len(kept) == len(records):
        return records
    absent = [f"{record.path}: not in the store {data.store} (unreadable when prepared?)"
              for record in records if record not in stored]
    warnings.warn(f"{len(absent)} {subset} videos are not in the store {data.store} and were "
                  f"skipped (first: {absent[0]}); see its prepare_report.json", stacklevel=2)
    return VideoDataset(kept, records.classes, [*records.missing, *absent])


def build_source(config: Config) -> FrameStore | RawVideos:
    """The prepared store when ``data.store`` is set, else on-demand decoding."""
    if config.data.store:
        return FrameStore(config.data.store)
    return RawVideos(resize=tuple(config.clip.resize))


def clip_transform(config: Config, *, train: bool, flip: bool = True):
    """Training: scale-jittered random crop (+ flip, camera motion, jitter); evaluation:
    centre crop."""
    clip = config.clip
    return ClipTransform(
        train=train, size=clip.size, resize=tuple(clip.resize), scale=tuple(clip.crop_scale),
        flip=flip and train, camera_motion=clip.camera_motion if train else 0.0,
        color_jitter=clip.color_jitter if train else 0.0,
        mean=tuple(clip.mean), std=tuple(clip.std),
    )


def _pretext_arguments(config: Config) -> dict:
    """What both pretext datasets take from ``config.pretext`` and ``config.clip``."""
    pretext = config.pretext
    return {"clip_len": config.clip.len, "speeds": tuple(pretext.speeds),
            "directions": tuple(pretext.directions), "num_clips": pretext.num_clips,
            "objective": pretext.objective, "clip_gap": pretext.clip_gap}


def pretext_dataset(config: Config, records, source) -> PlaybackSpeedClips:
    """The pretext training samples (random crops, new draws every epoch)."""
    return PlaybackSpeedClips(records, source, **_pretext_arguments(config),
                              transform=clip_transform(config, train=True), seed=config.seed)


def pretext_val_dataset(config: Config, records, source) -> PretextGrid:
    """The fixed validation grid of the pretext (same clips every epoch), centre crops."""
    return PretextGrid(records, source, **_pretext_arguments(config),
                       transform=clip_transform(config, train=False),
                       num_starts=config.pretext.val_starts,
                       samples_per_video=config.pretext.val_samples, seed=config.seed + 1)


def classification_dataset(config: Config, records, source, *, mode: str,
                           num_test_clips: int | None = None) -> ClipClassification:
    """``mode="train"``: one random clip per video; ``"test"``: evenly spaced clips."""
    return ClipClassification(
        records, source, clip_len=config.clip.len, stride=config.clip.stride, mode=mode,
        num_test_clips=num_test_clips or config.clip.test_clips,
        transform=clip_transform(config, train=mode == "train", flip=config.data.hflip),
        seed=config.seed,
    )


class EpochSampler(DistributedSampler):
    """A seeded shuffle per epoch (one shard per process) that also tells the dataset the epoch.

    Lightning calls :meth:`set_epoch` before each epoch's workers start, so the dataset copy
    each worker receives already knows the epoch. :meth:`start_at` makes the next pass over
    a given epoch begin part-way through its shard (a resumed epoch).
    """

    def __init__(self, dataset: Dataset, *, shuffle: bool, seed: int,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self._start: tuple[int, int] | None = None  # (epoch, first position) of the next pass

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def start_at(self, *, epoch: int, position: int) -> None:
        """The next pass, if it is over ``epoch``, skips the first ``position`` indices of
        this process's shard (once); the indices after them are the same as ever."""
        self._start = (epoch, position)

    def __iter__(self) -> Iterator[int]:
        indices = super().__iter__()
        start, self._start = self._start, None
        if start is not None and start[0] == self.epoch:
            return itertools.islice(indices, start[1], None)
        return indices


class ResumableLoader(DataLoader):
    """The training loader: resumes an epoch where a checkpoint left it.

    Lightning stores :meth:`state_dict` in every checkpoint (with its loop state) and, when
    it restarts part-way through an epoch, passes it back to :meth:`load_state_dict` before
    the epoch's first batch. The state is the epoch and the samples this process has been
    handed so far (Lightning reads a loader of known length without looking ahead, so those
    are the samples it trained on); the sampler then skips them, so nothing is loaded twice
    and the rest of the epoch is what an uninterrupted run draws.

    The epoch's order is drawn at its first batch, not when ``iter()`` is called: Lightning
    makes a resumed run's first iterator before it sets the epoch, and worker processes would
    take their first indices at once.
    """

    def __init__(self, dataset: Dataset, *, sampler: EpochSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.samples_served = 0  # of the current pass (epoch), resumed ones included
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        return self._batches()

    def _batches(self) -> Iterator[Any]:
        # A generator: nothing runs until the first batch is asked for.
        resume, self._resume = self._resume, None
        self.samples_served = 0
        if resume is not None and resume["epoch"] == self.sampler.epoch:
            self.samples_served = resume["samples"]
            self.sampler.start_at(epoch=resume["epoch"], position=resume["samples"])
        for batch in super().__iter__():
            self.samples_served += self.batch_size
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "samples": self.samples_served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = {"epoch": int(state["epoch"]), "samples": int(state["samples"])}


def _ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave stop signals to the training process (a scheduler signals every
    process of a job, Ctrl+C the whole terminal group), which stops at a step's end and shuts
    them down itself."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)


def make_loader(dataset: Dataset, config: Config, *, train: bool, num_replicas: int = 1,
                rank: int = 0) -> DataLoader:
    """Training loaders shuffle per epoch, drop a last partial batch (unless that would
    leave no batch at all) and resume mid-epoch (:class:`ResumableLoader`); evaluation
    loaders keep every video, in order, on one process."""
    batch_size = config.optim.batch_size
    if not train:
        num_replicas, rank = 1, 0
    sampler = EpochSampler(dataset, shuffle=train, seed=config.seed,
                           num_replicas=num_replicas, rank=rank)
    workers = config.data.workers
    return (ResumableLoader if train else DataLoader)(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        drop_last=train and len(sampler) >= batch_size,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if workers > 0 else None,
        # Workers live across epochs (no restart per epoch); the epoch still reaches them
        # through the dataset's shared seeding (EpochSeeded).
        persistent_workers=workers > 0,
        worker_init_fn=_ignore_stop_signals if workers > 0 else None,
        # Each iterator draws a seed for its workers: from the loader's own generator, so
        # that validation (how often, how long) never shifts the global stream that dropout
        # draws from during training, and a resumed run continues it exactly.
        generator=torch.Generator().manual_seed(config.seed),
    )
