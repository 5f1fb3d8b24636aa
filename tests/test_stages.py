"""The stages API's own rules (the chains built from it are tested by test_demo, test_compare
and tests/benchmarks/test_recipe.py): an interrupted training stage resumes from its step."""

import csv
import json
import signal

import pytest

from playspeed.errors import PlayspeedError
from playspeed.signals import Preempted
from playspeed.stages import (
    claim_run_dir,
    downstream_readings,
    equal_compute_overrides,
    pretrain_stage,
)
from playspeed.tasks.pretext import pretrain


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


@pytest.mark.slow
def test_an_interrupted_training_stage_resumes_from_its_step(tiny_config, tmp_path,
                                                             signal_at_step, assert_same_run):
    """The stage that demo, compare and the recipe share: stopped mid-epoch, run again, it
    resumes."""
    config = tiny_config("pretrain")  # 2 epochs of 2 steps
    pretrain(config, tmp_path / "straight")
    signal_at_step(2, signal.SIGINT)  # during step 3: the stop comes there (epoch 2, batch 1)
    with pytest.raises(Preempted):
        pretrain_stage(tmp_path / "pretrain_tgn", "TGN", config, log=lambda line: None)
    signal_at_step(None)
    lines = []
    metrics, ckpt = pretrain_stage(tmp_path / "pretrain_tgn", "TGN", config, log=lines.append)
    assert lines[0] == "[run] pretrain (TGN)" and metrics["clips_seen"] == 4 * 3 * 3
    # The second start trained only the last step (logged at step index 3).
    with open(tmp_path / "pretrain_tgn" / "logs" / "csv" / "version_1" / "metrics.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f) if row["train/loss"]] == [3]
    assert_same_run(tmp_path / "straight", tmp_path / "pretrain_tgn")
