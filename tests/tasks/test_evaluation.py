"""Testing metrics: computed right from known outputs, files written, no video dropped."""

import csv
import json

import numpy as np
import pytest
import torch

from playspeed.errors import PlayspeedError
from playspeed.tasks.data import load_records
from playspeed.tasks.evaluation import evaluate, write_per_class_table
from playspeed.tasks.finetune import ActionRecognition, finetune
from playspeed.tasks.pretext import pretrain
from playspeed.tasks.registry import load_task


@pytest.fixture(scope="module")
def finetuned(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune")
    finetune(tiny_config("finetune", "trainer.max_epochs=1", "clip.test_clips=4"), out)
    return out / "checkpoints" / "last.ckpt"


def test_evaluate_with_a_model_of_known_outputs(finetuned, tmp_path, monkeypatch):
    # Every clip says "class 1": accuracy is the share of class-1 test videos, whatever the
    # batch size (5 does not divide the test split: the last partial batch must count).
    def always_class_1(self, clips):
        return torch.tensor([[0.0, 5.0, 0.0]]).expand(clips.shape[0], -1)

    monkeypatch.setattr(ActionRecognition, "forward", always_class_1)
    metrics = evaluate(finetuned, out=tmp_path, num_clips=3, overrides=["optim.batch_size=2"])
    records = load_records(load_task(finetuned).config, "test")
    expected = 100.0 * sum(r.label == 1 for r in records) / len(records)
    assert metrics["video_top1"] == metrics["clip_top1"] == pytest.approx(expected)
    assert metrics["num_videos"] == len(records) == 3
    # Chance: always answering the most frequent test class (one video of each here).
    assert metrics["chance_top1"] == pytest.approx(100 / 3)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert {"clip_top1", "video_top1", "chance_top1", "num_videos", "protocol"} <= stored.keys()
    assert "3 evenly spaced clips" in stored["protocol"]["video_top1"]
    lines = (tmp_path / "per_class.csv").read_text().splitlines()
    assert lines[0] == "class,videos,video_top1" and len(lines) == 4
    assert (tmp_path / "plots" / "confusion.png").stat().st_size > 1000


def test_per_class_table_quotes_class_names_with_commas(tmp_path):
    # Something-Something's classes read like "Pushing something so that it falls, ...".
    names = ['Pushing something, so it falls', 'Saying "hi"', "plain"]
    matrix = np.array([[2, 1, 0], [0, 0, 0], [0, 1, 3]])
    write_per_class_table(tmp_path / "per_class.csv", names, matrix)
    with open(tmp_path / "per_class.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == names
    assert [row["videos"] for row in rows] == ["3", "0", "4"]
    # A class without test videos has no accuracy (nan), not 0.
    assert [float(row["video_top1"]) for row in rows] == pytest.approx(
        [66.67, float("nan"), 75.0], nan_ok=True)


def test_evaluate_rejects_a_pretrain_checkpoint(tiny_config, tmp_path):
    pretrain(tiny_config("pretrain", "trainer.max_epochs=1"), tmp_path)
    with pytest.raises(PlayspeedError, match="a pretrain checkpoint; this command needs a "
                                             "finetune one"):
        evaluate(tmp_path / "checkpoints" / "last.ckpt", out=tmp_path / "test")


def test_test_command_takes_its_clips_from_the_config(finetuned, tmp_path, capsys):
    """Without --clips, video accuracy uses the checkpoint's clip.test_clips (4 here, not the
    option's former default of 10); an override or --clips changes it."""
    from playspeed.cli import main

    for argv, clips in (([], 4), (["clip.test_clips=3"], 3), (["--clips", "2"], 2)):
        out = tmp_path / str(clips)
        assert main(["test", "--ckpt", str(finetuned), "--out", str(out), *argv]) == 0
        protocol = json.loads((out / "metrics.json").read_text())["protocol"]
        assert protocol["video_top1"].startswith(f"{clips} evenly spaced clips")
        assert protocol["input_mode"] == "frame_diff_unit"  # the model's, named
