"""The comparison at its smallest setting: equal budgets in clips seen, the table, json and
chart agree with the stages, a rerun is all cached."""

import json

import pytest

from playspeed import compare
from playspeed.cli import main
from playspeed.compare import budget_overrides, run_compare, run_compare_seeds, summarize_seeds
from playspeed.config import load_config, override_config
from playspeed.errors import PlayspeedError
from playspeed.stages import Scale, prepare_synthetic

TINY_BATCH = 2
TINY_TRAINING = ["data.workers=0", "clip.len=8", "clip.size=32", "clip.resize=[40,53]",
                 "clip.test_clips=2", "model.width=0.125", "optim.batch_size=2",
                 "trainer.max_epochs=1", "trainer.progress_bar=false",
                 "trainer.precision=32-true", "trainer.memory_format=contiguous"]
# 40-frame videos fit 8-frame clips at 1x-4x but not at 8x: the validation grid leaves 8x out.
TINY = Scale(classes=3, videos_per_class=4, frames=40, video_size=(64, 48),
             pretrain=[*TINY_TRAINING, "pretext.speeds=[1,2,4,8]"], finetune=TINY_TRAINING,
             workers=1)


def test_row_labels_name_objective_and_norm():
    assert compare.row_label(compare.row_name("speed_contrast", "tgn")) == "speed_contrast (TGN)"
    assert compare.row_label(compare.row_name("speed_contrast", "bn")) == "speed_contrast (BN)"
    assert compare.row_label(compare.row_name("classify", "bn")) == "classify (BN)"
    assert compare.row_label("scratch") == compare.FIXED_ROWS["scratch"]


def test_budget_is_equal_in_clips_seen():
    reference = load_config("pretrain/synthetic_cpu", ["trainer.max_epochs=20",
                                                       "optim.batch_size=8"])
    one_clip = override_config(reference, ["pretext.objective=rotation", "pretext.num_clips=1"])
    same = budget_overrides(reference, reference, train_videos=160, reference_videos=160)
    assert same == ["optim.batch_size=8", "trainer.max_steps=400", "trainer.max_epochs=20",
                    "optim.warmup_epochs=1.0"]
    # one clip a sample: 3x the samples per step, the same steps, so 3x fewer steps an epoch
    tuned = override_config(one_clip, budget_overrides(one_clip, reference, train_videos=160,
                                                       reference_videos=160))
    assert tuned.optim.batch_size * tuned.pretext.num_clips == 8 * 3
    assert tuned.trainer.max_steps == 400 and tuned.trainer.max_epochs == 67
    assert tuned.optim.warmup_epochs * (160 // 24) == pytest.approx(20)
    with pytest.raises(PlayspeedError, match="do not split into samples of 5 clips"):
        budget_overrides(override_config(reference, ["pretext.num_clips=5"]), reference,
                         train_videos=160, reference_videos=160)


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    rows = run_compare(out, objectives=["rotation"], scale=TINY, log=lambda line: None)
    return out, rows


@pytest.mark.slow
def test_compare_writes_table_json_and_chart(compare_run):
    out, rows = compare_run
    assert list(rows) == ["chance", "untrained", "scratch", "scratch_equal_compute", "classify",
                          "rotation", "classify_bn"]
    # the untrained backbone is read frozen, scratch and its equal-compute run fine-tuned
    assert set(rows["untrained"]) == {"retrieval_top1", "retrieval_top5", "knn_top1",
                                      "linear_top1"}
    assert "video_top1" in rows["scratch"] and "retrieval_top1" not in rows["scratch"]
    equal = json.loads((out / "finetune_scratch_equal_compute" / "metrics.json").read_text())
    scratch = json.loads((out / "finetune_scratch" / "metrics.json").read_text())
    budget = rows["classify"]["clips_seen"] + scratch["clips_seen"]
    assert budget <= equal["clips_seen"] < budget + 2 * TINY_BATCH
    for name in ("scratch_equal_compute", "classify", "rotation"):
        scratch_top1 = rows["scratch"]["video_top1"]
        assert rows[name]["errors_removed"] == pytest.approx(
            100 * (rows[name]["video_top1"] - scratch_top1) / (100 - scratch_top1))
    assert json.loads((out / "results.json").read_text())["rows"] == json.loads(
        json.dumps(rows))
    report = (out / "compare.md").read_text()
    assert "](plots/compare.png)" in report and (out / "plots" / "compare.png").stat().st_size \
        > 1000
    for line, name in zip(report.split("| model |")[1].splitlines()[2:], rows, strict=False):
        if "video_top1" in rows[name]:
            assert f"{rows[name]['video_top1']:.1f}" in line
    # The chance shown is the one the "did not learn" verdict used: the grid's most frequent
    # label, 1 of the 6 signed speeds that fit (not 1 of the 8 configured).
    for name in ("classify", "classify_bn", "rotation"):
        pretext = json.loads((out / f"pretrain_{name}" / "metrics.json").read_text())
        assert rows[name]["chance"] == pretext["pretext_val_chance"]
    assert rows["classify"]["chance"] == pytest.approx(100 / 6, abs=1e-3)
    assert rows["rotation"]["chance"] == 25.0
    assert f"| classify (TGN) | {rows['classify']['pretext_acc']:.1f} | 16.7 |" in report
    assert rows["classify_bn"]["norm"] == "bn" and rows["classify"]["norm"] == "tgn"
    # learning nothing: a constant guess of the balanced test split, a random ranking
    chance = rows["chance"]
    assert chance["video_top1"] == chance["knn_top1"] == chance["linear_top1"] == \
        pytest.approx(100 / 3)
    assert chance["video_top1"] <= chance["retrieval_top1"] < chance["retrieval_top5"] <= 100
    assert "| chance (learns nothing) | - | - | 33.3 |" in report
    # the same budget in clips seen; rotation gets it from one-clip samples
    assert len({rows[n]["clips_seen"] for n in rows if "objective" in rows[n]}) == 1
    configs = {n: json.loads(json.dumps(
        load_config(out / f"pretrain_{n}" / "config.yaml").pretext.num_clips))
        for n in ("classify", "rotation")}
    assert configs == {"classify": 3, "rotation": 1}
    for name in set(rows) - {"chance", "scratch", "scratch_equal_compute"}:
        probe = json.loads((out / f"probe_{name if name != 'untrained' else 'scratch'}"
                                  / "metrics.json").read_text())
        assert rows[name]["linear_top1"] == probe["linear_top1"]
        if name != "untrained":
            pretext = json.loads((out / f"pretrain_{name}" / "metrics.json").read_text())
            assert rows[name]["pretext_acc"] == pretext["pretext_val_acc"]


@pytest.mark.slow
def test_compare_rerun_is_all_cached_and_other_settings_are_refused(compare_run):
    out, rows = compare_run
    lines = []
    assert run_compare(out, objectives=["rotation"], scale=TINY, log=lines.append) == rows
    assert lines and all(line.startswith("[cached]") for line in lines)
    with pytest.raises(PlayspeedError, match=r"other settings \(objectives differ\)"):
        run_compare(out, objectives=["vcop"], scale=TINY, log=lambda line: None)


def test_compare_command_names_an_unknown_objective(tmp_path, capsys):
    assert main(["compare", "--objectives", "speed,order", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --objectives: unknown order; choose from classify, speed, direction, sort, "
        "vcop, rotation, speed_contrast")


def test_compare_command_names_an_unknown_variant_before_running(tmp_path, capsys):
    assert main(["compare", "--variant", "studio", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: variant 'studio': expected one of")
    assert not (tmp_path / "run").exists()


def test_a_variant_keeps_its_own_video_lengths(tmp_path, monkeypatch):
    class Stop(Exception):
        pass

    seen = {}

    def stop_at_data(out, scale, seed, log, *, variant):
        seen.update(scale=scale, variant=variant)
        raise Stop

    monkeypatch.setattr(compare, "prepare_synthetic", stop_at_data)
    with pytest.raises(Stop):
        run_compare(tmp_path, variant="field", scale=TINY, log=lambda line: None)
    assert seen["variant"] == "field" and seen["scale"].frames is None
    assert seen["scale"].video_size == TINY.video_size
    monkeypatch.undo()
    prepare_synthetic(tmp_path, seen["scale"], 0, lambda line: None, variant="field")
    synth = json.loads((tmp_path / "data" / "synth.json").read_text())
    assert synth["variant"] == "field" and synth["options"]["frames"] == [90, 150]
    assert synth["size"] == list(TINY.video_size) and len(synth["classes"]) == 3


def _rows(video_top1: float, warning: str | None = None) -> dict:
    readings = {"video_top1": video_top1, "clip_top1": 1.0, "retrieval_top1": 2.0,
                "retrieval_top5": 3.0, "knn_top1": 4.0, "linear_top1": 5.0}
    return {"scratch": dict(readings),
            "classify": {"objective": "classify", "norm": "tgn", "pretext_acc": 50.0,
                         "pretext_warning": warning, "chance": 12.5, "clips_seen": 480,
                         **readings}}


def test_summarize_seeds_gives_mean_and_sample_std_of_readings_only():
    means, stds = summarize_seeds({0: _rows(10.0), 1: _rows(20.0), 2: _rows(30.0)})
    assert means["classify"]["video_top1"] == pytest.approx(20.0)
    assert stds["classify"]["video_top1"] == pytest.approx(10.0)  # ddof=1
    assert stds["scratch"]["knn_top1"] == 0.0
    assert means["classify"]["chance"] == 12.5 and means["classify"]["norm"] == "tgn"
    assert "chance" not in stds["classify"] and "clips_seen" not in stds["classify"]
    assert "pretext_warning" not in means["classify"] and "pretext_warning" not in stds["classify"]


def test_several_seeds_run_in_their_own_directories_and_are_summarised(tmp_path, monkeypatch):
    calls = []

    def fake_run_compare(out, *, seed, variant, **kwargs):
        calls.append((out, seed, variant))
        return _rows(10.0 * (seed + 1), warning="the pretext did not learn" if seed else None)

    monkeypatch.setattr(compare, "run_compare", fake_run_compare)
    results = run_compare_seeds(tmp_path, seeds=[0, 2, 0], variant="field", quick=True,
                                log=lambda line: None)
    assert calls == [(tmp_path / "seed0", 0, "field"), (tmp_path / "seed2", 2, "field")]
    assert list(results) == [0, 2]
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["seeds"] == [0, 2] and summary["variant"] == "field"
    assert summary["rows"]["classify"]["video_top1"] == pytest.approx(20.0)
    assert summary["per_seed"]["2"]["classify"]["video_top1"] == 30.0
    report = (tmp_path / "compare.md").read_text()
    assert "synthetic set `field`, seeds 0, 2" in report and "(seed2/compare.md)" in report
    assert "| classify (TGN) | 50.0 ± 0.0 | 12.5 | 20.0 ± 14.1 |" in report
    assert "**The pretext did not learn**" in report and "- **classify (TGN)**: seed 2\n" in report
    assert (tmp_path / "plots" / "compare.png").stat().st_size > 1000
