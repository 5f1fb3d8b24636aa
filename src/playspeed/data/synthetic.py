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

Units: lengths in frame heights (the frame spans x in [0, W/H], y in [0, 1], y down),
times in frames, angles in radians (increasing = clockwise on screen).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from playspeed.data.video import write_video
from playspeed.errors import PlayspeedError

TAU = 2 * math.pi
# Per-video tempo range (log-uniform). Its spread (1.9x) stays under the 2x step between
# playback speeds, so a clip's speed can be told from its motion. A 0.6-1.7x range let
# adjacent speeds overlap (speed accuracy capped near 75%), and pretext training learned
# markedly slower on it (train loss 1.65 vs 1.45 after 20 epochs of the demo's settings).
TEMPO = (0.9, 1.7)
_SWAY = 0.05  # bound of the camera sway amplitude (frame heights)


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


def translate(c: Clock, *, sign: int) -> list[Track]:
    """Cross the frame horizontally at constant speed, one object after another."""
    speed, margin = 0.012 * c.tempo, c.radius + 0.05
    k, s, n = c.cycles((c.aspect + 2 * margin) / speed)
    start = -margin if sign > 0 else c.aspect + margin
    _, y = c.place(n, margin + 0.05)
    return [Track(x=start + sign * speed * s, y=y[k], radius=c.radius,
                  angle=c.rng.uniform(0, TAU, n)[k])]


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


def slide(c: Clock) -> list[Track]:
    """Kicked sideways, slide with constant friction deceleration to rest, wait; repeat."""
    speed, distance = 0.03 * c.tempo, 0.55
    stop = 2 * distance / speed
    k, s, n = c.cycles(stop + 12 / c.tempo)
    sign = c.rng.choice([-1, 1], n)
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


#: Class name -> motion. Order matters only for ``--classes N`` (the first N).
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
}
CLASSES = tuple(MOTIONS)


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


def draw_look(rng: np.random.Generator, size: tuple[int, int]) -> Look:
    """A random scene for ``size`` (W, H) frames: a multi-scale noise texture in a
    3-colour palette, with static clutter (rings, shards, whole shapes) so that what the
    moving classes show in a still (rings of Ripple, pieces of BreakApart) is in every
    class's frames; and a moving-shape look whose brightness contrasts with the texture."""
    width, height = size
    margin = _margin(height)
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
    bright = float(background.mean(axis=(0, 1)) @ _LUMINANCE) > 128
    shape = Shape.draw(rng, rng.uniform(0, 60) if bright else rng.uniform(195, 255))
    return Look(background=np.clip(background, 0, 255), shape=shape)


def _margin(height: int) -> int:
    """Pixels the background extends beyond the frame on each side (camera sway)."""
    return int(math.ceil(_SWAY * height))


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


def draw_tempo(rng: np.random.Generator) -> float:
    """A video's tempo, log-uniform over :data:`TEMPO`."""
    return float(np.exp(rng.uniform(*np.log(TEMPO))))


def render(name: str, *, look: Look, rng: np.random.Generator, size: tuple[int, int],
           num_frames: int) -> Iterator[np.ndarray]:
    """Frames (``H x W x 3`` uint8) of one video of class ``name`` in scene ``look``."""
    width, height = size
    clock = Clock(t=np.arange(num_frames, dtype=np.float64),
                  tempo=draw_tempo(rng),
                  radius=float(rng.uniform(0.09, 0.14)), aspect=width / height, rng=rng)
    tracks = MOTIONS[name](clock)
    amplitude = rng.uniform(0, _SWAY, 2)
    camera = amplitude * np.sin(TAU * clock.t[:, None] / rng.uniform(80, 200, 2)
                                + rng.uniform(0, TAU, 2))
    sigma = float(rng.uniform(2, 8))
    noise = rng.standard_normal((4, height, width, 3), dtype=np.float32) * sigma
    choice = rng.integers(0, len(noise), num_frames)
    # Per track, per frame: x, y, radius (pixels, camera removed), angle, alpha.
    paths = [np.stack(np.broadcast_arrays(
        (track.x - camera[:, 0]) * height, (track.y - camera[:, 1]) * height,
        np.asarray(track.radius) * height, track.angle, track.alpha)) for track in tracks]
    margin = _margin(height)
    for i in range(num_frames):
        left, top = margin + np.round(camera[i] * height).astype(int)
        canvas = look.background[top:top + height, left:left + width].copy()
        for track, path in zip(tracks, paths, strict=True):
            x, y, radius, angle, alpha = path[:, i]
            _draw(canvas, look.shape, x=x, y=y, radius=radius, angle=angle, alpha=alpha,
                  ring=track.ring * height, sector=track.sector)
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


def write_dataset(root: str | os.PathLike, *, num_classes: int | None = None,
                  videos_per_class: int = 24, seed: int = 0, size: tuple[int, int] = (320, 240),
                  frames: int = 128, fps: int = 25, progress: bool = False) -> dict:
    """Write the dataset under ``root`` in the UCF-101 layout; returns its summary.

    ``root/UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` and ``root/ucfTrainTestlist/``
    (classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt), plus ``root/synth.json``
    with the settings and counts, written last (it marks a complete dataset).
    ``num_classes``: the first N of :data:`CLASSES` (default all); ``size``: (W, H);
    ``frames``: per video. The same arguments give the same bytes: every video draws from
    its own generator seeded by (seed, class, group, clip), so the first N classes are the
    same videos whatever N.
    """
    count = len(CLASSES) if num_classes is None else num_classes
    if not 1 <= count <= len(CLASSES):
        raise PlayspeedError(f"number of classes must be in 1..{len(CLASSES)}, got {count}")
    names = list(CLASSES[:count])
    width, height = (int(v) for v in size)
    if width < 8 or height < 8 or width % 2 or height % 2:
        raise PlayspeedError(f"video size must be even and at least 8x8, got {width}x{height}")
    if frames < 1:
        raise PlayspeedError(f"frames per video must be at least 1, got {frames}")
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
    from tqdm import tqdm

    for name, group, clip in tqdm(jobs, unit="video", disable=not progress, desc="synth"):
        index = CLASSES.index(name)
        look = draw_look(np.random.default_rng([seed, index, group]), (width, height))
        video = render(name, look=look, rng=np.random.default_rng([seed, index, group, clip]),
                       size=(width, height), num_frames=frames)
        path = root / "UCF-101" / name / _video_name(name, group, clip)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        write_video(tmp, video, fps=fps)
        os.replace(tmp, path)

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
    summary = {"classes": ordered, "videos": len(jobs), "videos_per_class": videos_per_class,
               "groups": layout[-1][0], "frames": frames, "fps": fps,
               "size": [width, height], "seed": seed, "splits": counts}
    (root / "synth.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return {**summary, "seconds": round(time.perf_counter() - started, 1)}


def _video_name(name: str, group: int, clip: int) -> str:
    return f"v_{name}_g{group:02d}_c{clip:02d}.avi"


def _write_lines(path: Path, lines: list[str]) -> None:
    # CRLF, like the official UCF-101 lists, so readers get exercised on real line endings.
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())
