"""benchmarks/train_loop.py at the smallest scale: both sides measure one model and batch, and
the whole-run figure is the difference of two runs."""

import math

import pytest


@pytest.fixture(scope="module")
def train_loop(load_benchmark):
    return load_benchmark("train_loop")


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["classify", "speed_contrast"])
def test_bare_step_and_whole_runs_measure_the_same_model_and_batch(train_loop, tiny_config,
                                                                   tmp_path, objective):
    config = tiny_config("pretrain", "trainer.check_val_every_n_epoch=1", "optim.batch_size=2",
                         f"pretext.objective={objective}")
    result = train_loop.compare(config, tmp_path / "run", bare_steps=1, epochs=(1, 2))
    bare, short, long = result["bare"], result["short"]["clock"], result["long"]["clock"]
    assert bare["batch_shape"] == long.batch_shape == (2, config.pretext.num_clips, 3, 8, 32,
                                                       32)
    assert bare["num_parameters"] == long.num_parameters > 0
    added = result["whole"]
    # one more epoch (as many clips as the 1-epoch run's) and one more validation
    assert added["clips"] == long.clips - short.clips == short.clips > 0
    assert (added["epochs"], added["validations"]) == (1, 1)
    assert math.isclose(result["ratio"], added["clips_per_second"] / bare["clips_per_second"])
    assert added["seconds"] == pytest.approx(result["long"]["seconds"]
                                             - result["short"]["seconds"])
    # each run timed its steps and validations (their differences are noise at this size)
    assert short.seconds["train steps"] > 0 and long.seconds["validation"] > 0
    assert (tmp_path / "run" / "epochs2" / "metrics.json").is_file()  # the loop is pretrain
    assert result["ratios"] == [result["ratio"]]
    assert "of the bare step" in train_loop.report(result)


@pytest.mark.slow
def test_repeats_report_the_median_repeat(train_loop, tiny_config, tmp_path):
    config = tiny_config("pretrain", "optim.batch_size=2")
    result = train_loop.compare(config, tmp_path / "run", bare_steps=1, epochs=(1, 2),
                                repeats=3)
    assert len(result["ratios"]) == 3
    assert result["ratio"] == sorted(result["ratios"])[1]
    # each repeat ran its own pair of runs, each pair between two bare measurements
    assert all((tmp_path / "run" / f"repeat{r}" / "epochs2" / "metrics.json").is_file()
               for r in range(3))
    assert len(result["bare"]["after"]) == len(result["bare"]["rates"])
    assert "median of 3 repeats" in train_loop.report(result)
    with pytest.raises(ValueError, match="repeats"):
        train_loop.compare(config, tmp_path / "none", bare_steps=1, repeats=0)
