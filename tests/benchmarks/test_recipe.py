"""benchmarks/recipe.py at the smallest scale: two objectives, several fine-tuning seeds per
arm, the equal-compute scratch arm and the untrained backbone's frozen readings."""

import json
import statistics

import pytest
from omegaconf import OmegaConf


@pytest.fixture(scope="module")
def recipe(load_benchmark):
    return load_benchmark("recipe")


@pytest.mark.slow
def test_every_arm_reports_its_runs_errors_removed_and_frozen_readings(recipe, tmp_path):
    tiny = ["--classes", "3", "--videos-per-class", "4", "--frames", "40", "--size", "64", "48",
            "--override", "trainer.max_epochs=1", "--workers", "1"]
    [row] = recipe.main(["--seeds", "3", "--finetune-seeds", "3,5", "--equal-compute-seeds", "3",
                         "--objectives", "classify,speed_contrast", "--out", str(tmp_path),
                         *tiny])
    chain, arms = tmp_path / "default" / "seed3", row["arms"]
    assert list(arms) == ["scratch", "classify", "speed_contrast", "scratch_equal_compute",
                          "untrained"]
    for arm in ("scratch", "classify", "speed_contrast"):
        runs = arms[arm]["video_top1_runs"]
        # the chain's own seed keeps the single-seed directory; seed 5 gets its own
        assert [json.loads((chain / d / "test" / "metrics.json").read_text())["video_top1"]
                for d in (f"finetune_{arm}", f"finetune_{arm}_seed5")] == runs
        assert OmegaConf.load(chain / f"finetune_{arm}_seed5" / "config.yaml").seed == 5
        assert arms[arm]["video_top1"] == pytest.approx(statistics.mean(runs), abs=0.01)
    scratch = arms["scratch"]["video_top1"]
    for arm in ("classify", "speed_contrast", "scratch_equal_compute"):
        assert arms[arm]["errors_removed"] == pytest.approx(
            100 * (arms[arm]["video_top1"] - scratch) / (100 - scratch), abs=0.01)
    # equal compute: the clips of the first objective's pretraining and fine-tuning
    budget = arms["classify"]["pretext_clips"] + arms["classify"]["finetune_clips"]
    long = json.loads((chain / "finetune_scratch_equal_compute" / "metrics.json").read_text())
    batch = OmegaConf.load(chain / "finetune_scratch_equal_compute" / "config.yaml").optim
    assert budget <= long["clips_seen"] < budget + batch.batch_size
    assert arms["speed_contrast"]["pretext_clips"] == arms["classify"]["pretext_clips"]
    for arm in ("classify", "speed_contrast", "untrained"):
        probe = json.loads((chain / f"probe_{arm}" / "metrics.json").read_text())
        assert arms[arm]["linear_top1"] == probe["linear_top1"]
        assert arms[arm]["retrieval_chance"] > 0 and arms[arm]["probe_chance"] == pytest.approx(
            100 / 3)
    table, summary = (tmp_path / "table.md").read_text(), (tmp_path / "summary.md").read_text()
    runs = arms["scratch"]["video_top1_runs"]
    assert f"({runs[0]:.1f}, {runs[1]:.1f})" in table
    assert "untrained backbone (frozen readings)" in summary and "| speed_contrast | 1 |" in summary
