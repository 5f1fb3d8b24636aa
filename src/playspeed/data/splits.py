"""Held-out subsets of a training list: validation videos that share no scene with the
videos trained on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from playspeed.data.records import VideoRecord


def holdout_split(records: Sequence[VideoRecord], *, fraction: float, seed: int
                  ) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Split off ``fraction`` of the videos of each class (at least one where a class has two).

    Where a class's videos carry groups (UCF-101's ``gGG``: one scene filmed several times)
    and it has two or more, whole groups are held out, as the official test splits do:
    a held-out video whose scene was trained on measures the scene, not the action. So
    a class may give a little more than ``fraction`` (its groups' sizes), never every group.

    Returns (kept, held_out); the same seed gives the same split.
    """
    kept: list[VideoRecord] = []
    held_out: list[VideoRecord] = []
    if fraction <= 0:
        return list(records), held_out
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[VideoRecord]] = {}
    for record in records:
        by_label.setdefault(record.label, []).append(record)
    for label in sorted(by_label):
        videos = by_label[label]
        target = min(len(videos) - 1, max(1, round(fraction * len(videos))))
        groups: dict[str | None, list[VideoRecord]] = {}  # in list order
        for record in videos:
            groups.setdefault(record.group, []).append(record)
        if None in groups or len(groups) < 2:
            units = [[record] for record in videos]
        else:
            units = list(groups.values())
        taken = 0
        for index in rng.permutation(len(units)):
            unit = units[index]
            # Hold out until the class's share is reached; the last unit always trains.
            if taken < target and taken + len(unit) < len(videos):
                held_out.extend(unit)
                taken += len(unit)
            else:
                kept.extend(unit)
    return kept, held_out


def describe_holdout(*, fraction: float, seed: int) -> str:
    """How :func:`holdout_split` chose the held-out videos, for reports."""
    return f"{fraction:.0%} per class, in whole groups where the videos name them, seed {seed}"
