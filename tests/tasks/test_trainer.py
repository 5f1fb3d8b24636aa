"""make_trainer: last.ckpt is the latest epoch and the final step of every ending, best.ckpt
the best validation, the last epoch is always validated, a run that never validated says why,
and precision auto is the fast one of the machine."""

import time

import lightning as L
import pytest
import torch
from torch import nn

import playspeed.models.performance as performance
import playspeed.tasks.trainer as trainer_module
from playspeed.errors import PlayspeedError
from playspeed.tasks.trainer import checkpoint_dir, make_trainer, validation_summary


class _Toy(L.LightningModule):
    """Logs a fixed validation score per epoch, so 'best' is known in advance."""

    def __init__(self, scores):
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.scores = scores
        self.validated = set()

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.validated.add(self.current_epoch)
        self.log("val/acc", self.scores[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    data = torch.utils.data.TensorDataset(torch.randn(8, 2))
    return torch.utils.data.DataLoader(data, batch_size=4)


def test_last_checkpoint_follows_the_model_when_the_metric_stops_improving(tiny_config,
                                                                           tmp_path):
    config = tiny_config("pretrain", "trainer.max_epochs=4")
    trainer = make_trainer(config, tmp_path, monitor="val/acc")
    trainer.fit(_Toy(scores=[50.0, 70.0, 60.0, 60.0]), train_dataloaders=_loader(),
                val_dataloaders=_loader())
    saved = {name: torch.load(checkpoint_dir(tmp_path) / f"{name}.ckpt", weights_only=False)
             for name in ("last", "best")}
    assert saved["last"]["epoch"] == 3 and saved["last"]["global_step"] == trainer.global_step
    assert saved["best"]["epoch"] == 1
    assert sorted(p.name for p in checkpoint_dir(tmp_path).iterdir()) == ["best.ckpt",
                                                                          "last.ckpt"]


def test_validation_every_second_epoch_still_measures_the_last(tiny_config, tmp_path):
    config = tiny_config("pretrain", "trainer.max_epochs=5", "trainer.check_val_every_n_epoch=2")
    toy = _Toy(scores=[50.0] * 5)
    make_trainer(config, tmp_path, monitor="val/acc").fit(
        toy, train_dataloaders=_loader(), val_dataloaders=_loader())
    assert toy.validated == {1, 3, 4}


class _StopAtStep(L.Callback):
    """An early stop (as EarlyStopping or any callback may ask), mid-epoch."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True


class _SlowStep(L.Callback):
    """Step ``step`` takes ``seconds``: the time budget runs out there."""

    def __init__(self, step, seconds):
        self.step, self.seconds = step, seconds

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.step - 1:
            time.sleep(self.seconds)


@pytest.mark.parametrize(("ending", "overrides", "final_step", "best_step"), [
    ("max_steps", ["trainer.max_steps=5"], 5, 4),
    ("early stop", [], 5, 4),
    # Lightning validates a stop that falls in a validation epoch (the second here).
    pytest.param("max_time", ["trainer.max_time=00:00:00:02"], 3, 3,
                 marks=pytest.mark.slow),  # waits its 2 seconds
])
def test_every_ending_saves_its_final_step_and_best_only_a_validated_one(
        ending, overrides, final_step, best_step, tiny_config, tmp_path):
    # Two steps an epoch, validation after every second epoch (after step 4): each run ends
    # mid-epoch, between validations.
    config = tiny_config("pretrain", "trainer.max_epochs=10",
                         "trainer.check_val_every_n_epoch=2", *overrides)
    callbacks = {"early stop": [_StopAtStep(5)], "max_time": [_SlowStep(3, 2.1)]}.get(ending, [])
    trainer = make_trainer(config, tmp_path, monitor="val/acc", callbacks=callbacks)
    trainer.fit(_Toy(scores=[50.0] * 10), train_dataloaders=_loader(),
                val_dataloaders=_loader())
    assert trainer.global_step == final_step
    last = torch.load(checkpoint_dir(tmp_path) / "last.ckpt", weights_only=False)
    assert last["global_step"] == final_step
    best = torch.load(checkpoint_dir(tmp_path) / "best.ckpt", weights_only=False)
    assert best["global_step"] == best_step


def test_a_run_that_never_validated_says_why_and_what_to_set(tiny_config, tmp_path):
    config = tiny_config("pretrain", "trainer.max_steps=3", "trainer.check_val_every_n_epoch=2")
    trainer = make_trainer(config, tmp_path, monitor="val/acc")
    toy = _Toy(scores=[50.0] * 2)
    trainer.fit(toy, train_dataloaders=_loader(), val_dataloaders=_loader())
    summary = validation_summary(trainer, config)
    assert not toy.validated and summary["validated"] is False
    assert sorted(p.name for p in checkpoint_dir(tmp_path).iterdir()) == ["last.ckpt"]
    assert "step 3 (trainer.max_steps=3) before its first validation" in summary["not_validated"]
    assert "set trainer.check_val_every_n_epoch=1" in summary["not_validated"]

    config = tiny_config("pretrain", "trainer.max_steps=5", "trainer.check_val_every_n_epoch=2")
    trainer = make_trainer(config, tmp_path / "later", monitor="val/acc")
    trainer.fit(_Toy(scores=[50.0] * 3), train_dataloaders=_loader(), val_dataloaders=_loader())
    assert validation_summary(trainer, config) == {"validated": True, "validated_at_step": 4}


def test_bf16_without_native_support_warns_and_auto_picks_fp32(tiny_config, tmp_path,
                                                                monkeypatch):
    monkeypatch.setattr(performance, "has_fast_bf16", lambda _device_type: False)
    monkeypatch.setattr(trainer_module, "has_fast_bf16", lambda _device_type: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        make_trainer(tiny_config("pretrain", "trainer.precision=bf16-mixed"), tmp_path,
                     monitor="val/acc")
    auto = make_trainer(tiny_config("pretrain", "trainer.precision=auto"), tmp_path,
                        monitor="val/acc")
    assert auto.precision == "32-true"


def test_synchronised_batchnorm_on_cpus_is_one_error_line(tiny_config, tmp_path):
    """torch's SyncBatchNorm runs on CUDA only: on CPUs it would fail at the first step with a
    traceback; TGN synchronises on any backend."""
    config = tiny_config("pretrain", "model.norm=bn", "trainer.sync_norm=true",
                         "trainer.accelerator=cpu")
    with pytest.raises(PlayspeedError, match="sync_norm=true with model.norm=bn needs GPUs"):
        make_trainer(config, tmp_path, monitor="val/pretext_acc")
    make_trainer(tiny_config("pretrain", "model.norm=tgn", "trainer.sync_norm=true",
                             "trainer.accelerator=cpu"), tmp_path, monitor="val/pretext_acc")
