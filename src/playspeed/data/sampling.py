"""Clip samplers: pure functions of (num_frames, settings, rng) -> source frame indices and labels.

They know nothing about videos, pixels or tensors, so every rule here is testable on numbers
alone (docs/method.md#clip-sampling and #evaluation-protocols):

- a clip at frame skip ``s`` and direction ``d`` is ``start, start+s, ..., start+(T-1)*s``,
  read backwards when ``d = -1``; it spans ``(T-1)*s + 1`` frames;
- pretext draws take ``num_clips`` distinct signed speeds ``d*s``, each clip with its own
  uniform start among the positions where it fits; a signed speed whose clip does not fit in
  the video is not drawn, and a video with fewer fitting signed speeds than ``num_clips``
  yields ``None`` (the dataset excludes it). ``loop=True`` instead wraps clips that do not fit
  around the end of the video;
- the other objectives (:mod:`playspeed.objectives`) draw clips at frame skip 1:
  ``direction`` and ``rotation`` each clip's label on its own (:func:`sample_independent`),
  ``vcop`` a tuple of consecutive clips from one start (:func:`sample_tuple`);
- fine-tuning clips (one random clip, or ``N`` evenly spaced test clips) repeat the last
  frame of a video shorter than one clip.

Indices are ``int64`` numpy arrays; randomness comes only from the ``rng`` argument.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from playspeed.objectives import NUM_ROTATIONS, get_objective


def clip_span(*, clip_len: int, skip: int) -> int:
    """Number of consecutive source frames a clip of ``clip_len`` frames at ``skip`` covers."""
    return (clip_len - 1) * skip + 1


def clip_indices(*, start: int, clip_len: int, skip: int, direction: int = 1) -> np.ndarray:
    """Frame indices (``T``) of the clip starting at ``start``, in output order.

    ``direction = -1`` returns the same frames reversed: the clip plays backwards, from
    ``start + (T-1)*skip`` down to ``start``.
    """
    indices = start + skip * np.arange(clip_len, dtype=np.int64)
    return indices[::-1].copy() if direction < 0 else indices


def sample_clip(
    num_frames: int, *, clip_len: int, skip: int, direction: int = 1, rng: np.random.Generator,
) -> np.ndarray:
    """One clip (``T`` indices) at ``skip`` and ``direction`` with a uniform random start.

    The start is uniform over the ``num_frames - span + 1`` positions where the whole clip
    fits; raises ``ValueError`` when it fits nowhere.
    """
    free = num_frames - clip_span(clip_len=clip_len, skip=skip)
    if free < 0:
        raise ValueError(
            f"a {clip_len}-frame clip at skip {skip} needs "
            f"{clip_span(clip_len=clip_len, skip=skip)} frames, the video has {num_frames}"
        )
    start = int(rng.integers(free + 1))
    return clip_indices(start=start, clip_len=clip_len, skip=skip, direction=direction)


def fitting_signed_speeds(
    num_frames: int, *, clip_len: int, speeds: Sequence[int], directions: Sequence[int],
) -> list[int]:
    """The signed speeds ``d*s`` whose clip fits in a video of ``num_frames`` frames."""
    return [d * s for s in speeds for d in directions
            if clip_span(clip_len=clip_len, skip=s) <= num_frames]


def min_pretext_frames(
    *, clip_len: int, speeds: Sequence[int], directions: Sequence[int], num_clips: int,
    loop: bool = False,
) -> int:
    """Fewest frames a video needs for :func:`sample_pretext` to draw ``num_clips`` clips.

    A video fits ``k * len(directions)`` signed speeds once it holds the ``k``-th shortest
    clip, so it needs the span of the ``ceil(num_clips / len(directions))``-th smallest speed
    (one frame with ``loop=True``).
    """
    if not 1 <= num_clips <= len(speeds) * len(directions):
        raise ValueError(f"num_clips must be between 1 and the {len(speeds) * len(directions)} "
                         f"signed speeds, got {num_clips}")
    if loop:
        return 1
    spans = sorted(clip_span(clip_len=clip_len, skip=s) for s in speeds)
    return spans[(num_clips - 1) // len(directions)]


@dataclass(frozen=True)
class PretextDraw:
    """The clips of one pretext sample, in sample order (already shuffled).

    ``frame_indices``: ``N x T`` source frames in output order; ``speed``: frame skip per clip
    (``N``, positive); ``direction``: ``+1``/``-1`` per clip (``N``); ``rotation``: quarter
    turns counter-clockwise per clip (``N``, 0-3; ``None``: unrotated); ``position``: each
    clip's place in temporal order within a tuple (``N``, ``vcop``; ``None`` otherwise).
    """

    frame_indices: np.ndarray
    speed: np.ndarray
    direction: np.ndarray
    rotation: np.ndarray | None = None
    position: np.ndarray | None = None

    @property
    def signed_speed(self) -> np.ndarray:
        """``direction * speed`` per clip (``N``); distinct within a draw."""
        return self.direction * self.speed


def sample_pretext(
    num_frames: int,
    *,
    clip_len: int,
    speeds: Sequence[int],
    directions: Sequence[int],
    num_clips: int,
    rng: np.random.Generator,
    loop: bool = False,
) -> PretextDraw | None:
    """Draw ``num_clips`` clips of distinct signed speeds, in random order, or ``None``.

    The signed speeds are drawn uniformly without replacement from those that fit
    (:func:`fitting_signed_speeds`); each clip gets its own uniform random start. Returns
    ``None`` when fewer than ``num_clips`` signed speeds fit (the video is too short for any
    draw). With ``loop=True`` every signed speed is drawable: a clip that does not fit starts
    anywhere and wraps around the end of the video (index modulo ``num_frames``).
    """
    if num_frames < 1:
        return None
    if loop:
        candidates = [d * s for s in speeds for d in directions]
    else:
        candidates = fitting_signed_speeds(
            num_frames, clip_len=clip_len, speeds=speeds, directions=directions)
    if len(candidates) < num_clips:
        return None
    # choice without replacement returns them in random order: this is the shuffle.
    chosen = np.asarray(candidates, dtype=np.int64)[rng.choice(len(candidates), num_clips,
                                                               replace=False)]
    speed, direction = np.abs(chosen), np.sign(chosen)
    clips = []
    for s, d in zip(speed.tolist(), direction.tolist(), strict=True):
        if clip_span(clip_len=clip_len, skip=s) <= num_frames:
            clips.append(sample_clip(num_frames, clip_len=clip_len, skip=s, direction=d, rng=rng))
        else:
            start = int(rng.integers(num_frames))
            clips.append(clip_indices(start=start, clip_len=clip_len, skip=s, direction=d)
                         % num_frames)
    return PretextDraw(frame_indices=np.stack(clips), speed=speed, direction=direction)


def _start(num_frames: int, *, span: int, rng: np.random.Generator, loop: bool) -> int | None:
    """A uniform start where ``span`` frames fit; anywhere with ``loop`` (the caller wraps);
    ``None`` when it fits nowhere."""
    if num_frames >= span:
        return int(rng.integers(num_frames - span + 1))
    return int(rng.integers(num_frames)) if loop and num_frames > 0 else None


def sample_independent(
    num_frames: int, *, clip_len: int, num_clips: int, directions: Sequence[int],
    rotate: bool = False, rng: np.random.Generator, loop: bool = False,
) -> PretextDraw | None:
    """``num_clips`` clips at frame skip 1, each with its own start, its own direction drawn
    uniformly from ``directions`` and, with ``rotate``, its own number of quarter turns
    (uniform over 0-3); ``None`` when a clip does not fit (``loop``: wrap around the end).

    Labels are drawn independently (with replacement), so a sample may hold any number of
    clips, unlike the distinct signed speeds of :func:`sample_pretext`.
    """
    clips, chosen = [], rng.choice(np.asarray(directions, dtype=np.int64), num_clips)
    for direction in chosen.tolist():
        start = _start(num_frames, span=clip_len, rng=rng, loop=loop)
        if start is None:
            return None
        clips.append(clip_indices(start=start, clip_len=clip_len, skip=1,
                                  direction=direction) % num_frames)
    rotation = rng.integers(NUM_ROTATIONS, size=num_clips) if rotate else None
    return PretextDraw(frame_indices=np.stack(clips), speed=np.ones(num_clips, dtype=np.int64),
                       direction=chosen, rotation=rotation)


def tuple_span(*, clip_len: int, num_clips: int, gap: int) -> int:
    """Frames covered by ``num_clips`` consecutive clips with ``gap`` frames between them."""
    return num_clips * clip_len + (num_clips - 1) * gap


def sample_tuple(
    num_frames: int, *, clip_len: int, num_clips: int, gap: int, rng: np.random.Generator,
    loop: bool = False,
) -> PretextDraw | None:
    """VCOP's clip tuple: ``num_clips`` forward clips at frame skip 1 from one uniform start,
    ``gap`` frames between consecutive clips, shuffled; ``None`` when the tuple does not fit
    (``loop``: wrap around the end).

    ``position[j]`` is the temporal place (0 = earliest) of the clip in sample slot ``j``.
    """
    start = _start(num_frames, span=tuple_span(clip_len=clip_len, num_clips=num_clips, gap=gap),
                   rng=rng, loop=loop)
    if start is None:
        return None
    position = rng.permutation(num_clips)
    clips = [clip_indices(start=start + k * (clip_len + gap), clip_len=clip_len, skip=1)
             % num_frames for k in position.tolist()]
    ones = np.ones(num_clips, dtype=np.int64)
    return PretextDraw(frame_indices=np.stack(clips), speed=ones, direction=ones.copy(),
                       position=position.astype(np.int64))


def min_objective_frames(
    objective: str, *, clip_len: int, speeds: Sequence[int], directions: Sequence[int],
    num_clips: int, gap: int = 0, loop: bool = False,
) -> int:
    """Fewest frames a video needs for :func:`sample_objective` to draw a sample."""
    spec = get_objective(objective)
    if loop:
        return 1
    if spec.draw == "tuple":
        return tuple_span(clip_len=clip_len, num_clips=num_clips, gap=gap)
    if spec.draw == "independent":
        return clip_len
    return min_pretext_frames(clip_len=clip_len, speeds=spec.speeds(speeds),
                              directions=spec.directions(directions), num_clips=num_clips)


def sample_objective(
    objective: str, num_frames: int, *, clip_len: int, speeds: Sequence[int],
    directions: Sequence[int], num_clips: int, gap: int = 0, rng: np.random.Generator,
    loop: bool = False,
) -> PretextDraw | None:
    """One sample of ``objective`` (:mod:`playspeed.objectives`), or ``None`` when the video
    is too short. ``speeds`` and ``directions`` are the configured ones; the objective keeps
    what it draws (``speed`` and ``rotation`` forward only, ``direction`` at skip 1, ...)."""
    spec = get_objective(objective)
    speeds, directions = spec.speeds(speeds), spec.directions(directions)
    if spec.draw == "tuple":
        return sample_tuple(num_frames, clip_len=clip_len, num_clips=num_clips, gap=gap, rng=rng,
                            loop=loop)
    if spec.draw == "independent":
        return sample_independent(num_frames, clip_len=clip_len, num_clips=num_clips,
                                  directions=directions, rotate="rotation" in spec.readings,
                                  rng=rng, loop=loop)
    return sample_pretext(num_frames, clip_len=clip_len, speeds=speeds, directions=directions,
                          num_clips=num_clips, rng=rng, loop=loop)


def objective_target(
    objective: str, draw: PretextDraw, *, speeds: Sequence[int], directions: Sequence[int],
) -> np.ndarray:
    """What ``objective`` trains on: per-clip objectives ``N x len(readings)`` (the class of
    each reading, in the objective's order), order objectives a scalar permutation index
    (:func:`sort_target` of the signed speeds, or of the temporal positions for ``vcop``)."""
    spec = get_objective(objective)
    if not spec.per_clip:
        return np.asarray(sort_target(draw.position if spec.order_by == "time"
                                      else draw.signed_speed), dtype=np.int64)
    speeds, directions = list(spec.speeds(speeds)), list(spec.directions(directions))
    columns = {
        "speed": lambda: [speeds.index(s) for s in draw.speed.tolist()],
        "direction": lambda: [directions.index(d) for d in draw.direction.tolist()],
        "rotation": lambda: draw.rotation.tolist(),
    }
    return np.stack([columns[r]() for r in spec.readings], axis=1).astype(np.int64)


def _clamped(start: int, *, num_frames: int, clip_len: int, stride: int) -> np.ndarray:
    # A video shorter than the clip repeats its last frame rather than being dropped, so
    # every labelled video is trained on and scored.
    indices = clip_indices(start=start, clip_len=clip_len, skip=stride)
    return np.minimum(indices, num_frames - 1)


def sample_train_clip(
    num_frames: int, *, clip_len: int, stride: int = 1, rng: np.random.Generator,
) -> np.ndarray:
    """One fine-tuning clip (``T`` indices, forward, every ``stride``-th frame), random start.

    The start is uniform over the positions where the clip fits; a video shorter than the
    clip starts at frame 0 and repeats its last frame to fill the clip.
    """
    if num_frames < 1:
        raise ValueError("a video without frames has no clips")
    free = max(num_frames - clip_span(clip_len=clip_len, skip=stride), 0)
    return _clamped(int(rng.integers(free + 1)), num_frames=num_frames, clip_len=clip_len,
                    stride=stride)


def evenly_spaced_starts(free: int, count: int) -> np.ndarray:
    """``count`` starts among ``0 .. free``: the centres of ``count`` equal bins (``int64``).

    ``count = 1`` gives the centre; starts coincide when ``free + 1 < count``.
    """
    return np.rint(free * (2 * np.arange(count) + 1) / (2 * count)).astype(np.int64)


def sample_test_clips(
    num_frames: int, *, clip_len: int, stride: int = 1, num_clips: int = 10,
) -> np.ndarray:
    """``num_clips`` evenly spaced clips (``N x T`` indices), deterministic.

    The valid starts ``0 .. free`` (``free = num_frames - span``) are cut into ``N`` equal
    bins and each clip starts at the centre of its bin, so ``N = 1`` gives the centre clip
    (clip accuracy) and ``N = 10`` the field's video-accuracy protocol. A video shorter than
    one clip gives ``N`` identical clips from frame 0 that repeat its last frame.
    """
    if num_frames < 1:
        raise ValueError("a video without frames has no clips")
    if num_clips < 1:
        raise ValueError(f"num_clips must be at least 1, got {num_clips}")
    free = max(num_frames - clip_span(clip_len=clip_len, skip=stride), 0)
    starts = evenly_spaced_starts(free, num_clips)
    return np.stack([_clamped(int(s), num_frames=num_frames, clip_len=clip_len, stride=stride)
                     for s in starts])


@functools.cache
def permutations(num_clips: int) -> tuple[tuple[int, ...], ...]:
    """All orderings of ``range(num_clips)`` in ``itertools.permutations`` (lexicographic) order.

    Index ``k`` of this tuple is class ``k`` of the ``sort`` and ``vcop`` objectives.
    """
    return tuple(itertools.permutations(range(num_clips)))


@functools.cache
def _permutation_index(num_clips: int) -> dict[tuple[int, ...], int]:
    return {p: k for k, p in enumerate(permutations(num_clips))}


def sort_target(signed_speeds: Sequence[int] | np.ndarray) -> int:
    """The ``sort`` class of a sample: the index in :func:`permutations` of ``argsort(signed)``.

    ``clips[list(permutations(N)[target])]`` lists the clips by increasing signed speed
    (``-8x`` first, ``+8x`` last). Signed speeds must be distinct. ``vcop`` passes the
    clips' temporal positions: ``clips[list(permutations(N)[target])]`` plays in order.
    """
    signed = np.asarray(signed_speeds)
    order = tuple(int(i) for i in np.argsort(signed, kind="stable"))
    return _permutation_index(len(order))[order]


def pretext_grid(
    num_frames: int, *, clip_len: int, speeds: Sequence[int], directions: Sequence[int],
    num_starts: int,
) -> PretextDraw:
    """The fixed validation grid of one video: every fitting speed x direction x start.

    For each speed ``s`` whose clip fits (as in training, a speed that does not fit is left
    out) and each direction, ``num_starts`` clips start at :func:`evenly_spaced_starts` over
    the clip's valid starts ``0 .. num_frames - span``. The result holds ``G`` clips in the
    order (speed, direction, start); it draws nothing at random, so the grid is the same on
    every call. A video too short for every speed gives ``G = 0``.
    """
    if num_starts < 1:
        raise ValueError(f"num_starts must be at least 1, got {num_starts}")
    clips, speed, direction = [], [], []
    for s in speeds:
        free = num_frames - clip_span(clip_len=clip_len, skip=s)
        if free < 0:
            continue
        for d in directions:
            for start in evenly_spaced_starts(free, num_starts).tolist():
                clips.append(clip_indices(start=start, clip_len=clip_len, skip=s, direction=d))
                speed.append(s)
                direction.append(d)
    return PretextDraw(
        frame_indices=np.stack(clips) if clips else np.zeros((0, clip_len), dtype=np.int64),
        speed=np.asarray(speed, dtype=np.int64), direction=np.asarray(direction, dtype=np.int64))

