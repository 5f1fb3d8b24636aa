"""Kinetics- and SSv2-format datasets through every stage a user runs, with the shipped
configs at tiny sizes: prepare, pretrain, finetune, test and retrieve."""

import json

import pytest

from playspeed.cli import main

# The shipped configs name several GPUs; the tests run on one CPU process.
ONE_CPU = ("trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_epochs=1")


@pytest.mark.slow
@pytest.mark.parametrize("dataset, finetune_config", [
    ("kinetics", "finetune/kinetics400_r3d_18"), ("ssv2", "finetune/ssv2_r3d_18")])
def test_every_stage_runs_on_the_dataset(dataset, finetune_config, kinetics_root, ssv2_root,
                                         tiny_settings, tmp_path, capsys):
    data = {"kinetics": kinetics_root, "ssv2": ssv2_root}[dataset]
    store = tmp_path / "store"
    assert main(["prepare", "--dataset", dataset, "--videos", str(data["videos"]),
                 "--splits", str(data["annotations"]), "--out", str(store),
                 "--resize", "40", "53"]) == 0
    assert "2 of them listed videos missing" in capsys.readouterr().out
    overrides = [f"data.videos={data['videos']}", f"data.splits={data['annotations']}",
                 f"data.store={store}", *tiny_settings, *ONE_CPU]

    assert main(["pretrain", "--config", "pretrain/kinetics400_r3d_18", "--out",
                 str(tmp_path / "pre"), f"data.dataset={dataset}", *overrides]) == 0
    pretrained = tmp_path / "pre" / "checkpoints" / "last.ckpt"
    metrics = json.loads((tmp_path / "pre" / "metrics.json").read_text())
    # Of each class's 4 training videos on disk (the missing one skipped), one held out.
    assert metrics["num_videos"] == 3

    assert main(["finetune", "--config", finetune_config, "--init", str(pretrained),
                 "--out", str(tmp_path / "ft"), *overrides]) == 0
    finetuned = tmp_path / "ft" / "checkpoints" / "last.ckpt"
    assert main(["test", "--ckpt", str(finetuned), "--clips", "2",
                 "--out", str(tmp_path / "test")]) == 0
    tested = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert tested["num_videos"] == data["test"]  # the validation videos on disk
    assert tested["chance_top1"] == pytest.approx(100 / 3)  # 3 classes, 2 videos each
    assert main(["retrieve", "--ckpt", str(pretrained), "--topk", "1,5",
                 "--out", str(tmp_path / "retrieve")]) == 0
    retrieved = json.loads((tmp_path / "retrieve" / "metrics.json").read_text())
    assert retrieved["num_videos"] == data["test"] and 0 <= retrieved["top5"] <= 100


def test_videos_the_store_lacks_are_skipped_with_a_warning(kinetics_root, tmp_path):
    """A Kinetics download holds corrupt files: prepare reports them, training goes on."""
    from playspeed.config import load_config
    from playspeed.data.prepare import prepare_store, records_to_prepare
    from playspeed.tasks.data import load_records

    records, _ = records_to_prepare("kinetics", videos=kinetics_root["videos"],
                                    splits=kinetics_root["annotations"])
    unreadable = records[0]  # as if prepare had failed to decode it
    prepare_store(records[1:], tmp_path / "store", resize=(40, 53), progress=False)
    config = load_config("finetune/kinetics400_r3d_18", [
        f"data.videos={kinetics_root['videos']}", f"data.splits={kinetics_root['annotations']}",
        f"data.store={tmp_path / 'store'}"])
    subset = "train" if unreadable.key.startswith("train/") else "test"
    with pytest.warns(UserWarning, match=f"1 {subset} videos are not in the store"):
        loaded = load_records(config, subset)
    assert unreadable.key not in {record.key for record in loaded}
    assert len(loaded) == kinetics_root[subset] - 1 and len(loaded.classes) == 3
    assert loaded.missing[-1].startswith(f"{unreadable.path}: not in the store")
    other = "test" if subset == "train" else "train"
    assert len(load_records(config, other)) == kinetics_root[other]  # nothing lacking
