"""make_trainer: last.ckpt is the latest epoch, best.ckpt the best one, the last epoch is
always validated, and precision auto is the fast one of the machine."""

import lightning as L
import pytest
import torch
from torch import nn

import playspeed.models.performance as performance
import playspeed.tasks.trainer as trainer_module
from playspeed.tasks.trainer import checkpoint_dir, make_trainer


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
