"""``playspeed synth``: a synthetic action dataset in the UCF-101 layout whose classes differ
only in how things move.

Each class is a motion function: from a per-video clock, tempo and random draws it returns
the tracks (position, size, angle, opacity over time) of one or more shapes. Everything a
single frame shows (textured background, palette, shape, colours, size, position, camera
sway, sensor noise) is drawn the same way for every class, so no frame tells the class:
- time-reversal pairs: MoveLeft/MoveRight, RotateClockwise/RotateCounterclockwise,
  Grow/Shrink (only the direction of motion separates them);
- Accelerate/ConstantSpeed: the same path, a different speed profile;
- motions with a physical arrow of time, which make playback direction predictable:
  FreeFall (accelerating under gravity), Bounce (losing height at each impact),
  SlideToRest (slowing under friction), Ripple (rings spreading out and fading),
  BreakApart (an object bursting into pieces).
Every class's tempo varies from video to video (durations scale by 1/tempo), so playback
speed has to be judged from motion. A UCF-101 "group" is one scene (background and object
look) filmed several times; test groups are disjoint from train groups, as in UCF-101.

Motion unrelated to the class, as real video has (other people, the camera, the background),
is an option (:class:`SceneMotion`): distractor shapes wandering on their own paths and
tempos, camera zoom and shake, a background layer that flows on its own. It is drawn from
generators of its own, never from the class's, so the same scene motion can play behind any
class.

Units: lengths in frame heights (the frame spans x in [0, W/H], y in [0, 1], y down),
times in frames, angles in radians (increasing = clockwise on screen).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from playspeed.data.video import write_video
from playspeed.errors import PlayspeedError

TAU = 2 * math.pi
# Per-video tempo range (log-uniform). Its spread (1.9x) stays under the 2x step between
# playback speeds, so a clip's speed can be told from its motion. A 0.6-1.7x range let
# adjacent speeds overlap (speed accuracy capped near 75%), and pretext training learned
# markedly slower on it (train loss 1.65 vs 1.45 after 20 epochs of the demo's settings).
TEMPO = (0.9, 1.7)
_SWAY = 0.05  # bound of the camera sway amplitude (frame heights)
# Distractor radii (frame heights): 10 of them cover about a quarter of a 4:3 frame.
DISTRACTOR_RADIUS = (0.07, 0.14)


@dataclass(frozen=True)
class Track:
    """One shape over a video. Array fields are ``(T,)`` or scalars (broadcast over time)."""

    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    angle: np.ndarray | float = 0.0
    alpha: np.ndarray | float = 1.0
    ring: float = 0.0                           # > 0: only an outline this thick
    sector: tuple[float, float] | None = None   # only these polar angles (shape's frame)


@dataclass(frozen=True)
class Clock:
    """What a motion function may depend on (never on how the video looks)."""

    t: np.ndarray                 # frame times, (T,)
    tempo: float                  # in TEMPO: speeds scale by tempo, durations by 1/tempo
    radius: float                 # the shape's radius
    aspect: float                 # frame width / height
    rng: np.random.Generator

    def cycles(self, period: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Repeat an event every ``period`` frames from a random phase: per frame the
        cycle number and the time since its start, and the number of cycles."""
        shifted = self.t + self.rng.uniform(0, period)
        k = np.floor(shifted / period).astype(np.int64)
        return k, shifted - k * period, int(k.max()) + 1

    def place(self, n: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """``n`` random positions at least ``margin`` inside the frame."""
        return (self.rng.uniform(margin, max(margin, self.aspect - margin), n),
                self.rng.uniform(margin, max(margin, 1 - margin), n))


Motion = Callable[[Clock], list[Track]]


def translate(c: Clock, *, sign: int, vertical: bool = False) -> list[Track]:
    """Cross the frame horizontally (or vertically, ``sign`` +1 downwards) at constant speed,
    one object after another."""
    speed, margin = 0.012 * c.tempo, c.radius + 0.05
    extent = 1.0 if vertical else c.aspect
    k, s, n = c.cycles((extent + 2 * margin) / speed)
    start = -margin if sign > 0 else extent + margin
    x, y = c.place(n, margin + 0.05)
    path = start + sign * speed * s
    if vertical:
        return [Track(x=x[k], y=path, radius=c.radius, angle=c.rng.uniform(0, TAU, n)[k])]
    return [Track(x=path, y=y[k], radius=c.radius, angle=c.rng.uniform(0, TAU, n)[k])]


def rotate(c: Clock, *, sign: int) -> list[Track]:
    """Spin in place at a constant rate."""
    x, y = c.place(1, c.radius + 0.1)
    angle = c.rng.uniform(0, TAU) + sign * 0.07 * c.tempo * c.t
    return [Track(x=x[0], y=y[0], radius=c.radius, angle=angle)]


def scale(c: Clock, *, sign: int) -> list[Track]:
    """Grow (sign +1) or shrink (-1) exponentially between 0.4 and 1.8 radii, repeatedly."""
    k, s, n = c.cycles(56 / c.tempo)
    phase = s * c.tempo / 56
    phase = phase if sign > 0 else 1 - phase
    x, y = c.place(n, 1.8 * c.radius + 0.05)
    return [Track(x=x[k], y=y[k], radius=c.radius * 0.4 * 4.5 ** phase,
                  angle=c.rng.uniform(0, TAU, n)[k])]


def launch(c: Clock, *, power: int) -> list[Track]:
    """Travel 0.6 frame heights along a diagonal: ``power`` 1 at constant speed, 2 from rest
    with constant acceleration; then a new object starts elsewhere."""
    period = 48 / c.tempo
    k, s, n = c.cycles(period)
    heading = TAU / 8 + TAU / 4 * c.rng.integers(0, 4, n) + c.rng.uniform(-0.25, 0.25, n)
    ux, uy = np.cos(heading), np.sin(heading)
    cx = c.aspect / 2 + c.rng.uniform(-0.15, 0.15, n)
    cy = 0.5 + c.rng.uniform(-0.08, 0.08, n)
    travel = 0.6 * ((s / period) ** power - 0.5)
    return [Track(x=cx[k] + ux[k] * travel, y=cy[k] + uy[k] * travel, radius=c.radius,
                  angle=c.rng.uniform(0, TAU, n)[k])]


def free_fall(c: Clock) -> list[Track]:
    """Hang still at the top, then drop under gravity out of the frame; repeat."""
    hold, fall = 10 / c.tempo, 32 / c.tempo
    k, s, n = c.cycles(hold + fall)
    top = c.radius + 0.04
    gravity = 2 * (1 + c.radius + 0.06 - top) / fall**2
    x, _ = c.place(n, c.radius + 0.08)
    y = top + 0.5 * gravity * np.maximum(s - hold, 0) ** 2
    return [Track(x=x[k], y=y, radius=c.radius, angle=c.rng.uniform(0, TAU, n)[k])]


def bounce(c: Clock) -> list[Track]:
    """Drop onto the floor and bounce, each bounce lower (restitution < 1), until at rest."""
    gravity, restitution = 0.004 * c.tempo**2, c.rng.uniform(0.55, 0.75)
    floor = 1 - c.radius - 0.03
    drop = floor - (c.radius + 0.03 + c.rng.uniform(0, 0.15))
    bounces = int(math.ceil(math.log(0.01 / drop) / (2 * math.log(restitution))))
    launch_speed = math.sqrt(2 * gravity * drop) * restitution ** np.arange(1, bounces + 1)
    first = math.sqrt(2 * drop / gravity)
    starts = first + np.concatenate([[0], np.cumsum(2 * launch_speed / gravity)])
    k, s, n = c.cycles(starts[-1] + 8 / c.tempo)
    j = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, bounces - 1)
    u = s - starts[j]
    height = np.where(s < first, drop - 0.5 * gravity * s**2,
                      np.maximum(launch_speed[j] * u - 0.5 * gravity * u**2, 0))
    height = np.where(s >= starts[-1], 0, height)
    x, _ = c.place(n, c.radius + 0.25)
    drift = c.rng.uniform(-0.002, 0.002, n) * c.tempo
    return [Track(x=x[k] + drift[k] * s, y=floor - height, radius=c.radius,
                  angle=c.rng.uniform(0, TAU, n)[k])]


def slide(c: Clock, *, sign: int | None = None) -> list[Track]:
    """Kicked sideways (``sign`` +1: to the right; default: either way), slide with constant
    friction deceleration to rest, wait; repeat."""
    speed, distance = 0.03 * c.tempo, 0.55
    stop = 2 * distance / speed
    k, s, n = c.cycles(stop + 12 / c.tempo)
    sign = c.rng.choice([-1, 1], n) if sign is None else np.full(n, sign)
    room = c.aspect - 2 * (c.radius + 0.05) - distance
    start = c.radius + 0.05 + c.rng.uniform(0, max(room, 0), n) + (sign < 0) * distance
    _, y = c.place(n, c.radius + 0.08)
    u = np.minimum(s, stop)
    return [Track(x=start[k] + sign[k] * (speed * u - 0.5 * speed / stop * u**2), y=y[k],
                  radius=c.radius, angle=c.rng.uniform(0, TAU, n)[k])]


def ripple(c: Clock, *, rings: int = 3) -> list[Track]:
    """Rings born at one point spread out at constant speed and fade; a new point per cycle."""
    k, s, n = c.cycles(64 / c.tempo)
    x, y = c.place(n, 0.2)
    tracks = []
    for i in range(rings):
        age = s - i * 10 / c.tempo
        tracks.append(Track(x=x[k], y=y[k], radius=0.03 + 0.009 * c.tempo * np.maximum(age, 0),
                            alpha=np.where(age >= 0, np.exp(-age * c.tempo / 24), 0.0),
                            ring=0.03))
    return tracks


def break_apart(c: Clock) -> list[Track]:
    """Rest whole, then burst into pieces that fly out, spin, fall and fade; repeat."""
    hold, fly = 16 / c.tempo, 36 / c.tempo
    k, s, n = c.cycles(hold + fly)
    pieces = int(c.rng.integers(3, 7))
    x, y = c.place(n, c.radius + 0.15)
    angle = c.rng.uniform(0, TAU, n)[k]
    u = np.maximum(s - hold, 0)
    tracks = []
    for i in range(pieces):
        heading = angle + TAU * (i + 0.5) / pieces
        speed, spin = c.rng.uniform(0.008, 0.014) * c.tempo, c.rng.uniform(-0.08, 0.08) * c.tempo
        tracks.append(Track(
            x=x[k] + speed * u * np.cos(heading),
            y=y[k] + speed * u * np.sin(heading) + 0.5 * 0.0006 * c.tempo**2 * u**2,
            radius=c.radius, angle=angle + spin * u, alpha=np.clip(1 - (u / fly) ** 2, 0, 1),
            sector=(TAU * i / pieces, TAU * (i + 1) / pieces)))
    return tracks


#: Class name -> motion. A class's position seeds its videos: new classes go at the end.
MOTIONS: dict[str, Motion] = {
    "MoveLeft": partial(translate, sign=-1),
    "MoveRight": partial(translate, sign=1),
    "RotateClockwise": partial(rotate, sign=1),
    "RotateCounterclockwise": partial(rotate, sign=-1),
    "Grow": partial(scale, sign=1),
    "Shrink": partial(scale, sign=-1),
    "Accelerate": partial(launch, power=2),
    "ConstantSpeed": partial(launch, power=1),
    "FreeFall": free_fall,
    "Bounce": bounce,
    "SlideToRest": slide,
    "Ripple": ripple,
    "BreakApart": break_apart,
    # Beyond the default set (for the class sets below).
    "MoveUp": partial(translate, sign=-1, vertical=True),
    "MoveDown": partial(translate, sign=1, vertical=True),
    "SlideLeft": partial(slide, sign=-1),
    "SlideRight": partial(slide, sign=1),
}
#: The default class set. Order matters only for ``--classes N`` (the first N).
CLASSES = tuple(list(MOTIONS)[:13])
#: Pairs of classes each of which is the other played backwards.
REVERSAL_PAIRS = (("MoveLeft", "MoveRight"), ("RotateClockwise", "RotateCounterclockwise"),
                  ("Grow", "Shrink"), ("MoveUp", "MoveDown"))
#: Pairs of classes each of which is the other seen in a mirror (left-right or up-down).
MIRROR_PAIRS = (("MoveLeft", "MoveRight"), ("RotateClockwise", "RotateCounterclockwise"),
                ("MoveUp", "MoveDown"), ("SlideLeft", "SlideRight"))
#: Named class sets: ``no-reversal-pairs`` keeps one class of each reversal pair (only the
#: motions' own arrow of time tells direction); ``mirror-pairs`` is mostly mirror pairs,
#: two of which (SlideLeft/SlideRight) are not time reversals of each other.
CLASS_SETS: dict[str, tuple[str, ...]] = {
    "default": CLASSES,
    "no-reversal-pairs": ("MoveRight", "RotateClockwise", "Grow", "Accelerate", "ConstantSpeed",
                          "FreeFall", "Bounce", "SlideToRest", "Ripple", "BreakApart"),
    "mirror-pairs": ("MoveLeft", "MoveRight", "RotateClockwise", "RotateCounterclockwise",
                     "MoveUp", "MoveDown", "SlideLeft", "SlideRight", "Bounce", "FreeFall"),
}


@dataclass(frozen=True)
class Shape:
    """How a shape looks: outline ``r(phi) = radius * (1 + bump * cos(lobes * phi))``, a main
    colour and an accent wedge of half-angle ``wedge`` that makes rotation visible."""

    colour: np.ndarray        # (3,) float32
    accent: np.ndarray
    lobes: int
    bump: float
    wedge: float

    @classmethod
    def draw(cls, rng: np.random.Generator, luminance: float) -> Shape:
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        colour = np.clip(colour + luminance - colour @ _LUMINANCE, 0, 255)
        return cls(colour=colour, accent=255 - colour, lobes=int(rng.integers(3, 7)),
                   bump=float(rng.uniform(0, 0.25)), wedge=float(rng.uniform(0.4, 0.8)))


@dataclass(frozen=True)
class Look:
    """How a scene looks, drawn identically for every class: a background (larger than the
    frame by the camera sway on each side) and the moving shapes' look."""

    background: np.ndarray    # float32 (H + 2 margin) x (W + 2 margin) x 3
    shape: Shape


_LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a 2D grid to ``height x width``."""
    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.linspace(0, n_in - 1, n_out)
        low = np.minimum(pos.astype(np.int64), n_in - 2)
        return low, low + 1, (pos - low).astype(np.float32)

    y0, y1, wy = axis(grid.shape[0], height)
    x0, x1, wx = axis(grid.shape[1], width)
    rows = grid[y0] * (1 - wy)[:, None] + grid[y1] * wy[:, None]
    return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def _contrasting_luminance(rng: np.random.Generator, bright: bool) -> float:
    """A moving shape's luminance: dark on a bright background, light on a dark one."""
    return rng.uniform(0, 60) if bright else rng.uniform(195, 255)


def _is_bright(background: np.ndarray) -> bool:
    return float(background.mean(axis=(0, 1)) @ _LUMINANCE) > 128


def draw_look(rng: np.random.Generator, size: tuple[int, int], *, pan: float = _SWAY) -> Look:
    """A random scene for ``size`` (W, H) frames: a multi-scale noise texture in a
    3-colour palette, with static clutter (rings, shards, whole shapes) so that what the
    moving classes show in a still (rings of Ripple, pieces of BreakApart) is in every
    class's frames; and a moving-shape look whose brightness contrasts with the texture.
    ``pan``: how far (frame heights) the camera may look beyond the frame on each side."""
    width, height = size
    margin = _margin(height, pan)
    full_h, full_w = height + 2 * margin, width + 2 * margin
    fields = []
    for _ in range(2):
        octaves = ((max(2, height // 3), 0.5), (max(2, height // 12), 0.3), (4, 0.2))
        field = sum(weight * _upsample(rng.random((max(2, full_h // cell), max(2, full_w // cell)),
                                                  dtype=np.float32), full_h, full_w)
                    for cell, weight in octaves)
        fields.append((field - field.min()) / max(float(np.ptp(field)), 1e-6))
    palette = rng.uniform(40, 215, (3, 3)).astype(np.float32)
    background = (palette[0] + fields[0][..., None] * (palette[1] - palette[0])
                  + 0.5 * fields[1][..., None] * (palette[2] - palette[0]))
    for _ in range(rng.integers(2, 5)):
        kind, radius = rng.integers(3), rng.uniform(0.05, 0.2) * height
        start = rng.uniform(0, TAU)
        _draw(background, Shape.draw(rng, rng.uniform(0, 255)),
              x=rng.uniform(0, full_w), y=rng.uniform(0, full_h), radius=radius,
              angle=rng.uniform(0, TAU), alpha=rng.uniform(0.5, 1),
              ring=0.03 * height if kind == 0 else 0.0,
              sector=(start, start + rng.uniform(0.8, 2)) if kind == 1 else None)
    shape = Shape.draw(rng, _contrasting_luminance(rng, _is_bright(background)))
    return Look(background=np.clip(background, 0, 255), shape=shape)


def _margin(height: int, pan: float) -> int:
    """Pixels the background extends beyond the frame on each side (camera sway)."""
    return int(math.ceil(pan * height))


def _periodic_texture(rng: np.random.Generator, height: int, width: int, *, scale: int
                      ) -> np.ndarray:
    """A multi-scale noise field ``height x width`` in [0, 1] that tiles (bilinear
    interpolation wraps around both edges), so it can scroll without a seam; ``scale``: the
    coarsest cell, in pixels."""
    def axis(n_out: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.arange(n_out) * cells / n_out
        low = pos.astype(np.int64)
        return low, (low + 1) % cells, (pos - low).astype(np.float32)

    field = np.zeros((height, width), dtype=np.float32)
    for cell, weight in ((scale, 0.6), (max(2, scale // 4), 0.4)):
        grid = rng.random((max(2, height // cell), max(2, width // cell)), dtype=np.float32)
        y0, y1, wy = axis(height, grid.shape[0])
        x0, x1, wx = axis(width, grid.shape[1])
        rows = grid[y0] * (1 - wy)[:, None] + grid[y1] * wy[:, None]
        field += weight * (rows[:, x0] * (1 - wx) + rows[:, x1] * wx)
    return (field - field.min()) / max(float(np.ptp(field)), 1e-6)


def _draw(canvas: np.ndarray, shape: Shape, *, x: float, y: float, radius: float,
          angle: float, alpha: float, ring: float, sector: tuple[float, float] | None) -> None:
    """Paint one shape (pixel units) into ``canvas`` (H x W x 3 float32), 1-pixel antialiased."""
    bump = 0.0 if ring else shape.bump
    extent = radius * (1 + bump) + 1
    x0, x1 = max(0, int(x - extent)), min(canvas.shape[1], int(x + extent) + 2)
    y0, y1 = max(0, int(y - extent)), min(canvas.shape[0], int(y + extent) + 2)
    if x0 >= x1 or y0 >= y1 or alpha <= 0:
        return
    dx = np.arange(x0, x1, dtype=np.float32) + 0.5 - x
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - y)[:, None]
    rho = np.hypot(dx, dy)
    phi = np.arctan2(dy, dx) - angle
    edge = radius * (1 + bump * np.cos(shape.lobes * phi))
    cover = np.clip(edge - rho + 0.5, 0, 1)
    if ring:
        cover *= np.clip(rho - edge + ring + 0.5, 0, 1)
        colour = shape.colour
    else:
        colour = np.where((np.cos(phi) > math.cos(shape.wedge))[..., None], shape.accent,
                          shape.colour)
    if sector is not None:
        phi = np.mod(phi - sector[0], TAU)
        cover *= phi < sector[1] - sector[0]
    region = canvas[y0:y1, x0:x1]
    region += (alpha * cover)[..., None] * (colour - region)


def draw_tempo(rng: np.random.Generator, spread: tuple[float, float] = TEMPO) -> float:
    """A video's tempo, log-uniform over ``spread`` (default :data:`TEMPO`)."""
    return float(np.exp(rng.uniform(*np.log(spread))))


def still_frames(num_frames: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Where the motion stands still (bool ``(T,)``): one or two stretches at random places
    that together hold ``round(fraction * num_frames)`` frames."""
    count = int(round(fraction * num_frames))
    still = np.zeros(num_frames, dtype=bool)
    if count == 0:
        return still
    pieces = 1 if count < 2 else int(rng.integers(1, 3))
    lengths = [count] if pieces == 1 else [first := int(rng.integers(1, count)), count - first]
    # The moving frames are cut into pieces + 1 runs (some possibly empty) around the stretches.
    cuts = np.sort(rng.integers(0, num_frames - count + 1, pieces))
    for i, length in enumerate(lengths):
        start = int(cuts[i]) + sum(lengths[:i])
        still[start:start + length] = True
    return still


# --- motion unrelated to the class (SceneMotion) ---


@dataclass(frozen=True)
class Distractor:
    """A shape that moves on its own, whatever the class: its track and its look."""

    track: Track
    shape: Shape


@dataclass(frozen=True)
class FlowLayer:
    """A background layer that moves on its own (water, clouds, a crowd far away): a tiling
    texture scrolling at a constant velocity inside a fixed region of the background.

    ``texture``: float32 ``Hb x Wb x 3`` (the look's background size); ``mask``: float32
    ``Hb x Wb x 1`` in [0, 1], where the layer covers the background; ``velocity``: (x, y)
    pixels per frame."""

    texture: np.ndarray
    mask: np.ndarray
    velocity: np.ndarray

    def over(self, background: np.ndarray, frame: int) -> np.ndarray:
        """``background`` with the layer as it is at ``frame`` laid over it."""
        dx, dy = np.round(self.velocity * frame).astype(int)
        moved = np.roll(self.texture, (int(dy), int(dx)), axis=(0, 1))
        return background + self.mask * (moved - background)


@dataclass(frozen=True)
class SceneMotion:
    """Motion unrelated to the class, drawn on its own generators (:func:`draw_scene_motion`):
    ``distractors`` drawn under the class's shapes; camera ``zoom`` (``(T,)`` view scale,
    above 1 zoomed in) and ``shake`` (``(T, 2)`` camera offset, frame heights) on top of the
    sway; a ``flow`` layer over the background. Empty: none of it (the default)."""

    distractors: tuple[Distractor, ...] = ()
    zoom: np.ndarray | None = None
    shake: np.ndarray | None = None
    flow: FlowLayer | None = None


def _fold(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Positions reflected back into [low, high] at its ends (a shape bouncing off them)."""
    span = max(high - low, 1e-9)
    offset = np.mod(values - low, 2 * span)
    return low + span - np.abs(offset - span)


def draw_distractors(rng: np.random.Generator, *, count: int, num_frames: int, aspect: float,
                     bright: bool, tempo: tuple[float, float] = TEMPO
                     ) -> tuple[Distractor, ...]:
    """``count`` shapes that move on their own, each at its own tempo (log-uniform over
    ``tempo``, so their motion tells playback speed as the class's does) on one of three
    kinds of path: wandering (constant pace, smoothly turning heading), circling, or swinging
    to and fro along a line; each spins slowly and bounces off the frame's edges. Their looks
    are drawn as the class's shape is (brightness contrasting with a ``bright`` background or
    not), each its own."""
    t = np.arange(num_frames, dtype=np.float64)
    distractors = []
    for _ in range(count):
        pace = draw_tempo(rng, tempo)
        radius = float(rng.uniform(*DISTRACTOR_RADIUS))
        kind = int(rng.integers(3))
        if kind == 0:
            periods = rng.uniform(30, 120, 3)[:, None] / pace
            turns = rng.uniform(0.5, 1.5, 3)[:, None] * np.sin(
                TAU * t / periods + rng.uniform(0, TAU, 3)[:, None])
            heading = rng.uniform(0, TAU) + turns.sum(axis=0)
            step = rng.uniform(0.004, 0.012) * pace
            x, y = np.cumsum(step * np.cos(heading)), np.cumsum(step * np.sin(heading))
        elif kind == 1:
            reach, phase = rng.uniform(0.05, 0.2), rng.uniform(0, TAU)
            angle = phase + rng.choice([-1, 1]) * rng.uniform(0.03, 0.08) * pace * t
            x, y = reach * np.cos(angle), reach * np.sin(angle)
        else:
            reach, heading = rng.uniform(0.05, 0.2), rng.uniform(0, TAU)
            swing = reach * np.sin(TAU * t * pace / rng.uniform(40, 120) + rng.uniform(0, TAU))
            x, y = swing * np.cos(heading), swing * np.sin(heading)
        start_x = rng.uniform(radius, aspect - radius)
        start_y = rng.uniform(radius, 1 - radius)
        track = Track(x=_fold(start_x + x, radius, aspect - radius),
                      y=_fold(start_y + y, radius, 1 - radius), radius=radius,
                      angle=rng.uniform(0, TAU) + rng.uniform(-0.05, 0.05) * pace * t)
        distractors.append(Distractor(track=track, shape=Shape.draw(
            rng, _contrasting_luminance(rng, bright))))
    return tuple(distractors)


def draw_zoom(rng: np.random.Generator, *, amount: float, num_frames: int) -> np.ndarray:
    """The view scale per frame (``(T,)``): zooming in and out slowly around 1, by a factor
    up to ``exp(amount)`` either way (amplitude uniform over [0, amount], period 60-160
    frames)."""
    t = np.arange(num_frames, dtype=np.float64)
    amplitude, period = rng.uniform(0, amount), rng.uniform(60, 160)
    return np.exp(amplitude * np.sin(TAU * t / period + rng.uniform(0, TAU)))


def draw_shake(rng: np.random.Generator, *, amount: float, num_frames: int) -> np.ndarray:
    """A hand's jitter (``(T, 2)``, frame heights): per axis three fast sinusoids (periods
    3-12 frames) mixed with random weights, their amplitude at most ``amount``."""
    t = np.arange(num_frames, dtype=np.float64)[:, None, None]
    periods, phases = rng.uniform(3, 12, (3, 2)), rng.uniform(0, TAU, (3, 2))
    weights = rng.uniform(0.2, 1, (3, 2))
    waves = (weights * np.sin(TAU * t / periods + phases)).sum(axis=1) / weights.sum(axis=0)
    return rng.uniform(0.5, 1) * amount * waves


FLOW_COVER = 0.4  # share of the background the flowing layer covers


def draw_flow(rng: np.random.Generator, *, amount: float, background: np.ndarray,
              height: int) -> FlowLayer:
    """A flowing layer for ``background`` (``Hb x Wb x 3``) of ``height``-pixel frames: a
    contrasting two-colour tiling texture that scrolls in a random direction at ``amount`` x (0.5-1)
    frame heights per frame, inside blobs covering :data:`FLOW_COVER` of the background."""
    full_h, full_w = background.shape[:2]
    field = _periodic_texture(rng, full_h, full_w, scale=max(2, height // 4))
    # two colours at least 80 grey levels apart per channel, so the flow is seen
    base = rng.uniform(40, 215, 3)
    other = base + np.where(base > 128, -1, 1) * rng.uniform(80, 120, 3)
    texture = (base + field[..., None] * (other - base)).astype(np.float32)
    region = _periodic_texture(rng, full_h, full_w, scale=max(2, height // 2))
    threshold = float(np.quantile(region, 1 - FLOW_COVER))
    mask = np.clip((region - threshold) / 0.1, 0, 1)[..., None].astype(np.float32)
    speed, direction = rng.uniform(0.5, 1) * amount * height, rng.uniform(0, TAU)
    return FlowLayer(texture=texture, mask=mask,
                     velocity=speed * np.array([math.cos(direction), math.sin(direction)]))


def draw_scene_motion(options: SynthOptions, key: Sequence[int], *, look: Look,
                      num_frames: int) -> SceneMotion:
    """The motion unrelated to the class that ``options`` ask for, in scene ``look``: each
    part from a generator of its own seeded by ``(*key, part)`` (``key``: the video's seed,
    class, group and clip), so turning one option on changes nothing else, and the class's
    own draws stay as they are without them."""
    def rng(part: int) -> np.random.Generator:
        return np.random.default_rng([*key, part])

    width, height = options.size
    return SceneMotion(
        distractors=draw_distractors(rng(2), count=options.distractors, num_frames=num_frames,
                                     aspect=width / height, bright=_is_bright(look.background),
                                     tempo=options.tempo),
        zoom=draw_zoom(rng(3), amount=options.zoom, num_frames=num_frames)
        if options.zoom else None,
        shake=draw_shake(rng(4), amount=options.shake, num_frames=num_frames)
        if options.shake else None,
        flow=draw_flow(rng(5), amount=options.flow, background=look.background, height=height)
        if options.flow else None)


def _view(world: np.ndarray, *, left: float, top: float, size: tuple[int, int],
          scale: float) -> np.ndarray:
    """The ``H x W`` frame a camera whose unzoomed frame starts at (``left``, ``top``) pixels
    of ``world`` sees when zoomed by ``scale`` about its centre (bilinear)."""
    width, height = size

    def axis(start: float, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = start + n_out / 2 + (np.arange(n_out) + 0.5 - n_out / 2) / scale - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        low = np.minimum(pos.astype(np.int64), n_in - 2)
        return low, low + 1, (pos - low).astype(np.float32)

    y0, y1, wy = axis(top, height, world.shape[0])
    x0, x1, wx = axis(left, width, world.shape[1])
    rows = world[y0] * (1 - wy)[:, None, None] + world[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[:, None] + rows[:, x1] * wx[:, None]


def render(name: str, *, look: Look, rng: np.random.Generator, size: tuple[int, int],
           num_frames: int, tempo: float | None = None, still: np.ndarray | None = None,
           pan: float = _SWAY, noise: tuple[float, float] = (2.0, 8.0),
           scene: SceneMotion = SceneMotion()) -> Iterator[np.ndarray]:
    """Frames (``H x W x 3`` uint8) of one video of class ``name`` in scene ``look``.

    ``tempo``: default drawn from ``rng`` over :data:`TEMPO`; ``still``: frames where the
    motion's clock stops (the objects rest; camera and noise go on); ``pan``: bound of the
    camera sway amplitude in frame heights (``look`` must be drawn with at least this
    ``pan``, plus the shake and zoom-out of ``scene``: :meth:`SynthOptions.reach`);
    ``noise``: range of the sensor noise's standard deviation (grey levels); ``scene``:
    motion unrelated to the class (nothing from it is drawn from ``rng``).
    """
    width, height = size
    t = np.arange(num_frames, dtype=np.float64)
    motion_t = t if still is None else np.concatenate([[0.0], np.cumsum(~still[:-1])])
    clock = Clock(t=motion_t, tempo=draw_tempo(rng) if tempo is None else tempo,
                  radius=float(rng.uniform(0.09, 0.14)), aspect=width / height, rng=rng)
    tracks = MOTIONS[name](clock)
    amplitude = rng.uniform(0, pan, 2)
    camera = amplitude * np.sin(TAU * t[:, None] / rng.uniform(80, 200, 2)
                                + rng.uniform(0, TAU, 2))
    sigma = float(rng.uniform(*noise))
    noise = rng.standard_normal((4, height, width, 3), dtype=np.float32) * sigma
    choice = rng.integers(0, len(noise), num_frames)
    if scene.shake is not None:
        camera = camera + scene.shake
    # Distractors first: the class's shapes pass in front of them.
    layers = [(d.track, d.shape) for d in scene.distractors] + [(track, look.shape)
                                                                for track in tracks]
    # Per track, per frame: x, y, radius (pixels, camera removed), angle, alpha.
    paths = [np.stack(np.broadcast_arrays(
        (track.x - camera[:, 0]) * height, (track.y - camera[:, 1]) * height,
        np.asarray(track.radius) * height, track.angle, track.alpha)) for track, _ in layers]
    zoom = scene.zoom
    if zoom is not None:  # about the frame's centre: positions and radii scale with it
        centre = np.array([[width / 2], [height / 2]])
        paths = [np.concatenate([centre + (path[:2] - centre) * zoom, path[2:3] * zoom,
                                 path[3:]]) for path in paths]
    margin = (look.background.shape[0] - height) // 2
    for i in range(num_frames):
        world = look.background if scene.flow is None else scene.flow.over(look.background, i)
        if zoom is None:
            left, top = margin + np.round(camera[i] * height).astype(int)
            canvas = world[top:top + height, left:left + width].copy()
        else:
            left, top = margin + camera[i] * height
            canvas = _view(world, left=left, top=top, size=size, scale=zoom[i])
        for (track, shape), path in zip(layers, paths, strict=True):
            x, y, radius, angle, alpha = path[:, i]
            ring = track.ring * height if zoom is None else track.ring * height * zoom[i]
            _draw(canvas, shape, x=x, y=y, radius=radius, angle=angle, alpha=alpha,
                  ring=ring, sector=track.sector)
        canvas += noise[choice[i]]
        yield np.clip(canvas, 0, 255).astype(np.uint8)


def split_groups(num_groups: int) -> list[list[int]]:
    """Test groups (1-based) of splits 1-3: consecutive runs of about 7/25 of the groups,
    as in UCF-101 (25 groups, test groups 1-7, 8-14, 15-21); the last groups always train."""
    per_split = min(max(1, round(num_groups * 7 / 25)), (num_groups - 1) // 3)
    if per_split < 1:
        raise PlayspeedError("need at least 4 videos per class for three disjoint test splits")
    return [list(range(s * per_split + 1, (s + 1) * per_split + 1)) for s in range(3)]


def group_layout(videos_per_class: int) -> list[tuple[int, int]]:
    """(group, clip) of each video of a class: about 8 groups of up to 7 clips."""
    clips = min(max(videos_per_class // 8, 1), 7)
    return [(v // clips + 1, v % clips + 1) for v in range(videos_per_class)]


@dataclass(frozen=True)
class SynthOptions:
    """How a synthetic dataset is made (one member of the family; :data:`VARIANTS` names some).

    ``size``: (W, H) of the videos; ``frames``: per-video length, uniform over this range
    (inclusive); ``tempo``: per-video tempo range (log-uniform); ``class_set``: a name in
    :data:`CLASS_SETS` or the class names; ``static``: per-video share of frames, uniform
    over this range, in which the motion stands still (:func:`still_frames`); ``pan``: bound
    of the camera sway amplitude (frame heights); ``noise``: range of the sensor noise's
    standard deviation (grey levels). Motion unrelated to the class (:class:`SceneMotion`):
    ``distractors``: shapes wandering on their own (:func:`draw_distractors`); ``zoom``:
    bound of the camera's log zoom amplitude (:func:`draw_zoom`); ``shake``: bound of the
    camera jitter amplitude (frame heights, :func:`draw_shake`); ``flow``: speed bound of a
    flowing background layer (frame heights per frame, :func:`draw_flow`); 0: none.
    """

    size: tuple[int, int] = (320, 240)
    frames: tuple[int, int] = (128, 128)
    tempo: tuple[float, float] = TEMPO
    class_set: str | tuple[str, ...] = "default"
    static: tuple[float, float] = (0.0, 0.0)
    pan: float = _SWAY
    noise: tuple[float, float] = (2.0, 8.0)
    distractors: int = 0
    zoom: float = 0.0
    shake: float = 0.0
    flow: float = 0.0

    def reach(self) -> float:
        """How far (frame heights) the camera may see beyond the frame on each side: the
        sway, the shake, and the zoomed-out view's extra width."""
        width, height = self.size
        return self.pan + self.shake + 0.5 * width / height * math.expm1(self.zoom)

    def class_names(self) -> tuple[str, ...]:
        if isinstance(self.class_set, str):
            if self.class_set not in CLASS_SETS:
                raise PlayspeedError(f"class set {self.class_set!r}: expected one of "
                                     f"{', '.join(CLASS_SETS)} or class names")
            return CLASS_SETS[self.class_set]
        unknown = [name for name in self.class_set if name not in MOTIONS]
        if unknown or not self.class_set or len(set(self.class_set)) != len(self.class_set):
            raise PlayspeedError(f"class names {list(self.class_set)}: expected distinct names "
                                 f"among {', '.join(MOTIONS)}")
        return tuple(self.class_set)

    def check(self) -> None:
        width, height = self.size
        if width < 8 or height < 8 or width % 2 or height % 2:
            raise PlayspeedError(f"video size must be even and at least 8x8, got "
                                 f"{width}x{height}")
        ranges = {"frames per video": (self.frames, 1), "tempo": (self.tempo, 1e-3),
                  "static share": (self.static, 0.0), "noise": (self.noise, 0.0)}
        for what, ((low, high), least) in ranges.items():
            if not least <= low <= high:
                raise PlayspeedError(f"{what} must be a range [low, high] with "
                                     f"{least:g} <= low <= high, got [{low}, {high}]")
        if self.static[1] >= 1:
            raise PlayspeedError(f"static share must stay below 1, got {self.static[1]}")
        if self.pan < 0:
            raise PlayspeedError(f"pan must be >= 0, got {self.pan}")
        if self.distractors < 0:
            raise PlayspeedError(f"distractors must be >= 0, got {self.distractors}")
        if not 0 <= self.zoom <= 1:
            raise PlayspeedError(f"zoom must be in [0, 1], got {self.zoom}")
        for what, value in (("shake", self.shake), ("flow", self.flow)):
            if value < 0:
                raise PlayspeedError(f"{what} must be >= 0, got {value}")
        self.class_names()


#: Named members of the family: ``default`` is the embedded dataset of the demo; the others
#: change one thing each, except ``field``, which mixes several as footage brought by users
#: might (length 90-150, tempo 0.7-1.7x, objects at rest for part of most videos, more pan
#: and noise). Two add motion unrelated to the class over much of the frame, by different
#: mechanisms (tune on one, report on the other): ``crowd`` 10 distractor shapes wandering on
#: their own; ``handheld`` the camera (3x the sway, zoom in and out up to 1.35x, shake) and a
#: background layer flowing on its own over 40% of the background.
VARIANTS: dict[str, SynthOptions] = {
    "default": SynthOptions(),
    "original-tempo": SynthOptions(tempo=(0.6, 1.7)),
    "wide-tempo": SynthOptions(tempo=(0.5, 2.0)),
    "no-reversal": SynthOptions(class_set="no-reversal-pairs"),
    "mirror": SynthOptions(class_set="mirror-pairs"),
    "long-static": SynthOptions(frames=(150, 300), static=(0.2, 0.5)),
    "field": SynthOptions(frames=(90, 150), tempo=(0.7, 1.7), static=(0.0, 0.3), pan=0.12,
                          noise=(4.0, 12.0)),
    "crowd": SynthOptions(distractors=10),
    "handheld": SynthOptions(pan=0.15, zoom=0.3, shake=0.02, flow=0.02),
}


def synth_options(variant: str = "default", **changes) -> SynthOptions:
    """The options of ``variant`` with the ``changes`` that are not ``None``, checked.

    ``frames`` may be one length or a range; ``class_set`` a set name or class names."""
    if variant not in VARIANTS:
        raise PlayspeedError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    changes = {k: v for k, v in changes.items() if v is not None}
    if isinstance(changes.get("frames"), int):
        changes["frames"] = (changes["frames"], changes["frames"])
    for key in ("size", "frames", "tempo", "static", "noise"):
        if key in changes:
            changes[key] = tuple(changes[key])
    if not isinstance(changes.get("class_set", ""), str):
        changes["class_set"] = tuple(changes["class_set"])
    options = replace(VARIANTS[variant], **changes)
    options.check()
    return options


def write_dataset(root: str | os.PathLike, *, num_classes: int | None = None,
                  videos_per_class: int = 24, seed: int = 0, variant: str = "default",
                  size: tuple[int, int] | None = None, frames: int | tuple[int, int] | None = None,
                  tempo: tuple[float, float] | None = None,
                  class_set: str | tuple[str, ...] | None = None,
                  static: tuple[float, float] | None = None, pan: float | None = None,
                  noise: tuple[float, float] | None = None, distractors: int | None = None,
                  zoom: float | None = None, shake: float | None = None,
                  flow: float | None = None, fps: int = 25, progress: bool = False) -> dict:
    """Write the dataset under ``root`` in the UCF-101 layout; returns its summary.

    ``root/UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` and ``root/ucfTrainTestlist/``
    (classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt), plus ``root/synth.json``
    with the settings, counts and each video's length, tempo and still frames, written last
    (it marks a complete dataset). ``variant``: a name in :data:`VARIANTS`; the other
    options (see :class:`SynthOptions`), when given, replace the variant's.
    ``num_classes``: the first N classes of the class set (default all). The same arguments
    give the same bytes: every video draws from its own generators seeded by (seed, class,
    group, clip), so the first N classes are the same videos whatever N; motion unrelated to
    the class comes from generators of its own (:func:`draw_scene_motion`), so with none of
    it the videos are those written before it existed.
    """
    options = synth_options(variant, size=size, frames=frames, tempo=tempo,
                            class_set=class_set, static=static, pan=pan, noise=noise,
                            distractors=distractors, zoom=zoom, shake=shake, flow=flow)
    available = options.class_names()
    count = len(available) if num_classes is None else num_classes
    if not 1 <= count <= len(available):
        raise PlayspeedError(f"number of classes must be in 1..{len(available)}, got {count}")
    names = list(available[:count])
    width, height = options.size
    if videos_per_class < 4:
        raise PlayspeedError("need at least 4 videos per class for three disjoint test splits, "
                             f"got {videos_per_class}")
    layout = group_layout(videos_per_class)
    tests = split_groups(layout[-1][0])

    root = Path(root)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (root / "synth.json").unlink(missing_ok=True)
    started = time.perf_counter()
    jobs = [(name, group, clip) for name in names for group, clip in layout]
    per_video = {}
    for name, group, clip in tqdm(jobs, unit="video", disable=not progress, desc="synth"):
        index = list(MOTIONS).index(name)
        look = draw_look(np.random.default_rng([seed, index, group]), (width, height),
                         pan=options.reach())
        # Length and still stretches come from a generator of their own, so the default
        # options draw exactly what they always drew from the video's generator.
        extra = np.random.default_rng([seed, index, group, clip, 1])
        num_frames = int(extra.integers(options.frames[0], options.frames[1] + 1))
        still = still_frames(num_frames, float(extra.uniform(*options.static)), extra)
        rng = np.random.default_rng([seed, index, group, clip])
        video_tempo = draw_tempo(rng, options.tempo)
        scene = draw_scene_motion(options, (seed, index, group, clip), look=look,
                                  num_frames=num_frames)
        video = render(name, look=look, rng=rng, size=(width, height), num_frames=num_frames,
                       tempo=video_tempo, still=still, pan=options.pan, noise=options.noise,
                       scene=scene)
        key = f"{name}/{_video_name(name, group, clip)}"
        path = root / "UCF-101" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        write_video(tmp, video, fps=fps)
        os.replace(tmp, path)
        per_video[key] = {"frames": num_frames, "tempo": round(video_tempo, 4),
                          "still_frames": int(still.sum())}

    ordered = sorted(names)  # classInd.txt lists classes alphabetically, as UCF-101 does
    _write_lines(lists / "classInd.txt", [f"{i} {n}" for i, n in enumerate(ordered, start=1)])
    counts = {}
    for split, test_groups in enumerate(tests, start=1):
        train = [(n, g, c) for n in ordered for g, c in layout if g not in test_groups]
        test = [(n, g, c) for n in ordered for g, c in layout if g in test_groups]
        _write_lines(lists / f"trainlist0{split}.txt",
                     [f"{n}/{_video_name(n, g, c)} {ordered.index(n) + 1}" for n, g, c in train])
        _write_lines(lists / f"testlist0{split}.txt",
                     [f"{n}/{_video_name(n, g, c)}" for n, g, c in test])
        counts[f"split{split}"] = {"train": len(train), "test": len(test),
                                   "test_groups": test_groups}
    low, high = options.frames
    summary = {"classes": ordered, "videos": len(jobs), "videos_per_class": videos_per_class,
               "groups": layout[-1][0], "frames": low if low == high else [low, high],
               "fps": fps, "size": [width, height], "seed": seed, "variant": variant,
               "options": json.loads(json.dumps(asdict(options))), "splits": counts,
               "per_video": per_video}
    (root / "synth.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return {**summary, "seconds": round(time.perf_counter() - started, 1)}


def _video_name(name: str, group: int, clip: int) -> str:
    return f"v_{name}_g{group:02d}_c{clip:02d}.avi"


def _write_lines(path: Path, lines: list[str]) -> None:
    # CRLF, like the official UCF-101 lists, so readers get exercised on real line endings.
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())
