"""holdout_split: held-out videos per class, whole scenes where the names give them."""

from pathlib import Path

import pytest

from playspeed.data.datasets import VideoRecord
from playspeed.data.splits import holdout_split


def _records(groups_per_class: int, videos_per_group: int, *, named: bool = True):
    return [VideoRecord(path=Path(f"v_C{label}_g{g:02d}_c{c:02d}.avi"), label=label,
                        key=f"C{label}/v_C{label}_g{g:02d}_c{c:02d}.avi",
                        group=str(g) if named else None)
            for label in range(2) for g in range(1, groups_per_class + 1)
            for c in range(1, videos_per_group + 1)]


def _scenes(records) -> set[tuple[int, str | None]]:
    return {(r.label, r.group) for r in records}


def test_holdout_keeps_scenes_whole():
    records = _records(groups_per_class=6, videos_per_group=3)  # 18 videos per class
    kept, held = holdout_split(records, fraction=0.1, seed=0)
    assert sorted(kept + held, key=str) == sorted(records, key=str)
    assert not _scenes(kept) & _scenes(held)
    # 10% of 18 is 2 videos: one whole group of 3 per class, and every class still trains.
    assert [sum(r.label == label for r in held) for label in (0, 1)] == [3, 3]
    assert holdout_split(records, fraction=0.1, seed=0) == (kept, held)
    assert _scenes(holdout_split(records, fraction=0.1, seed=1)[1]) != _scenes(held)


def test_holdout_without_groups_takes_single_videos():
    for records in (_records(6, 3, named=False), _records(1, 18)):  # no names; one scene only
        kept, held = holdout_split(records, fraction=0.1, seed=0)
        assert [sum(r.label == label for r in held) for label in (0, 1)] == [2, 2]
        assert len(kept) == 32


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_holdout_never_takes_every_scene_of_a_class(fraction):
    kept, held = holdout_split(_records(2, 3), fraction=fraction, seed=0)
    assert {r.label for r in kept} == {0, 1} and len(held) == 6
