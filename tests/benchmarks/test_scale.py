"""benchmarks/scale.py: every figure of the study at the smallest scale, the report that
regenerates from its JSON, and the plan's arithmetic."""

import json
import math

import pytest


@pytest.fixture(scope="module")
def scale(load_benchmark):
    return load_benchmark("scale")


FRAMES = 40  # per footage video: 2 s at 20 fps, enough for 8-frame clips at speed 4


@pytest.mark.slow
def test_every_figure_is_measured_and_the_report_regenerates_from_the_json(
        scale, tiny_settings, tmp_path, capsys):
    out = tmp_path / "scale.json"
    scale.main(["--size", "64", "48", "--size", "96", "54", "--seconds", "2", "--fps", "20",
                "--videos-per-codec", "1", "--rounds", "1", "--loader-samples", "4",
                "--step-rounds", "1", "--json", str(out), *tiny_settings])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())

    sources = {f"{codec} {size}" for codec in scale.CODECS for size in ("64x48", "96x54")}
    assert set(result["decode"]) == set(result["prepare"]) == set(result["sources"]) == sources
    for rates in result["decode"].values():
        assert rates["frames_per_s"] == pytest.approx(rates["videos_per_s"] * FRAMES)
    raw_frame = 128 * 171 * 3
    for stores in result["prepare"].values():
        assert set(stores) == set(scale.STORES)
        for rates in stores.values():
            assert rates["frames_per_s"] == pytest.approx(rates["videos_per_s"] * FRAMES)
        # a raw frame's bytes, plus the file's header and offset table shared by its frames
        assert raw_frame < stores["raw 128x171"]["bytes_per_frame"] < raw_frame + 20
        assert stores["jpeg 128x171"]["bytes_per_frame"] < raw_frame / 4
    for rates in result["loader"].values():
        assert rates["clips_per_s"] == pytest.approx(3 * rates["samples_per_s"])
    step = result["step"]
    assert step["device"] == "cpu" and step["batch_shape"] == [1, 3, 3, 8, 32, 32]
    assert step["clips_per_s"] > 0 and result["flops_per_clip"] > 0
    assert result["meta"]["command"].startswith("python benchmarks/scale.py --size 64 48 --size")

    assert "| train step |" in printed and "**CPU, not a GPU figure**" in printed
    assert "| decode | H.264 (libx264 .mp4), 64x48 |" in printed
    for size in ("64x48", "96x54"):  # the plan prepares the H.264 footage of each size
        assert f"| H.264 (libx264 .mp4), {size} -> jpeg 128x171 |" in printed
    scale.main(["--markdown", str(out)])
    assert capsys.readouterr().out == printed  # the docs' tables come back from the JSON


def _figures(scale, *, device="cpu"):
    """A result with round figures: H.264 prepared at 1000 frames/s into 5 kB frames, a
    worker making 100 clips/s, 200 GFLOP a clip."""
    stores = {name: {"videos_per_s": 1.0, "frames_per_s": 1000.0, "bytes_per_frame": 5e3}
              for name in scale.STORES}
    sources = {"h264 340x256": {"codec": "h264"}, "vp9 340x256": {"codec": "vp9"},
               "h264 1280x720": {"codec": "h264"}}
    return {"sources": sources,
            "prepare": {"h264 340x256": stores, "vp9 340x256": {}, "h264 1280x720": stores},
            "loader": {scale.DEFAULT_STORE: {"clips_per_s": 100.0}},
            "config": {"epochs": 10, "num_clips": 3},
            "step": {"device": device, "device_name": "GPU X", "clips_per_s": 450.0},
            "flops_per_clip": 200e9}


def test_the_plan_follows_from_the_figures_and_the_projections(scale):
    dataset = {"videos": 1000, "seconds": 10.0, "fps": 30.0}
    planned = scale.plan(_figures(scale), dataset=dataset, cores=(10,), gpu_counts=(1, 8))
    frames = 1000 * 300
    assert planned["frames"] == frames
    assert set(planned["prepare"]) == {"h264 340x256", "h264 1280x720"}  # the plan's codec
    default = planned["prepare"]["h264 1280x720"][scale.DEFAULT_STORE]
    assert default == {"bytes": frames * 5e3, "hours": {10: frames / (1000 * 10) / 3600}}
    clips = 10 * 1000 * 3  # epochs x one sample per video x clips a sample
    assert planned["training_clips"] == clips
    assert [gpu["name"] for gpu in planned["gpus"]] == [gpu.name for gpu in scale.GPUS]
    for gpu, projected in zip(planned["gpus"], scale.GPUS, strict=True):
        rate = projected.tflops * 1e12 / 200e9
        assert gpu["clips_per_s"] == pytest.approx(rate)
        assert gpu["loader_workers"] == math.ceil(rate / 100)
        assert gpu["hours"][8] == pytest.approx(clips / (rate * 8 * scale.SCALING[8]) / 3600)
        assert gpu["basis"].startswith("projected")


def test_a_gpu_measured_here_leads_the_plan(scale):
    planned = scale.plan(_figures(scale, device="cuda"))
    measured = planned["gpus"][0]
    assert (measured["name"], measured["clips_per_s"], measured["basis"]) == \
        ("GPU X", 450.0, "measured")
    assert measured["loader_workers"] == 5  # 450 clips/s over 100 a worker
