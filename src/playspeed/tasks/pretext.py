"""Pretext training: predict each clip's playback speed and direction, or another objective.

Per-clip objectives (:mod:`playspeed.objectives`): every clip of a sample is embedded by
the shared backbone and classified on its own, one softmax head per reading, their
cross-entropies summed: ``classify`` (docs/method.md#pretext-objectives) reads speed class
and direction (``pretext.joint``: one softmax over signed speeds), ``speed`` the speed,
``direction`` the direction, ``rotation`` the quarter turns. Order objectives (``sort``,
``vcop``): the clips' features go together into :class:`ClipOrderHead`, a ``num_clips!``-way
classification of the permutation that orders the shuffled clips (by signed speed, or in
time). ``speed_contrast`` reads speed and direction as ``classify`` does and adds instance
discrimination across videos (:mod:`playspeed.tasks.contrast`), weighted by
``pretext.contrast_weight``.

Logged per step: ``train/loss`` and ``train/clips_seen`` (clips through the backbone so far,
all devices); per epoch ``train/epoch_loss``; per validation epoch on the fixed grid of
held-out videos (:class:`~playspeed.data.pretext.PretextGrid`): ``val/loss``,
``val/pretext_acc`` (a clip counts when all its readings are right; for order objectives, a
sample counts when its permutation is right), ``val/clips_seen`` and, for objectives with
several readings, ``val/<reading>_acc`` (``classify``: ``val/speed_acc``,
``val/direction_acc``). ``train/loss`` is the readings' loss alone, for every objective, so it
compares with chance (``ln K``); ``speed_contrast`` logs its instance discrimination beside it:
``train/contrast_loss``, ``train/instance_acc`` (a (clip, positive) pair counts when the
positive scores above every negative) with ``train/instance_chance``, and per validation
``val/instance_acc`` (a grid clip counts when its nearest grid clip is of its own video) with
``val/instance_chance``.

After training, :func:`playspeed.chance.pretext_check` compares the final numbers with
chance: a pretext that did not learn is reported in one warning line and in ``metrics.json``.
A run that never validated is not judged: ``metrics.json`` says so (``validated``,
``not_validated``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from playspeed.chance import chance_loss, pretext_check
from playspeed.config import Config
from playspeed.data.pretext import PlaybackSpeedClips, PretextGrid
from playspeed.data.splits import describe_holdout, holdout_split
from playspeed.io import atomic_write_text, write_json
from playspeed.model_card import write_model_card
from playspeed.models.heads import (
    ClipOrderHead,
    PerClipHead,
    SpeedDirectionHead,
    signed_speed_index,
    split_signed_speed,
)
from playspeed.objectives import OBJECTIVES
from playspeed.report import plot_confusion, plot_pretext_curves
from playspeed.rundir import locks_run_dir
from playspeed.tasks.base import VideoTask, backbone_from_config
from playspeed.tasks.contrast import ContrastReading, contrast_from_config, same_video_top1
from playspeed.tasks.data import build_source, load_records, pretext_dataset, pretext_val_dataset
from playspeed.tasks.metrics import per_class_accuracy
from playspeed.tasks.trainer import ClipDataModule, final_metrics, fit, validation_summary


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
        self.contrast = contrast_from_config(self.config, self.backbone, feature_dim=dim) \
            if self.objective.contrast else None
        self._grid_embeddings: list[tuple[torch.Tensor, torch.Tensor]] = []
        # Objectives that read speed: rows true speed class, columns predicted, over the last
        # validation.
        self.speed_confusion: np.ndarray | None = None
        self._confusion: torch.Tensor | None = None

    @property
    def joint(self) -> bool:
        """Speed and direction read by one softmax over signed speeds (``pretext.joint``)."""
        return self.objective.readings == ("speed", "direction") and self.config.pretext.joint

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        """``B x N x C x T x H x W`` -> head outputs (per-clip objectives: a dict of
        ``(B*N) x K`` logits per reading; order objectives: ``B x N!``)."""
        return self._head_outputs(self.embed(clips.flatten(0, 1)), num_clips=clips.shape[1])

    def _head_outputs(self, features: torch.Tensor, *, num_clips: int
                      ) -> dict[str, torch.Tensor] | torch.Tensor:
        """The head on backbone ``features`` ``(B*N) x D`` of ``num_clips`` clips a sample."""
        if self.objective.per_clip:
            return self.head(features)
        return self.head(features.view(-1, num_clips, features.shape[-1]))

    def loss_and_hits(self, batch: dict[str, torch.Tensor], outputs=None
                      ) -> tuple[torch.Tensor, dict]:
        """The loss and, per reading, a 0/1 tensor of hits (per clip or per sample).

        ``outputs``: the head outputs of ``batch["clips"]`` when already computed.
        """
        outputs = self(batch["clips"]) if outputs is None else outputs
        target = batch["target"]
        if not self.objective.per_clip:
            loss = F.cross_entropy(outputs, target)
            return loss, {"pretext_acc": outputs.argmax(-1) == target}
        targets = dict(zip(self.objective.readings, target.flatten(0, 1).unbind(-1),
                           strict=True))
        if self.joint:
            num_directions = len(self.config.pretext.directions)
            logits = outputs["signed_speed"]
            loss = F.cross_entropy(logits, signed_speed_index(
                targets["speed"], targets["direction"], num_directions=num_directions))
            speed, direction = split_signed_speed(logits.argmax(-1),
                                                  num_directions=num_directions)
            hits = {"speed": speed == targets["speed"],
                    "direction": direction == targets["direction"]}
        else:
            loss = sum(F.cross_entropy(outputs[name], value) for name, value in targets.items())
            hits = {name: outputs[name].argmax(-1) == value for name, value in targets.items()}
        all_right = torch.stack(list(hits.values())).all(0)
        readings = {f"{name}_acc": hit for name, hit in hits.items()} if len(hits) > 1 else {}
        return loss, {"pretext_acc": all_right, **readings}

    def _predicted_speed(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Objectives that read speed: the predicted speed class per clip (``B*N``)."""
        if self.joint:
            return split_signed_speed(outputs["signed_speed"].argmax(-1),
                                      num_directions=len(self.config.pretext.directions))[0]
        return outputs["speed"].argmax(-1)

    def training_loss(self, batch: dict[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor, dict, ContrastReading | None]:
        """What a training step optimises: ``(total, readings' loss, hits, contrast)``, the
        total adding ``speed_contrast``'s weighted instance discrimination (``contrast``: its
        reading, ``None`` for the other objectives) to the readings' loss."""
        clips = batch["clips"]
        features = self.embed(clips.flatten(0, 1))
        loss, hits = self.loss_and_hits(
            batch, self._head_outputs(features, num_clips=clips.shape[1]))
        if self.contrast is None:
            return loss, loss, hits, None
        reading = self.contrast(features, clips, batch["video_index"],
                                directions=batch["direction"], backbone=self.backbone)
        return loss + self.config.pretext.contrast_weight * reading.loss, loss, hits, reading

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, loss, hits, reading = self.training_loss(batch)
        size, clips = batch["clips"].shape[:2]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/epoch_loss", loss, on_step=False, on_epoch=True, batch_size=size,
                 sync_dist=True)
        self.log("train/pretext_acc", hits["pretext_acc"].float().mean() * 100,
                 batch_size=size)
        self.log("train/clips_seen", self.count_clips(size * clips), batch_size=size)
        if reading is not None:
            pairs = reading.hits.numel()
            self.log("train/contrast_loss", reading.loss, batch_size=size)
            self.log("train/instance_acc", reading.hits.float().mean() * 100, batch_size=pairs)
            self.log("train/instance_chance", reading.chance.mean() * 100, batch_size=pairs)
        return total

    def on_validation_epoch_start(self) -> None:
        num_speeds = len(self.objective.speeds(self.config.pretext.speeds))
        self._confusion = torch.zeros(num_speeds, num_speeds, dtype=torch.int64,
                                      device=self.device)
        self._grid_embeddings = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        clips = batch["clips"]
        features = self.embed(clips.flatten(0, 1))
        outputs = self._head_outputs(features, num_clips=clips.shape[1])
        loss, hits = self.loss_and_hits(batch, outputs)
        if self.contrast is not None:
            self._grid_embeddings.append((self.contrast.projection(features), batch[
                "video_index"].repeat_interleave(clips.shape[1])))
        size = clips.shape[0]
        self.log("val/loss", loss, batch_size=size, sync_dist=True)
        for name, hit in hits.items():
            self.log(f"val/{name}", hit.float().mean() * 100, prog_bar=name == "pretext_acc",
                     batch_size=hit.numel(), sync_dist=True)
        if self.objective.has_speed_head:
            predicted = self._predicted_speed(outputs)
            true = batch["target"].flatten(0, 1)[:, self.objective.readings.index("speed")]
            self._confusion.view(-1).index_add_(
                0, true * self._confusion.shape[0] + predicted, torch.ones_like(true))

    def on_validation_epoch_end(self) -> None:
        # Every process evaluates the whole grid (evaluation loaders are not sharded).
        if self.objective.has_speed_head:
            self.speed_confusion = self._confusion.cpu().numpy()
        if self._grid_embeddings:
            embeddings, videos = (torch.cat(parts) for parts in zip(*self._grid_embeddings,
                                                                     strict=True))
            accuracy, chance = same_video_top1(embeddings, videos)
            self._grid_embeddings = []
            if not math.isnan(accuracy):  # NaN: no held-out video has two grid clips
                self.log("val/instance_acc", accuracy, sync_dist=True)
                self.log("val/instance_chance", chance, sync_dist=True)
        self.log("val/clips_seen", float(self.clips_seen), sync_dist=True)


def pretrain_datasets(config: Config) -> tuple[PlaybackSpeedClips, PretextGrid]:
    """(train, validation) pretext datasets: a share (``data.val_fraction``) of the training
    videos is held out to measure pretext accuracy on a fixed grid of clips."""
    source = build_source(config)
    train_records, val_records = holdout_split(load_records(config, "train"),
                                               fraction=config.data.val_fraction,
                                               seed=config.seed)
    return (pretext_dataset(config, train_records, source),
            pretext_val_dataset(config, val_records, source))


@locks_run_dir
def pretrain(config: Config, out: Path, *, resume: bool = False,
             callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Pretext training on the configured dataset's training split; returns ``metrics.json``.

    Labels are never used for training. ``callbacks`` are added to the trainer's own. Besides
    the run directory's usual files, ``OUT/norm_layers.txt`` lists every norm layer's
    ``T_l`` and ``P_l``, ``plots/curves.png`` shows loss and accuracy against clips seen and,
    for ``classify``, ``plots/speed_confusion.png`` the speed confusion matrix.
    """
    L.seed_everything(config.seed, verbose=False)
    train_set, val_set = pretrain_datasets(config)
    task = PlaybackSpeedPretraining(config)
    trainer = fit(task, ClipDataModule(config, train_set, val_set), config, out,
                  monitor="val/pretext_acc", resume=resume, callbacks=callbacks)
    pretext = config.pretext
    objective = task.objective
    metrics = final_metrics(trainer, {"val/pretext_acc": "pretext_val_acc",
                                      **{f"val/{name}_acc": f"{name}_val_acc"
                                         for name in objective.readings if name != "order"},
                                      "val/loss": "val_loss", "train/epoch_loss": "train_loss",
                                      "val/instance_acc": "instance_val_acc",
                                      "val/instance_chance": "instance_val_chance"})
    if len(objective.readings) == 1 and objective.per_clip and "pretext_val_acc" in metrics:
        # One reading logs only the pretext accuracy, which is that reading's accuracy.
        metrics[f"{objective.readings[0]}_val_acc"] = metrics["pretext_val_acc"]
    chance = {f"{name}_val_chance": round(value, 4)
              for name, value in val_set.chance_levels().items()}
    metrics |= chance
    speeds = objective.speeds(pretext.speeds)
    if task.speed_confusion is not None:
        # null for a speed no held-out video is long enough for
        metrics["speed_val_acc_per_speed"] = {
            str(speed): None if np.isnan(value) else round(float(value), 4) for speed, value in
            zip(speeds, per_class_accuracy(task.speed_confusion), strict=True)}
    loss_at_chance = chance_loss(objective.num_classes(
        speeds=pretext.speeds, directions=pretext.directions, num_clips=pretext.num_clips))
    validation = validation_summary(trainer, config)
    learned, reason = None, None  # a run that never validated is not judged
    if validation["validated"]:
        learned, reason = pretext_check(
            accuracy=metrics.get("pretext_val_acc"), chance=chance["pretext_val_chance"],
            train_loss=metrics.get("train_loss"), chance_loss=loss_at_chance)
    holdout = describe_holdout(fraction=config.data.val_fraction, seed=config.seed)
    grid = (f"every label at {pretext.val_starts} evenly spaced starts per video, one clip "
            "per item" if objective.per_clip else
            f"{pretext.val_samples} fixed seeded samples per video")
    metrics |= {
        **validation,
        "pretext_learned": learned, "pretext_warning": reason,
        "clips_seen": task.clips_seen,
        "num_videos": val_set.num_videos,
        "protocol": {
            "measured_on": f"{val_set.num_videos} held-out training videos ({holdout}); "
                           f"{len(val_set)} fixed items, the same every epoch ({grid}), "
                           "centre crop",
            "objective": pretext.objective, "objective_source": objective.source,
            "accuracy": objective.accuracy_rule(),
            "chance": "accuracy of always answering the grid's most frequent label",
            "speeds": list(speeds),
            "directions": list(objective.directions(pretext.directions)),
            "num_clips": pretext.num_clips, "clip": config.clip.shape,
            **({"clip_gap": pretext.clip_gap} if objective.draw == "tuple" else {}),
            "backbone": config.model.backbone, "norm": config.model.norm,
            "input_mode": config.model.input_mode,
            "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "lr": config.optim.lr,
            "effective_batch": config.optim.batch_size * trainer.world_size,
            "train_videos": len(train_set), "excluded_short_videos": len(train_set.excluded),
        },
    }
    if trainer.is_global_zero:
        out = Path(out)
        atomic_write_text(out / "norm_layers.txt",
                          format_norm_table(task.backbone.norm_table()) + "\n")
        write_json(out / "metrics.json", metrics)
        write_model_card(out, config, metrics, backbone=task.backbone)
        plot_pretext_curves(out, out / "plots" / "curves.png", chance=metrics,
                            chance_loss=loss_at_chance)
        if task.speed_confusion is not None:
            speed_acc = metrics.get("speed_val_acc", math.nan)
            plot_confusion(task.speed_confusion, [f"{s}x" for s in speeds],
                           out / "plots" / "speed_confusion.png",
                           title=f"speed accuracy {speed_acc:.1f}% "
                                 f"(chance {chance['speed_val_chance']:.1f}%)")
        if learned is False:
            print(f"warning: {reason}", file=sys.stderr)
    return metrics


def format_norm_table(table: list[tuple[str, int, int]]) -> str:
    """The per-layer (T_l, P_l) table of the norm layers, for the log."""
    lines = ["norm layers (T_l: frames seen at the training clip length, P_l: groups)",
             f"  {'layer':<40} {'T_l':>4} {'P_l':>4}"]
    lines += [f"  {name:<40} {frames:>4} {groups:>4}" for name, frames, groups in table]
    return "\n".join(lines)
