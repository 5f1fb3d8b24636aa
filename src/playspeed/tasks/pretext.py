"""Pretext training: predict each clip's playback speed and direction (or sort the clips).

``classify`` (METHOD.md §3): every clip of a sample is embedded by the shared backbone and
classified on its own: speed class and direction, two softmax heads whose cross-entropies
are summed (``pretext.joint``: one softmax over signed speeds). ``sort``: the clips' features
go together into :class:`ClipOrderHead`, a ``num_clips!``-way classification of the
permutation that orders the shuffled clips by signed speed.

Logged per step: ``train/loss``; per validation epoch on held-out videos: ``val/loss``,
``val/pretext_acc`` (a clip counts when speed and direction are both right; for ``sort``, a
sample counts when its permutation is right) and, for ``classify``, ``val/speed_acc`` and
``val/direction_acc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from playspeed.config import Config
from playspeed.data import PlaybackSpeedClips
from playspeed.io import atomic_write_text, write_json
from playspeed.models.heads import ClipOrderHead, SpeedDirectionHead
from playspeed.tasks.base import VideoTask, backbone_from_config
from playspeed.tasks.data import build_source, holdout_split, load_records, pretext_dataset
from playspeed.tasks.trainer import ClipDataModule, final_metrics, fit


class PlaybackSpeedPretraining(VideoTask):
    """Batch: ``clips`` ``B x N x C x T x H x W`` and ``target`` (``B x N x 2`` for classify:
    speed index, direction index; ``B`` for sort: permutation index)."""

    task_name = "pretrain"

    def __init__(self, config, **extra: Any) -> None:
        super().__init__(config, **extra)
        pretext = self.config.pretext
        self.backbone = backbone_from_config(self.config)
        if pretext.objective == "classify":
            self.head = SpeedDirectionHead(
                self.backbone.feature_dim, num_speeds=len(pretext.speeds),
                num_directions=len(pretext.directions), joint=pretext.joint)
        else:
            self.head = ClipOrderHead(self.backbone.feature_dim, num_clips=pretext.num_clips)

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        """``B x N x C x T x H x W`` -> head outputs (per clip for classify: ``(B*N) x K``)."""
        batch, num_clips = clips.shape[:2]
        features = self.embed(clips.flatten(0, 1))
        if self.config.pretext.objective == "classify":
            return self.head(features)
        return self.head(features.view(batch, num_clips, -1))

    def _loss_and_hits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The loss and, per reading, a 0/1 tensor of hits (per clip or per sample)."""
        outputs = self(batch["clips"])
        target = batch["target"]
        if self.config.pretext.objective == "sort":
            loss = F.cross_entropy(outputs, target)
            return loss, {"pretext_acc": outputs.argmax(-1) == target}
        speed, direction = target.flatten(0, 1).unbind(-1)
        if self.config.pretext.joint:
            joint = speed * len(self.config.pretext.directions) + direction
            logits = outputs["signed_speed"]
            loss = F.cross_entropy(logits, joint)
            predicted = logits.argmax(-1)
            num_directions = len(self.config.pretext.directions)
            speed_hit = predicted // num_directions == speed
            direction_hit = predicted % num_directions == direction
        else:
            loss = (F.cross_entropy(outputs["speed"], speed)
                    + F.cross_entropy(outputs["direction"], direction))
            speed_hit = outputs["speed"].argmax(-1) == speed
            direction_hit = outputs["direction"].argmax(-1) == direction
        return loss, {"pretext_acc": speed_hit & direction_hit, "speed_acc": speed_hit,
                      "direction_acc": direction_hit}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, hits = self._loss_and_hits(batch)
        size = batch["clips"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/pretext_acc", hits["pretext_acc"].float().mean() * 100,
                 batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, hits = self._loss_and_hits(batch)
        size = batch["clips"].shape[0]
        self.log("val/loss", loss, batch_size=size, sync_dist=True)
        for name, hit in hits.items():
            self.log(f"val/{name}", hit.float().mean() * 100, prog_bar=name == "pretext_acc",
                     batch_size=hit.numel(), sync_dist=True)


def pretrain_datasets(config: Config) -> tuple[PlaybackSpeedClips, PlaybackSpeedClips]:
    """(train, validation) pretext datasets: a share (``data.val_fraction``) of the training
    videos is held out to measure pretext accuracy."""
    source = build_source(config)
    train_records, val_records = holdout_split(load_records(config, "train"),
                                               fraction=config.data.val_fraction,
                                               seed=config.seed)
    return (pretext_dataset(config, train_records, source, train=True),
            pretext_dataset(config, val_records, source, train=False))


def pretrain(config: Config, out: Path, *, resume: bool = False,
             callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Pretext training on the configured dataset's training split; returns ``metrics.json``.

    Labels are never used for training. ``callbacks`` are added to the trainer's own. Besides
    the run directory's usual files, ``OUT/norm_layers.txt`` lists every norm layer's
    ``T_l`` and ``P_l``.
    """
    L.seed_everything(config.seed, verbose=False)
    train_set, val_set = pretrain_datasets(config)
    task = PlaybackSpeedPretraining(config)
    trainer = fit(task, ClipDataModule(config, train_set, val_set), config, out,
                  monitor="val/pretext_acc", resume=resume, callbacks=callbacks)
    pretext = config.pretext
    metrics = {
        **final_metrics(trainer, {"val/pretext_acc": "pretext_val_acc",
                                  "val/speed_acc": "speed_val_acc",
                                  "val/direction_acc": "direction_val_acc",
                                  "val/loss": "val_loss"}),
        "num_videos": len(val_set),
        "protocol": {
            "measured_on": f"{len(val_set)} held-out training videos "
                           f"({config.data.val_fraction:.0%} per class, seed {config.seed})",
            "objective": pretext.objective,
            "accuracy": ("a clip counts when its speed and direction are both right"
                         if pretext.objective == "classify"
                         else "a sample counts when its whole clip order is right"),
            "speeds": list(pretext.speeds), "directions": list(pretext.directions),
            "num_clips": pretext.num_clips, "clip": config.clip.shape,
            "backbone": config.model.backbone, "norm": config.model.norm,
            "epochs": trainer.current_epoch, "lr": config.optim.lr,
            "effective_batch": config.optim.batch_size * trainer.world_size,
            "train_videos": len(train_set), "excluded_short_videos": len(train_set.excluded),
        },
    }
    if trainer.is_global_zero:
        atomic_write_text(Path(out) / "norm_layers.txt",
                          format_norm_table(task.backbone.norm_table()) + "\n")
        write_json(Path(out) / "metrics.json", metrics)
    return metrics


def format_norm_table(table: list[tuple[str, int, int]]) -> str:
    """The per-layer (T_l, P_l) table of the norm layers, for the log."""
    lines = ["norm layers (T_l: frames seen at the training clip length, P_l: groups)",
             f"  {'layer':<40} {'T_l':>4} {'P_l':>4}"]
    lines += [f"  {name:<40} {frames:>4} {groups:>4}" for name, frames, groups in table]
    return "\n".join(lines)
