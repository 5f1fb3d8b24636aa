"""Videos re-timed on purpose, to check the playback-speed detector against known answers.

A *plan* lists segments as ``(signed speed, output frames)``: ``(1, 64)`` plays 64 source
frames as recorded, ``(4, 40)`` plays every 4th frame of the next 160 source frames (4x),
``(-1, 48)`` plays the next 48 source frames backwards. Segments follow each other in the
source: each starts where the previous one's source frames end, so no frame is shown twice
and a reversed segment is spliced in like a cut.

    python -m playspeed.tasks.retime OUT.avi [--name FreeFall] [--seed 0] [--check CKPT]

writes the default plan (normal, 4x, normal, reversed, normal) from a synthetic render and
prints the true segments; ``--check`` runs the detector on it and scores what it flags.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from playspeed.data.synthetic import CLASSES, draw_look, render
from playspeed.data.video import write_video
from playspeed.errors import PlayspeedError
from playspeed.tasks.speed import detect_speed

#: Normal, a 4x segment, normal, a reversed segment, normal (384 source frames, 264 shown).
DEFAULT_PLAN: tuple[tuple[int, int], ...] = ((1, 64), (4, 40), (1, 48), (-1, 48), (1, 64))


@dataclass(frozen=True)
class TrueSegment:
    first_frame: int  # first output frame
    last_frame: int  # last output frame, inclusive
    signed_speed: int


def retime_indices(plan: Sequence[tuple[int, int]]) -> tuple[np.ndarray, list[TrueSegment]]:
    """Source frame of every output frame (int64, in output order) and the plan's segments
    in output frames. The source needs ``indices.max() + 1`` frames."""
    indices, segments, source, shown = [], [], 0, 0
    for signed, count in plan:
        signed, count = int(signed), int(count)
        if signed == 0 or count < 1:
            raise PlayspeedError(f"plan: each segment needs a non-zero speed and at least one "
                                 f"frame, got ({signed}, {count})")
        skip = abs(signed)
        frames = source + skip * np.arange(count, dtype=np.int64)
        indices.append(frames if signed > 0 else frames[::-1])
        segments.append(TrueSegment(shown, shown + count - 1, signed))
        source += skip * count
        shown += count
    if not indices:
        raise PlayspeedError("plan: no segment")
    return np.concatenate(indices), segments


class RetimedSource:
    """A frame source (``num_frames`` / ``read`` / ``fps``) that shows ``source``'s video
    ``record`` re-timed by ``plan``: output frame ``j`` is source frame ``indices[j]``."""

    def __init__(self, source, record, plan: Sequence[tuple[int, int]]) -> None:
        self.source, self.record = source, record
        self.indices, self.segments = retime_indices(plan)
        if self.indices.max() >= source.num_frames(record):
            raise PlayspeedError(f"plan needs {self.indices.max() + 1} source frames, the "
                                 f"video has {source.num_frames(record)}")

    def num_frames(self, record=None) -> int:
        return len(self.indices)

    def fps(self, record=None) -> float:
        return float(self.source.fps(self.record))

    def read(self, record, frame_indices):
        return self.source.read(self.record, self.indices[np.asarray(frame_indices)])


def retime_video(dst: str | Path, frames: Sequence[np.ndarray] | np.ndarray,
                 plan: Sequence[tuple[int, int]] = DEFAULT_PLAN, *, fps: int = 25
                 ) -> list[TrueSegment]:
    """Write ``frames`` (``H x W x 3`` uint8, the source video) re-timed by ``plan`` to
    ``dst``; returns the true segments in output frames."""
    indices, segments = retime_indices(plan)
    if indices.max() >= len(frames):
        raise PlayspeedError(f"plan needs {indices.max() + 1} source frames, got {len(frames)}")
    write_video(dst, (frames[i] for i in indices.tolist()), fps=fps)
    return segments


def source_frames_needed(plan: Sequence[tuple[int, int]]) -> int:
    return int(retime_indices(plan)[0].max()) + 1


def retimed_synthetic(dst: str | Path, *, name: str = "FreeFall",
                      plan: Sequence[tuple[int, int]] = DEFAULT_PLAN, seed: int = 0,
                      size: tuple[int, int] = (160, 120), fps: int = 25
                      ) -> list[TrueSegment]:
    """Render one synthetic video of class ``name`` (as ``playspeed synth`` draws them, from
    its own seed) long enough for ``plan``, and write it re-timed to ``dst``."""
    if name not in CLASSES:
        raise PlayspeedError(f"unknown synthetic class {name!r}; one of {', '.join(CLASSES)}")
    look = draw_look(np.random.default_rng([seed, 1000]), size)
    frames = list(render(name, look=look, rng=np.random.default_rng([seed, 1001]), size=size,
                         num_frames=source_frames_needed(plan)))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    return retime_video(dst, frames, plan, fps=fps)


def parse_plan(text: str) -> list[tuple[int, int]]:
    """``"1:64,4:40,1:48,-1:48,1:64"`` -> ``[(1, 64), (4, 40), ...]``."""
    try:
        return [(int(speed), int(count)) for speed, count in
                (item.split(":") for item in text.split(","))]
    except ValueError:
        raise PlayspeedError(f"plan {text!r}: expected SPEED:FRAMES pairs like 1:64,4:40") from None


def score_detection(truth: Sequence[TrueSegment], segments: Sequence, *,
                    min_iou: float = 0.3) -> dict:
    """How well flagged ``segments`` match the re-timed ``truth``.

    Per true segment (not ``+1x``): ``iou``, the best intersection-over-union (in frames)
    with a flagged segment of its kind (``sped up`` / ``reversed``), 0 when none overlaps;
    it is ``found`` when one overlaps. ``false_alarms``: flagged segments overlapping no
    true segment of their kind. ``success``: every true segment matched with IoU >=
    ``min_iou`` (flagging the whole video does not pass) and no false alarm.
    """
    def kind(signed: int) -> str:
        return "reversed" if signed < 0 else "sped up"

    def iou(a, b) -> float:
        inter = min(a.last_frame, b.last_frame) - max(a.first_frame, b.first_frame) + 1
        union = max(a.last_frame, b.last_frame) - min(a.first_frame, b.first_frame) + 1
        return max(inter, 0) / union

    wanted = [t for t in truth if t.signed_speed != 1]
    ious = [max((iou(s, t) for s in segments if s.kind == kind(t.signed_speed)), default=0.0)
            for t in wanted]
    false_alarms = [s for s in segments if not any(
        s.kind == kind(t.signed_speed) and iou(s, t) > 0 for t in wanted)]
    found = [value > 0 for value in ious]
    return {"segments": wanted, "iou": ious, "found": found, "false_alarms": false_alarms,
            "all_found": all(found),
            "success": all(value >= min_iou for value in ious) and not false_alarms}


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; bad input (a plan, a class, a checkpoint) is one ``error:`` line and
    exit status 2, as with ``playspeed``."""
    try:
        return _main(argv)
    except PlayspeedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m playspeed.tasks.retime",
                                     description="write a synthetic video re-timed on purpose "
                                                 "(and check the speed detector on it)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="FreeFall", help="synthetic class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"))
    parser.add_argument("--plan", default=",".join(f"{s}:{n}" for s, n in DEFAULT_PLAN),
                        help="SPEED:FRAMES segments (negative speed: reversed)")
    parser.add_argument("--check", type=Path, default=None, metavar="CKPT",
                        help="run the speed detector with this pretrain checkpoint and score it")
    args = parser.parse_args(argv)
    truth = retimed_synthetic(args.out, name=args.name, plan=parse_plan(args.plan),
                              seed=args.seed, size=tuple(args.size))
    for segment in truth:
        print(f"true: frames {segment.first_frame}-{segment.last_frame} "
              f"{segment.signed_speed:+d}x")
    if args.check is None:
        return 0
    result = detect_speed(args.check, args.out, out=args.out.with_suffix(".png"), truth=truth)
    typical = result["typical"]
    print(f"typical window: {typical.speed:.2f}x, P(reversed) {typical.p_reversed:.2f}")
    for segment in result["segments"]:
        print(f"flagged: frames {segment.first_frame}-{segment.last_frame} {segment.kind} "
              f"({segment.signed_speed:+d}x)")
    score = score_detection(truth, result["segments"])
    for segment, hit, iou in zip(score["segments"], score["found"], score["iou"], strict=True):
        print(f"{'found' if hit else 'MISSED'}: {segment.signed_speed:+d}x at frames "
              f"{segment.first_frame}-{segment.last_frame} (IoU {iou:.2f})")
    print(f"{sum(score['found'])}/{len(score['found'])} found, "
          f"{len(score['false_alarms'])} false alarm(s): "
          f"{'success' if score['success'] else 'FAIL'}; plot {args.out.with_suffix('.png')}")
    return 0 if score["success"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
