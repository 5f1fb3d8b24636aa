"""The console: dependencies' notices hidden by the CLI, warnings about the input kept, and
a run that never validated says so without judging what it did not measure."""

import json
import logging
import warnings

import pytest
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from playspeed.cli import main
from playspeed.console import quiet_dependencies
from playspeed.data import PlaybackSpeedClips

_LEAFSPEC = ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, "
             "TreeSpec) and treespec.is_leaf()` instead.")


def test_notices_are_hidden_and_warnings_kept(caplog, coded_videos):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_dependencies()
        records, source = coded_videos([200, 5])
        rank_zero_info("GPU available: False, used: False")
        rank_zero_warn("The dataloader does not have many workers")
        warnings.warn(_LEAFSPEC, FutureWarning, stacklevel=1)
        # A warning about the user's videos: one is too short for the pretext.
        PlaybackSpeedClips(records, source, clip_len=8, speeds=(1, 2, 4), num_clips=2)
    messages = [str(w.message) for w in caught]
    assert "GPU available" not in caplog.text
    assert any("does not have many workers" in m for m in messages)
    assert any("1 of 2 videos have fewer than" in m for m in messages)
    assert not any("LeafSpec" in m for m in messages)


@pytest.mark.parametrize("debug", [False, True])
def test_pretrain_console_shows_only_the_project(debug, tiny_overrides, tmp_path, capfd,
                                                 caplog, recwarn):
    argv = ["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(tmp_path / "run"),
            *tiny_overrides, "trainer.max_epochs=1", "trainer.progress_bar=true"]
    assert main(["--debug", *argv] if debug else argv) == 0
    captured = capfd.readouterr()
    # Under pytest, log records and warnings reach caplog and recwarn instead of stderr.
    output = "\n".join([captured.out, captured.err, caplog.text,
                        *(str(w.message) for w in recwarn)])
    assert "pretext accuracy" in output and "Epoch 0" in output  # result and progress bar
    for notice in ("Tip:", "GPU available", "was configured so 100%",
                   "to estimate number of stepping batches", "LeafSpec"):
        assert (notice in output) == debug, notice


def test_a_run_that_never_validated_says_so_in_one_line(tiny_overrides, tmp_path, capfd,
                                                        caplog, recwarn):
    run = tmp_path / "run"
    assert main(["pretrain", "--config", "pretrain/synthetic_cpu", "--out", str(run),
                 *tiny_overrides, "trainer.max_steps=1",
                 "trainer.check_val_every_n_epoch=2"]) == 0
    captured = capfd.readouterr()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validated"] is False and metrics["pretext_learned"] is None
    assert captured.out.splitlines() == [
        f"not validated: {metrics['not_validated']}; after 9 clips; run in {run}"]
    assert "trainer.check_val_every_n_epoch=1" in metrics["not_validated"]
    output = "\n".join([captured.out, captured.err, caplog.text,
                        *(str(w.message) for w in recwarn)])
    for claim in ("did not learn", "nan%", "warning", "No artists with labels"):
        assert claim not in output, claim
