"""The stages API's own rules (the chains built from it are tested by test_demo, test_compare
and tests/benchmarks/test_recipe.py)."""

import json

import pytest

from playspeed.errors import PlayspeedError
from playspeed.stages import claim_run_dir, downstream_readings, equal_compute_overrides


def test_equal_compute_covers_the_clips_in_whole_steps():
    # 1000 clips in batches of 8: 125 steps; 30 videos make 3 steps an epoch (last dropped)
    assert equal_compute_overrides(clips=1000, batch_size=8, train_videos=30) == [
        "trainer.max_steps=125", "trainer.max_epochs=42"]
    # fewer videos than a batch: one step of them all an epoch
    assert equal_compute_overrides(clips=1001, batch_size=8, train_videos=4) == [
        "trainer.max_steps=251", "trainer.max_epochs=251"]


def test_downstream_readings_carry_the_chance_each_command_stored():
    results = {"test": {"video_top1": 50.0, "clip_top1": 40.0, "chance_top1": 10.0},
               "retrieval": {"top1": 30.0, "top5": 60.0, "chance_top1": 9.0,
                             "chance_top5": 40.0},
               "probe": {"knn_top1": 20.0, "linear_top1": 25.0, "chance_top1": 11.0}}
    row, chance = downstream_readings(results)
    assert row == {"video_top1": 50.0, "clip_top1": 40.0, "retrieval_top1": 30.0,
                   "retrieval_top5": 60.0, "knn_top1": 20.0, "linear_top1": 25.0}
    assert chance == {"video_top1": 10.0, "clip_top1": 10.0, "retrieval_top1": 9.0,
                      "retrieval_top5": 40.0, "knn_top1": 11.0, "linear_top1": 11.0}


def test_a_run_directory_is_claimed_by_its_settings(tmp_path):
    claim_run_dir(tmp_path / "run", {"seed": 0, "sizes": (1, 2)}, kind="demo")
    claim_run_dir(tmp_path / "run", {"seed": 0, "sizes": [1, 2]}, kind="demo")  # the same
    assert json.loads((tmp_path / "run" / "demo.json").read_text())["sizes"] == [1, 2]
    with pytest.raises(PlayspeedError, match=r"other settings \(seed differ\)"):
        claim_run_dir(tmp_path / "run", {"seed": 1, "sizes": [1, 2]}, kind="demo")
