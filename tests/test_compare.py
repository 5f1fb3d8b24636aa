"""The comparison at its smallest setting: equal budgets in clips seen, the table, json and
chart agree with the stages, a rerun is all cached."""

import json

import pytest

from playspeed.cli import main
from playspeed.compare import budget_overrides, run_compare
from playspeed.config import load_config, override_config
from playspeed.demo import DemoScale
from playspeed.errors import PlayspeedError

TINY_TRAINING = ["data.workers=0", "clip.len=8", "clip.size=32", "clip.resize=[40,53]",
                 "clip.test_clips=2", "model.width=0.125", "optim.batch_size=2",
                 "trainer.max_epochs=1", "trainer.progress_bar=false",
                 "trainer.precision=32-true", "trainer.memory_format=contiguous"]
TINY = DemoScale(classes=3, videos_per_class=4, frames=40, video_size=(64, 48),
                 pretrain=[*TINY_TRAINING, "pretext.speeds=[1,2,4]"], finetune=TINY_TRAINING,
                 workers=1)


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


def test_compare_writes_table_json_and_chart(compare_run):
    out, rows = compare_run
    assert list(rows) == ["scratch", "classify", "rotation", "classify_bn"]
    assert json.loads((out / "results.json").read_text())["rows"] == json.loads(
        json.dumps(rows))
    report = (out / "compare.md").read_text()
    assert "](plots/compare.png)" in report and (out / "plots" / "compare.png").stat().st_size \
        > 1000
    for line, name in zip(report.split("| model |")[1].splitlines()[2:], rows, strict=False):
        assert f"{rows[name]['video_top1']:.1f}" in line
    assert rows["classify"]["chance"] == pytest.approx(100 / 6)  # 3 speeds x 2 directions
    assert rows["rotation"]["chance"] == 25.0
    assert rows["classify_bn"]["norm"] == "bn" and rows["classify"]["norm"] == "tgn"
    # the same budget in clips seen; rotation gets it from one-clip samples
    assert len({rows[n]["clips_seen"] for n in rows if n != "scratch"}) == 1
    configs = {n: json.loads(json.dumps(
        load_config(out / f"pretrain_{n}" / "config.yaml").pretext.num_clips))
        for n in ("classify", "rotation")}
    assert configs == {"classify": 3, "rotation": 1}
    for name in rows:
        probe = json.loads((out / f"probe_{name}" / "metrics.json").read_text())
        assert rows[name]["linear_top1"] == probe["linear_top1"]
        if name != "scratch":
            pretext = json.loads((out / f"pretrain_{name}" / "metrics.json").read_text())
            assert rows[name]["pretext_acc"] == pretext["pretext_val_acc"]


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
        "vcop, rotation")
