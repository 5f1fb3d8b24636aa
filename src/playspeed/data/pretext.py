"""The pretext dataset: clips of one video drawn and labelled as a pretext objective says
(playback speed and direction, clip order or rotation; :mod:`playspeed.objectives`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from playspeed.chance import constant_guess_accuracy
from playspeed.data.sampling import (
    PretextDraw,
    min_objective_frames,
    objective_target,
    pretext_grid,
    sample_objective,
)
from playspeed.errors import PlayspeedError
from playspeed.objectives import NUM_ROTATIONS, OBJECTIVES


class EpochSeeded:
    """Per-item randomness from ``(seed, epoch, index)``, shared with DataLoader workers.

    Each item draws from its own ``numpy.random.Generator`` seeded by
    ``(seed, epoch, index)`` and never from global RNG state, so an item is the same whatever
    the number of workers, which worker builds it, or how ``torch``/``numpy`` were seeded
    elsewhere: no ``worker_init_fn`` is needed. The epoch lives in a one-element shared-memory
    tensor, so :meth:`set_epoch` in the main process reaches workers that already hold a copy
    of the dataset (``persistent_workers=True``) as well as freshly started ones. Call it
    before the epoch's DataLoader iterator is created (e.g. in ``on_train_epoch_start``);
    Lightning only calls ``set_epoch`` on samplers, not on datasets.
    """

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise PlayspeedError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s clips from now on (the same epoch gives the same items)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


def check_index(index: int, length: int) -> int:
    index = int(index)
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")
    return index


def read_clips(source: Any, record: Any, frame_indices: np.ndarray) -> torch.Tensor:
    """The frames named by ``frame_indices`` (any shape ``... x T``), ``uint8 ... x T x H x W x C``.

    Each distinct frame is read once (clips of one sample overlap often), in increasing
    order, which suits both sequential decoders and random-access stores.
    """
    unique, inverse = np.unique(frame_indices, return_inverse=True)
    frames = source.read(record, unique.tolist())
    if frames.shape[0] != len(unique):
        raise PlayspeedError(f"{getattr(record, 'path', record)}: asked for {len(unique)} "
                             f"frames, got {frames.shape[0]}")
    gathered = frames.index_select(0, torch.from_numpy(inverse.reshape(-1)))
    return gathered.reshape(*frame_indices.shape, *frames.shape[1:])


def apply_transform(
    clips: torch.Tensor, transform: Callable | None, rng: np.random.Generator,
) -> torch.Tensor:
    """``uint8 N x T x H x W x C`` -> ``N x C x T x H' x W'``: each clip draws its own parameters.

    Without a transform the clips stay ``uint8`` and are only permuted to channels-first.
    """
    if transform is None:
        return clips.permute(0, 4, 1, 2, 3).contiguous()
    return torch.stack([transform(clip, rng) for clip in clips])


def rotate_clips(clips: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Turn clip ``i`` of ``N x C x T x H x W`` by ``quarter_turns[i]`` x 90 degrees
    counter-clockwise (every frame alike). Clips must be square, so turns keep the shape."""
    if clips.shape[-1] != clips.shape[-2]:
        raise PlayspeedError(f"rotation needs square clips, got {clips.shape[-2]}x"
                             f"{clips.shape[-1]} (crop to a square with the transform)")
    return torch.stack([torch.rot90(clip, int(k), dims=(-2, -1))
                        for clip, k in zip(clips, quarter_turns, strict=True)])


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch ops on one thread (restored after): a clip's tensors are too small for
    intra-op threads, whose start and join cost more than the op (``benchmarks/loader.py``).
    DataLoader workers already run on one thread; this serves items built in the training
    process (``data.workers=0``)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EpochSeededDataset(Dataset):
    """Base of the clip datasets: item ``i`` of epoch ``e`` draws from ``(seed, e, i)``.

    Subclasses build item ``i`` in :meth:`_item`, which runs on one torch thread
    (:func:`single_threaded`)."""

    def __init__(self, seed: int) -> None:
        self._seeding = EpochSeeded(seed)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = check_index(index, len(self))
        with single_threaded():
            return self._item(index)

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @property
    def seed(self) -> int:
        return self._seeding.seed

    @property
    def epoch(self) -> int:
        return self._seeding.epoch

    def set_epoch(self, epoch: int) -> None:
        """Successive epochs draw different clips; see :class:`EpochSeeded` for workers."""
        self._seeding.set_epoch(epoch)


class PlaybackSpeedClips(EpochSeededDataset):
    """One pretext sample per video: ``num_clips`` clips drawn as ``objective`` says, shuffled.

    ``classify`` and ``sort`` (the default sampling, docs/method.md#clip-sampling): distinct
    signed speeds, each clip from its own start; ``speed``: the same, forward only;
    ``direction``: frame skip 1, each clip's direction drawn on its own; ``rotation``: frame
    skip 1, forward, each clip turned by its own multiple of 90 degrees (needs square clips);
    ``vcop``: a tuple of consecutive clips ``clip_gap`` frames apart, shuffled
    (:mod:`playspeed.objectives`).

    Args:
        records: the videos (``VideoRecord`` sequence; labels are ignored).
        source: a frame source (``FrameStore`` or ``RawVideos``) with ``num_frames(record)``
            and ``read(record, indices) -> uint8 T x H x W x C``.
        clip_len: frames per clip ``T``.
        speeds: frame skips ``s`` (distinct, positive).
        directions: playback directions, a subset of ``(1, -1)``.
        num_clips: clips per sample ``N``; for distinct signed speeds at most as many as
            the objective draws from.
        objective: a name of :data:`playspeed.objectives.OBJECTIVES`; chooses the draw and
            ``target``.
        clip_gap: ``vcop``: frames between consecutive clips of a tuple.
        transform: ``(uint8 T x H x W x C clip, numpy Generator) -> float C x T x H x W``,
            e.g. :func:`~playspeed.data.transforms.ClipTransform`; ``None`` keeps uint8.
        seed: base of the per-item seeds (see :class:`EpochSeeded`).
        loop: wrap clips that do not fit around the end of short videos instead of leaving
            their speed out (see :func:`~playspeed.data.sampling.sample_pretext`).

    Item ``i`` (a dict):
        ``clips``: ``N x C x T x H x W`` (float after a transform, uint8 without one);
        ``speed``: long ``N``, the frame skip of each clip;
        ``direction``: long ``N``, ``+1`` forward / ``-1`` reversed;
        ``rotation``: long ``N``, quarter turns counter-clockwise applied to each clip (0
        except for ``rotation``), as ``torch.rot90(clip, k, dims=(-2, -1))``;
        ``frame_indices``: long ``N x T``, the source frame of every output frame, in order;
        ``target``: per-clip objectives: long ``N x R``, the class of each of the objective's
        readings (``classify``: ``[index in speeds, index in directions]``; ``speed``: the
        speed index; ``direction``: the direction index; ``rotation``: the quarter turns);
        ``sort`` and ``vcop``: long scalar, the index in ``itertools.permutations(range(N))``
        of the permutation ``perm`` such that ``clips[perm]`` runs from slowest-reversed to
        fastest-forward (``sort``) or in temporal order (``vcop``);
        ``video_index``: long scalar, the position of the video in ``records``.

    Videos too short for any draw (e.g. fewer than ``num_clips`` signed speeds fit) are left out,
    listed by key in :attr:`excluded` and reported in one warning.
    """

    def __init__(
        self,
        records: Sequence[Any],
        source: Any,
        *,
        clip_len: int = 16,
        speeds: Sequence[int] = (1, 2, 4, 8),
        directions: Sequence[int] = (1, -1),
        num_clips: int = 3,
        objective: str = "classify",
        transform: Callable | None = None,
        seed: int = 0,
        loop: bool = False,
        clip_gap: int = 8,
    ) -> None:
        self.speeds = tuple(int(s) for s in speeds)
        self.directions = tuple(int(d) for d in directions)
        if clip_len < 1:
            raise PlayspeedError(f"clip_len must be >= 1, got {clip_len}")
        if not self.speeds or min(self.speeds) < 1 or len(set(self.speeds)) != len(self.speeds):
            raise PlayspeedError(f"speeds must be distinct positive ints, got {list(speeds)}")
        if not self.directions or not set(self.directions) <= {1, -1} \
                or len(set(self.directions)) != len(self.directions):
            raise PlayspeedError(f"directions must be distinct values of 1 and -1, "
                                 f"got {list(directions)}")
        if objective not in OBJECTIVES:
            raise PlayspeedError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                                 f"got {objective!r}")
        most = OBJECTIVES[objective].max_clips(speeds=self.speeds, directions=self.directions)
        if num_clips < 1 or (most is not None and num_clips > most):
            raise PlayspeedError(f"num_clips must be between 1 and the {most} signed speeds "
                                 f"of {objective}, got {num_clips}" if most else
                                 f"num_clips must be >= 1, got {num_clips}")
        if clip_gap < 0:
            raise PlayspeedError(f"clip_gap must be >= 0, got {clip_gap}")
        self.records = records
        self.source = source
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips)
        self.objective = objective
        self.transform = transform
        self.loop = loop
        self.clip_gap = int(clip_gap)
        super().__init__(seed)

        self._num_frames = [int(source.num_frames(r)) for r in records]
        min_frames = min_objective_frames(objective, clip_len=self.clip_len, speeds=self.speeds,
                                          directions=self.directions, num_clips=self.num_clips,
                                          gap=self.clip_gap, loop=loop)
        self._videos = [i for i, n in enumerate(self._num_frames) if n >= min_frames]
        self.excluded = [records[i].key for i, n in enumerate(self._num_frames) if n < min_frames]
        if self.excluded:
            warnings.warn(
                f"{len(self.excluded)} of {len(records)} videos have fewer than {min_frames} "
                f"frames, too short for {self.num_clips} clips of {self.clip_len} frames "
                f"({objective} at speeds {list(self.speeds)}); they are excluded "
                "(see .excluded)",
                stacklevel=2,
            )
        if not self._videos and len(records):
            raise PlayspeedError(f"no video has the {min_frames} frames needed for "
                                 f"{self.num_clips} clips of {self.clip_len} frames")

    def __len__(self) -> int:
        return len(self._videos)

    def _draw(self, index: int) -> tuple[int, PretextDraw, np.random.Generator]:
        """Item ``index``'s video (position in ``records``), its clips and its generator."""
        video = self._videos[index]
        rng = self._seeding.rng(index)
        draw = sample_objective(
            self.objective, self._num_frames[video], clip_len=self.clip_len, speeds=self.speeds,
            directions=self.directions, num_clips=self.num_clips, gap=self.clip_gap, rng=rng,
            loop=self.loop)
        return video, draw, rng

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        video, draw, rng = self._draw(index)
        record = self.records[video]
        frames = read_clips(self.source, record, draw.frame_indices)
        target = objective_target(self.objective, draw, speeds=self.speeds,
                                  directions=self.directions)
        clips = apply_transform(frames, self.transform, rng)
        rotation = torch.zeros(self.num_clips, dtype=torch.int64)
        if draw.rotation is not None:
            rotation = torch.from_numpy(draw.rotation)
            clips = rotate_clips(clips, rotation)
        return {
            "clips": clips,
            "speed": torch.from_numpy(draw.speed),
            "direction": torch.from_numpy(draw.direction),
            "rotation": rotation,
            "frame_indices": torch.from_numpy(draw.frame_indices),
            "target": torch.from_numpy(target),
            "video_index": torch.tensor(video, dtype=torch.int64),
        }


class PretextGrid(PlaybackSpeedClips):
    """Fixed pretext validation items: the same clips every epoch, whatever the workers.

    Per objective (:mod:`playspeed.objectives`):
    - per-clip objectives (``classify``, ``speed``, ``direction``, ``rotation``): item = one
      clip (``N = 1``) of the grid of :func:`~playspeed.data.sampling.pretext_grid`: for each
      video every fitting speed x direction that the objective draws, at ``num_starts``
      evenly spaced starts (``rotation``: each of those clips at each of the 4 turns), so
      every label is measured on every video at the same places;
    - clip-order objectives (``sort``, ``vcop``): item = one training-style sample of
      ``num_clips`` clips; ``samples_per_video`` of them per video, drawn once from
      ``(seed, video, k)``, so they do not change with the epoch.

    Items have the keys and shapes of :class:`PlaybackSpeedClips` (``N`` is 1 for per-clip
    objectives); pass an evaluation transform (it must draw nothing at random). Other
    arguments as in :class:`PlaybackSpeedClips`.
    """

    def __init__(self, records: Sequence[Any], source: Any, *, num_starts: int = 2,
                 samples_per_video: int = 4, num_clips: int = 3, objective: str = "classify",
                 **kwargs: Any) -> None:
        if num_starts < 1 or samples_per_video < 1:
            raise PlayspeedError(f"num_starts and samples_per_video must be >= 1, got "
                                 f"{num_starts} and {samples_per_video}")
        spec = OBJECTIVES.get(objective)
        sampled = spec is not None and not spec.per_clip
        super().__init__(records, source, num_clips=num_clips if sampled else 1,
                         objective=objective, **kwargs)
        self.num_starts, self.samples_per_video = int(num_starts), int(samples_per_video)
        self._items: list[tuple[int, PretextDraw]] = []
        turns = range(NUM_ROTATIONS) if "rotation" in spec.readings else (None,)
        for video in self._videos:
            num_frames = self._num_frames[video]
            if sampled:
                self._items += [(video, sample_objective(
                    objective, num_frames, clip_len=self.clip_len, speeds=self.speeds,
                    directions=self.directions, num_clips=self.num_clips, gap=self.clip_gap,
                    rng=np.random.default_rng([self.seed, video, k]), loop=self.loop))
                    for k in range(self.samples_per_video)]
                continue
            grid = pretext_grid(num_frames, clip_len=self.clip_len,
                                speeds=spec.speeds(self.speeds),
                                directions=spec.directions(self.directions),
                                num_starts=self.num_starts)
            self._items += [(video, PretextDraw(
                frame_indices=grid.frame_indices[g:g + 1], speed=grid.speed[g:g + 1],
                direction=grid.direction[g:g + 1],
                rotation=None if turn is None else np.array([turn], dtype=np.int64)))
                for g in range(len(grid.speed)) for turn in turns]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def num_videos(self) -> int:
        """Videos measured (those long enough for at least one item)."""
        return len({video for video, _ in self._items})

    def _draw(self, index: int) -> tuple[int, PretextDraw, np.random.Generator]:
        video, draw = self._items[index]
        return video, draw, np.random.default_rng([self.seed, index])

    def chance_levels(self) -> dict[str, float]:
        """Percent accuracy of always answering the most frequent label of these items:
        ``pretext`` (the objective's whole target) and, for per-clip objectives, each of its
        readings (``speed``, ``direction``, ``rotation``)."""
        targets = np.stack([objective_target(self.objective, draw, speeds=self.speeds,
                                             directions=self.directions)
                            for _, draw in self._items])
        spec = OBJECTIVES[self.objective]
        if not spec.per_clip:
            return {"pretext": constant_guess_accuracy(targets)}
        targets = targets.reshape(-1, len(spec.readings))  # one row per clip
        whole = np.unique(targets, axis=0, return_inverse=True)[1].reshape(-1)
        return {"pretext": constant_guess_accuracy(whole),
                **{reading: constant_guess_accuracy(targets[:, r])
                   for r, reading in enumerate(spec.readings)}}
