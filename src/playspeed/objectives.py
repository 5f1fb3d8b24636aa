"""The pretext objectives (docs/method.md#pretext-objectives): what each draws and predicts.

One :class:`Objective` per value of ``pretext.objective``, the one place that says which
clips an objective draws (playback speeds and directions, rotation, clip tuples), which
readings its head gives (each with its number of classes) and the chance level of its
pretext accuracy. Config validation, the samplers, the heads, the metrics and the
comparison all ask here, so a new objective is one entry. Pure Python: no torch.

Readings: ``speed`` (index in the speeds), ``direction`` (index in the directions),
``rotation`` (quarter turns counter-clockwise, 0-3) are per clip; ``order`` (the index in
``itertools.permutations(range(num_clips))`` of the permutation that puts the sample's
clips in order) is per sample. Pretext accuracy counts a clip (per-clip objectives) when
all its readings are right, a sample (order objectives) when its permutation is right; its
chance level is measured on the validation items themselves
(:meth:`playspeed.data.pretext.PretextGrid.chance_levels`), since short videos leave labels
out.

An objective with ``contrast`` adds instance discrimination across videos to its readings:
clips of one video are positives, clips of other videos negatives
(:mod:`playspeed.tasks.contrast`); its pretext accuracy and chance stay its readings'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NUM_ROTATIONS = 4  # 0, 90, 180, 270 degrees (3DRotNet)


@dataclass(frozen=True)
class Objective:
    """One pretext objective.

    Args:
        name: the value of ``pretext.objective``.
        predicts: what the network predicts, one line.
        source: where the objective was published.
        readings: the head's outputs, in target order (see the module docstring).
        draw: how clips are drawn: ``"distinct"`` (distinct signed speeds per sample, each
            clip its own start), ``"independent"`` (each clip's label drawn on its own,
            so any ``num_clips`` works) or ``"tuple"`` (consecutive clips from one start,
            ``pretext.clip_gap`` frames apart, shuffled).
        forward_only: draws forward clips only (whatever ``pretext.directions`` says).
        normal_speed_only: draws frame skip 1 only (whatever ``pretext.speeds`` says).
        order_by: order objectives: ``"signed_speed"`` or ``"time"``.
        published_clips: clips per sample in the objective's published setting, where it
            differs from the playback-speed paper's 3 (``playspeed compare`` uses it).
        contrast: adds an instance-discrimination loss (the clips of a sample are positives
            of each other, so a sample needs at least 2 clips).
    """

    name: str
    predicts: str
    source: str
    readings: tuple[str, ...]
    draw: str
    forward_only: bool = False
    normal_speed_only: bool = False
    order_by: str | None = None
    published_clips: int | None = None
    contrast: bool = False

    @property
    def per_clip(self) -> bool:
        """One target per clip (``N x len(readings)``), else one per sample (a scalar)."""
        return "order" not in self.readings

    @property
    def has_speed_head(self) -> bool:
        """Reads each clip's playback speed (what ``playspeed speed`` needs)."""
        return "speed" in self.readings

    def speeds(self, speeds: Sequence[int]) -> tuple[int, ...]:
        """The frame skips this objective draws, given ``pretext.speeds``."""
        return (1,) if self.normal_speed_only else tuple(int(s) for s in speeds)

    def directions(self, directions: Sequence[int]) -> tuple[int, ...]:
        """The directions this objective draws, given ``pretext.directions``."""
        return (1,) if self.forward_only else tuple(int(d) for d in directions)

    def num_classes(self, *, speeds: Sequence[int], directions: Sequence[int],
                    num_clips: int) -> dict[str, int]:
        """Classes per reading, e.g. ``{"speed": 4, "direction": 2}``."""
        counts = {"speed": len(self.speeds(speeds)),
                  "direction": len(self.directions(directions)),
                  "rotation": NUM_ROTATIONS, "order": math.factorial(num_clips)}
        return {reading: counts[reading] for reading in self.readings}

    def max_clips(self, *, speeds: Sequence[int], directions: Sequence[int]) -> int | None:
        """Most clips a sample can hold (distinct draws: the signed speeds); None: no limit."""
        if self.draw != "distinct":
            return None
        return len(self.speeds(speeds)) * len(self.directions(directions))

    def accuracy_rule(self) -> str:
        """What counts as a hit, for the ``protocol`` entry of ``metrics.json``."""
        if not self.per_clip:
            return "a sample counts when its whole clip order is right"
        verb = "is" if len(self.readings) == 1 else "are both"
        return f"a clip counts when its {' and '.join(self.readings)} {verb} right"


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("classify", "each clip's speed class and direction",
              "Cho et al., IEEE Access 2021 (the published playback-speed method)",
              ("speed", "direction"), "distinct"),
    Objective("speed", "each forward clip's speed class",
              "Cho et al. 2021, the without-direction ablation (close to Pace, Wang et al., "
              "ECCV 2020)", ("speed",), "distinct", forward_only=True),
    Objective("direction", "forward or reversed, at normal speed",
              "arrow of time, Wei et al., CVPR 2018", ("direction",), "independent",
              normal_speed_only=True, published_clips=1),
    Objective("sort", "the permutation that orders the clips by signed speed",
              "Cho et al., arXiv 2003.02692v1", ("order",), "distinct", order_by="signed_speed"),
    Objective("vcop", "the permutation that puts consecutive clips back in temporal order",
              "VCOP, Xu et al., CVPR 2019", ("order",), "tuple", forward_only=True,
              normal_speed_only=True, order_by="time"),
    Objective("rotation", "each clip's rotation (0, 90, 180, 270 degrees)",
              "3DRotNet, Jing et al., arXiv 1811.11387 (2018)", ("rotation",), "independent",
              forward_only=True, normal_speed_only=True, published_clips=1),
    Objective("speed_contrast", "each clip's speed class and direction, and which clips come "
              "from the same video", "classify plus instance discrimination across videos with "
              "a momentum queue: RSPNet (Chen et al., AAAI 2021) and MoCo (He et al., CVPR 2020)",
              ("speed", "direction"), "distinct", contrast=True),
)}


def get_objective(name: str) -> Objective:
    """The objective called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}") \
            from None
