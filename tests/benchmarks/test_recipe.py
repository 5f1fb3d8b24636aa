"""benchmarks/recipe.py at the smallest scale: several fine-tuning seeds per arm."""

import json
import statistics

import pytest
from omegaconf import OmegaConf


@pytest.fixture(scope="module")
def recipe(load_benchmark):
    return load_benchmark("recipe")


@pytest.mark.slow
def test_each_arm_reports_the_mean_of_its_fine_tuning_seeds(recipe, tmp_path):
    tiny = ["--classes", "3", "--videos-per-class", "4", "--frames", "40", "--size", "64", "48",
            "--override", "trainer.max_epochs=1", "--workers", "1"]
    [row] = recipe.main(["--seeds", "3", "--finetune-seeds", "3,5", "--out", str(tmp_path),
                         *tiny])
    chain = tmp_path / "default" / "seed3"
    for arm in ("pretrained", "scratch"):
        runs = row[f"video_top1_{arm}_runs"]
        # the chain's own seed keeps the single-seed directory; seed 5 gets its own
        assert [json.loads((chain / d / "test" / "metrics.json").read_text())["video_top1"]
                for d in (f"finetune_{arm}", f"finetune_{arm}_seed5")] == runs
        assert OmegaConf.load(chain / f"finetune_{arm}_seed5" / "config.yaml").seed == 5
        assert row[f"video_top1_{arm}"] == pytest.approx(statistics.mean(runs), abs=0.01)
    table = (tmp_path / "table.md").read_text()
    runs = row["video_top1_scratch_runs"]
    assert f"({runs[0]:.1f}, {runs[1]:.1f})" in table
