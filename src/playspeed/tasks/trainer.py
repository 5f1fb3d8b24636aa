"""The Lightning Trainer of every training command, and what the run directory holds.

Run directory layout (docs/runs.md#the-run-directory)::

    OUT/config.yaml            the resolved config
    OUT/metrics.json           final metrics, with the protocol that produced them
    OUT/checkpoints/{last,best}.ckpt   written atomically by Lightning (temp file + rename)
    OUT/.lock                  names the run writing here (playspeed.rundir)
    OUT/logs/csv/version_N/metrics.csv    one version per start (a resume adds one)
    OUT/logs/tensorboard/version_N/       TensorBoard event files, likewise
    OUT/plots/                 PNG figures

``last.ckpt`` holds the model at each validation and, however the run ends (``max_epochs``,
``max_steps`` mid-epoch, ``trainer.max_time``, an early stop, a stop signal), its final step;
``best.ckpt`` the best validation only. Whether the run validated, and at which step, goes in
``metrics.json`` (:func:`validation_summary`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from playspeed.config import Config, save_config
from playspeed.errors import PlayspeedError
from playspeed.models.performance import has_fast_bf16, resolve_precision
from playspeed.tasks.checkpoints import read_checkpoint
from playspeed.tasks.data import make_loader
from playspeed.tasks.preemption import StopOnSignal


def checkpoint_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def last_checkpoint(out: Path) -> Path:
    return checkpoint_dir(out) / "last.ckpt"


def make_trainer(config: Config, out: Path, *, monitor: str,
                 callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """A Trainer that logs to CSV and TensorBoard and keeps ``last`` and ``best`` checkpoints.

    ``monitor`` is the validation metric (higher is better) that picks ``best``; ``callbacks``
    are added to the trainer's own.
    Devices, nodes and strategy pass through from ``config.trainer`` unchanged, so DDP across
    GPUs and nodes is Lightning's own; precision ``auto`` is resolved for the machine.
    """
    trainer_config = config.trainer
    precision = training_precision(config)
    device_type = training_device_type(config)
    if trainer_config.sync_norm and config.model.norm == "bn" and device_type == "cpu":
        raise PlayspeedError("trainer.sync_norm=true with model.norm=bn needs GPUs (torch's "
                             "SyncBatchNorm runs on CUDA only); on CPUs synchronise TGN "
                             "(model.norm=tgn) or set trainer.sync_norm=false")
    if precision.startswith("bf16") and not has_fast_bf16(device_type):
        warnings.warn(f"trainer.precision={precision}: this {device_type.upper()} has no native "
                      "bf16, which makes training many times slower than 32-true; "
                      "trainer.precision=auto picks the fast one", stacklevel=2)
    best = ModelCheckpoint(dirpath=checkpoint_dir(out), filename="best", monitor=monitor,
                           mode="max", save_top_k=1, auto_insert_metric_name=False,
                           enable_version_counter=False)
    # StopOnSignal first: the step it stops before must reach no other callback (no
    # learning rate logged for it).
    callbacks = [StopOnSignal(last_checkpoint(out)), LastCheckpoint(out), best,
                 LearningRateMonitor(logging_interval="step"), ValidateLastEpoch(),
                 ValidationRecord(), *callbacks]
    if trainer_config.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    loggers = [
        # A resumed run logs to a new version: Lightning would overwrite the CSV otherwise.
        CSVLogger(save_dir=Path(out) / "logs", name="csv"),
        TensorBoardLogger(save_dir=Path(out) / "logs", name="tensorboard",
                          default_hp_metric=False),
    ]
    try:
        return L.Trainer(
            default_root_dir=out,
            max_epochs=trainer_config.max_epochs,
            max_steps=trainer_config.max_steps,
            max_time=trainer_config.max_time,
            limit_train_batches=_fraction_or_count(trainer_config.limit_train_batches),
            limit_val_batches=_fraction_or_count(trainer_config.limit_val_batches),
            accelerator=trainer_config.accelerator,
            devices=trainer_config.devices,
            num_nodes=trainer_config.num_nodes,
            strategy=trainer_config.strategy,
            precision=precision,
            gradient_clip_val=trainer_config.gradient_clip_val,
            sync_batchnorm=trainer_config.sync_norm,  # BatchNorm layers; TGN: VideoTask.setup
            check_val_every_n_epoch=trainer_config.check_val_every_n_epoch,
            log_every_n_steps=trainer_config.log_every_n_steps,
            enable_progress_bar=trainer_config.progress_bar,
            enable_model_summary=False,
            callbacks=callbacks,
            logger=loggers,
            use_distributed_sampler=False,  # EpochSampler shards and seeds itself
            num_sanity_val_steps=0,
        )
    except (ValueError, RuntimeError, TypeError) as err:  # Lightning's own checks of the flags
        raise PlayspeedError(f"trainer config: {err}") from err


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt``: the model at each validation (each epoch's end when it validates every
    epoch) and, whatever ends the run, at its final step.

    Lightning's checkpoint without a monitor waits for a validation when
    ``check_val_every_n_epoch > 1``, and its ``save_last`` writes at the end only when no
    checkpoint was written before, so a run ending between validations (at ``max_steps``,
    ``max_time`` or an early stop) would keep an older step or nothing. (It is not
    ``save_last`` of ``best``: that one writes only when a top-k checkpoint is written, so
    ``last`` would lag behind the model while the metric does not improve.)
    """

    def __init__(self, out: Path) -> None:
        super().__init__(dirpath=checkpoint_dir(out), filename=last_checkpoint(out).stem,
                         monitor=None, save_top_k=1, enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_end(trainer, module)
        if not self._should_skip_saving_checkpoint(trainer):  # this step is not saved yet
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))


class ValidateLastEpoch(L.Callback):
    """With ``check_val_every_n_epoch > 1``, validate the last epoch too, so that the final
    metrics always describe the final model (Lightning alone skips it unless the epoch count
    is a multiple). Also when a run resumes inside its last epoch, whose start it skips."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.on_train_epoch_start(trainer, module)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.max_epochs is not None and trainer.current_epoch == trainer.max_epochs - 1:
            trainer.check_val_every_n_epoch = 1


class ValidationRecord(L.Callback):
    """The step and the ``val/*`` metrics of the last validation, kept in checkpoints, so a
    resumed run knows them even if it ends before validating again."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.metrics: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.step = trainer.global_step
        self.metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                        if name.startswith("val/")}

    def state_dict(self) -> dict:
        return {"step": self.step, "metrics": dict(self.metrics)}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.metrics = state.get("step"), dict(state.get("metrics", {}))


def training_device_type(config: Config) -> str:
    """"cuda" or "cpu": where ``trainer.accelerator`` puts the model on this machine."""
    accelerator = config.trainer.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def training_precision(config: Config) -> str:
    """Lightning's precision flag for this config on this machine (``auto`` resolved)."""
    return resolve_precision(config.trainer.precision, device_type=training_device_type(config))


def _fraction_or_count(value: float) -> float | int:
    """Lightning reads 1.0 as 'all' and 1 as 'one batch': whole numbers above 1 are counts."""
    return int(value) if value > 1 and float(value).is_integer() else value


class ClipDataModule(L.LightningDataModule):
    """Train and validation loaders, sharded by the trainer's world size once it is known.

    Checkpoints keep the training loader's position in its epoch (its ``state_dict``), and a
    resumed run's loader starts there. Lightning keeps it with its loop state too, but when
    ``configure_optimizers`` asks for ``estimated_stepping_batches`` it makes the loader
    before reading the checkpoint and never hands the state back (Lightning issue #20550);
    a data module's state is read first.
    """

    def __init__(self, config: Config, train_set, val_set) -> None:
        super().__init__()
        self.config, self.train_set, self.val_set = config, train_set, val_set
        self._train_loader = None
        self._train_position: dict | None = None  # from a checkpoint, for the next loader

    def train_dataloader(self):
        loader = make_loader(self.train_set, self.config, train=True,
                             num_replicas=self.trainer.world_size, rank=self.trainer.global_rank)
        if self._train_position is not None:
            loader.load_state_dict(self._train_position)
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict:
        return {} if self._train_loader is None else {"train": self._train_loader.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._train_position = state.get("train")

    def val_dataloader(self):
        return make_loader(self.val_set, self.config, train=False)


def fit(task: L.LightningModule, data: ClipDataModule, config: Config, out: Path, *,
        monitor: str, resume: bool, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """Train ``task``, resuming from ``OUT/checkpoints/last.ckpt`` when asked."""
    out = Path(out)
    resume_from = None
    if resume:
        resume_from = last_checkpoint(out)
        if not resume_from.is_file():
            raise PlayspeedError(f"{resume_from}: nothing to resume (no last checkpoint)")
        # Checked by our own safe loader first, for a one-line error on a foreign or
        # tampered file; Lightning then loads it with weights_only=True as well.
        read_checkpoint(resume_from, expect=task.task_name)
    trainer = make_trainer(config, out, monitor=monitor, callbacks=callbacks)
    if trainer.is_global_zero:
        save_config(config, out / "config.yaml")
    trainer.fit(task, datamodule=data, ckpt_path=resume_from, weights_only=True)
    return trainer


def final_metrics(trainer: L.Trainer, names: dict[str, str]) -> dict[str, float]:
    """The last validation's metrics (before a resume too) and the other values logged last,
    renamed (``{"val/acc": "acc"}``), as plain floats."""
    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    logged |= _validation_record(trainer).metrics
    return {new: round(logged[old], 4) for old, new in names.items() if old in logged}


def validation_summary(trainer: L.Trainer, config: Config) -> dict[str, bool | int | str]:
    """For ``metrics.json``: ``validated`` and the step the validation metrics were measured
    at (``validated_at_step``; the final step is ``trainer.global_step``), or, for a run that
    never validated, why and what to set (``not_validated``)."""
    record = _validation_record(trainer)
    if record.step is not None:
        return {"validated": True, "validated_at_step": record.step}
    return {"validated": False, "not_validated": _why_not_validated(trainer, config)}


def _validation_record(trainer: L.Trainer) -> ValidationRecord:
    return next(c for c in trainer.callbacks if isinstance(c, ValidationRecord))


def _why_not_validated(trainer: L.Trainer, config: Config) -> str:
    settings = config.trainer
    if settings.limit_val_batches == 0:
        return "validation is off (trainer.limit_val_batches=0)"
    if config.data.val_fraction <= 0:
        return "no videos are held out to validate on (data.val_fraction=0)"
    if 0 <= settings.max_steps <= trainer.global_step:
        ending = f"trainer.max_steps={settings.max_steps}"
    elif settings.max_time is not None:
        ending = f"trainer.max_time={settings.max_time}"
    else:
        ending = "an early stop"
    every = settings.check_val_every_n_epoch
    return (f"the run ended at step {trainer.global_step} ({ending}) before its first "
            f"validation, which comes after epoch {every} "
            f"(trainer.check_val_every_n_epoch={every}); set "
            "trainer.check_val_every_n_epoch=1 or train longer to measure it")
