"""benchmarks/train_loop.py at the smallest scale: both sides measure one model and batch."""

import math

import pytest


@pytest.fixture(scope="module")
def train_loop(load_benchmark):
    return load_benchmark("train_loop")


@pytest.mark.slow
def test_bare_step_and_loop_measure_the_same_model_and_batch(train_loop, tiny_config, tmp_path):
    config = tiny_config("pretrain", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
                         "optim.batch_size=2")
    result = train_loop.compare(config, tmp_path / "run", bare_steps=1)
    bare, loop = result["bare"], result["loop"]
    assert bare["batch_shape"] == loop["batch_shape"] == (2, config.pretext.num_clips, 3, 8, 32,
                                                          32)
    assert bare["num_parameters"] == loop["num_parameters"] > 0
    assert bare["clips_per_second"] > 0 and loop["clips_per_second"] > 0
    assert math.isclose(result["ratio"], loop["clips_per_second"] / bare["clips_per_second"])
    assert (tmp_path / "run" / "metrics.json").is_file()  # the loop is pretrain itself
    shares = loop["shares"]
    assert 0 < shares["train steps"] < 1 and 0 < shares["validation"] < 1
    assert math.isclose(sum(shares.values()), 1.0)


def test_loop_clock_refuses_a_run_too_short_to_time(train_loop):
    with pytest.raises(RuntimeError, match="ran 1 epochs or fewer"):
        _ = train_loop.LoopClock().clips_per_second
