"""The demo at its smallest setting: every stage runs, the report and metrics agree, and an
interrupted training stage resumes from its step."""

import csv
import json
import signal

import pytest

from playspeed.demo import ROW_NAMES, DemoScale, pretrain_row, run_demo
from playspeed.errors import PlayspeedError
from playspeed.signals import Preempted
from playspeed.tasks.pretext import pretrain

TINY_TRAINING = ["data.workers=0", "clip.len=8", "clip.size=32", "clip.resize=[40,53]",
                 "clip.test_clips=2", "model.width=0.125", "optim.batch_size=4",
                 "trainer.max_epochs=1", "trainer.progress_bar=false"]
TINY = DemoScale(classes=3, videos_per_class=4, frames=40, video_size=(64, 48),
                 pretrain=[*TINY_TRAINING, "pretext.speeds=[1,2,4]"], finetune=TINY_TRAINING,
                 workers=1)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rows = run_demo(out, scale=TINY, log=lambda line: None)
    return out, rows


def test_demo_report_and_metrics_agree(demo_run):
    out, rows = demo_run
    assert list(rows) == ["chance", "scratch", "bn", "tgn"]
    stored = json.loads((out / "results.json").read_text())
    assert stored["rows"] == json.loads(json.dumps(rows))
    report = (out / "report.md").read_text()
    # 3 classes with as many test videos each: the constant guess and a random neighbour
    # are right a third of the time.
    chance = rows["chance"]
    assert chance["video_top1"] == chance["knn_top1"] == pytest.approx(100 / 3)
    assert chance["retrieval_top1"] == pytest.approx(100 / 3, abs=5)
    assert chance["retrieval_top1"] < chance["retrieval_top5"] <= 100
    assert f"| {ROW_NAMES['chance']} | - | - | {chance['video_top1']:.1f} |" in report
    for name in ("scratch", "bn", "tgn"):
        test = json.loads((out / f"finetune_{name}" / "test" / "metrics.json").read_text())
        retrieval = json.loads((out / f"retrieval_{name}" / "metrics.json").read_text())
        probe = json.loads((out / f"probe_{name}" / "metrics.json").read_text())
        assert rows[name]["video_top1"] == test["video_top1"]
        assert rows[name]["retrieval_top1"] == retrieval["top1"]
        assert rows[name]["retrieval_top5"] == retrieval["top5"]
        assert rows[name]["knn_top1"] == probe["knn_top1"]
        assert f"{test['video_top1']:.1f}" in report
        if name != "scratch":
            pretext = json.loads((out / f"pretrain_{name}" / "metrics.json").read_text())
            assert rows[name]["pretext_acc"] == pretext["pretext_val_acc"]
            assert rows[name]["chance"] == pretext["pretext_val_chance"] == pytest.approx(
                100 / 6, abs=1e-3)  # 3 speeds x 2 directions; metrics.json keeps 4 decimals
            # A pretext that did not learn (one tiny epoch: expected) is flagged in the report.
            assert stored["pretext_warnings"].get(name) == pretext["pretext_warning"]
            if not pretext["pretext_learned"]:
                assert f"**{ROW_NAMES[name]}**: {pretext['pretext_warning']}" in report
    for image in ("plots/pretrain_curves.png", "plots/finetune_curves.png"):
        assert (out / image).stat().st_size > 1000
        assert f"]({image})" in report
    for link in ("retrieval_", "test/plots/confusion.png"):
        assert link in report


def test_demo_refuses_a_run_directory_made_with_other_settings(demo_run):
    out, _ = demo_run
    with pytest.raises(PlayspeedError, match=r"other settings \(seed differ\)"):
        run_demo(out, scale=TINY, seed=1, log=lambda line: None)
    assert json.loads((out / "demo.json").read_text())["seed"] == 0


def test_demo_rerun_resumes_from_its_cache(demo_run):
    out, rows = demo_run
    lines = []
    assert run_demo(out, scale=TINY, log=lines.append) == rows
    assert lines and all(line.startswith("[cached]") for line in lines)


def test_an_interrupted_training_stage_resumes_from_its_step(tiny_config, tmp_path,
                                                             signal_at_step, assert_same_run):
    """The stage that demo and compare share: stopped mid-epoch, run again, it resumes."""
    config = tiny_config("pretrain")  # 2 epochs of 2 steps
    pretrain(config, tmp_path / "straight")
    signal_at_step(2, signal.SIGINT)  # during step 3: the stop comes there (epoch 2, batch 1)
    with pytest.raises(Preempted):
        pretrain_row(tmp_path, "tgn", "TGN", config, log=lambda line: None)
    signal_at_step(None)
    lines = []
    metrics, ckpt = pretrain_row(tmp_path, "tgn", "TGN", config, log=lines.append)
    assert lines[0] == "[run] pretrain (TGN)" and metrics["clips_seen"] == 4 * 3 * 3
    # The second start trained only the last step (logged at step index 3).
    with open(tmp_path / "pretrain_tgn" / "logs" / "csv" / "version_1" / "metrics.csv") as f:
        assert [int(row["step"]) for row in csv.DictReader(f) if row["train/loss"]] == [3]
    assert_same_run(tmp_path / "straight", tmp_path / "pretrain_tgn")
