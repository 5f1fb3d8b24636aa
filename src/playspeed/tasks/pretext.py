"""Pretext training: predict each clip's playback speed and direction, or another objective.

Per-clip objectives (:mod:`playspeed.objectives`): every clip of a sample is embedded by
the shared backbone and classified on its own, one softmax head per reading, their
cross-entropies summed: ``classify`` (METHOD.md §3) reads speed class and direction
(``pretext.joint``: one softmax over signed speeds), ``speed`` the speed, ``direction`` the
direction, ``rotation`` the quarter turns. Order objectives (``sort``, ``vcop``): the clips'
features go together into :class:`ClipOrderHead`, a ``num_clips!``-way classification of the
permutation that orders the shuffled clips (by signed speed, or in time).

Logged per step: ``train/loss``; per validation epoch on held-out videos: ``val/loss``,
``val/pretext_acc`` (a clip counts when all its readings are right; for order objectives, a
sample counts when its permutation is right) and, for objectives with several readings,
``val/<reading>_acc`` (``classify``: ``val/speed_acc``, ``val/direction_acc``).
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
from playspeed.models.heads import ClipOrderHead, PerClipHead, SpeedDirectionHead
from playspeed.objectives import OBJECTIVES
from playspeed.tasks.base import VideoTask, backbone_from_config
from playspeed.tasks.data import build_source, holdout_split, load_records, pretext_dataset
from playspeed.tasks.trainer import ClipDataModule, final_metrics, fit


class PlaybackSpeedPretraining(VideoTask):
    """Batch: ``clips`` ``B x N x C x T x H x W`` and ``target`` (per-clip objectives:
    ``B x N x R``, the class of each reading; order objectives: ``B``, the permutation index)."""

    task_name = "pretrain"

    def __init__(self, config, **extra: Any) -> None:
        super().__init__(config, **extra)
        pretext = self.config.pretext
        self.objective = OBJECTIVES[pretext.objective]
        self.backbone = backbone_from_config(self.config)
        dim = self.backbone.feature_dim
        if not self.objective.per_clip:
            self.head = ClipOrderHead(dim, num_clips=pretext.num_clips)
        elif self.joint:
            self.head = SpeedDirectionHead(dim, num_speeds=len(pretext.speeds),
                                           num_directions=len(pretext.directions), joint=True)
        else:
            self.head = PerClipHead(dim, classes=self.objective.num_classes(
                speeds=pretext.speeds, directions=pretext.directions,
                num_clips=pretext.num_clips))

    @property
    def joint(self) -> bool:
        """``classify`` with one softmax over signed speeds (``pretext.joint``)."""
        return self.objective.name == "classify" and self.config.pretext.joint

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        """``B x N x C x T x H x W`` -> head outputs (per-clip objectives: a dict of
        ``(B*N) x K`` logits per reading; order objectives: ``B x N!``)."""
        batch, num_clips = clips.shape[:2]
        features = self.embed(clips.flatten(0, 1))
        if self.objective.per_clip:
            return self.head(features)
        return self.head(features.view(batch, num_clips, -1))

    def _loss_and_hits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The loss and, per reading, a 0/1 tensor of hits (per clip or per sample)."""
        outputs = self(batch["clips"])
        target = batch["target"]
        if not self.objective.per_clip:
            loss = F.cross_entropy(outputs, target)
            return loss, {"pretext_acc": outputs.argmax(-1) == target}
        targets = dict(zip(self.objective.readings, target.flatten(0, 1).unbind(-1),
                           strict=True))
        if self.joint:
            num_directions = len(self.config.pretext.directions)
            logits = outputs["signed_speed"]
            loss = F.cross_entropy(logits, targets["speed"] * num_directions
                                   + targets["direction"])
            predicted = logits.argmax(-1)
            hits = {"speed": predicted // num_directions == targets["speed"],
                    "direction": predicted % num_directions == targets["direction"]}
        else:
            loss = sum(F.cross_entropy(outputs[name], value) for name, value in targets.items())
            hits = {name: outputs[name].argmax(-1) == value for name, value in targets.items()}
        all_right = torch.stack(list(hits.values())).all(0)
        readings = {f"{name}_acc": hit for name, hit in hits.items()} if len(hits) > 1 else {}
        return loss, {"pretext_acc": all_right, **readings}

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
    objective = task.objective
    metrics = {
        **final_metrics(trainer, {"val/pretext_acc": "pretext_val_acc",
                                  **{f"val/{name}_acc": f"{name}_val_acc"
                                     for name in objective.readings if name != "order"},
                                  "val/loss": "val_loss"}),
        "num_videos": len(val_set),
        "protocol": {
            "measured_on": f"{len(val_set)} held-out training videos "
                           f"({config.data.val_fraction:.0%} per class, seed {config.seed})",
            "objective": pretext.objective, "objective_source": objective.source,
            "accuracy": objective.accuracy_rule(),
            "speeds": list(objective.speeds(pretext.speeds)),
            "directions": list(objective.directions(pretext.directions)),
            "num_clips": pretext.num_clips, "clip": config.clip.shape,
            **({"clip_gap": pretext.clip_gap} if objective.draw == "tuple" else {}),
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
