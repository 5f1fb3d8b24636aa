"""Fine-tuning for action recognition: a (pretrained) backbone with a new linear classifier.

Choices, each a config value:
- ``optim.backbone_lr_scale``: the backbone learns at ``lr x scale``, the new head at ``lr``
  (1.0, the VCOP/PRP protocol, trains both alike; 0 freezes the backbone weights).
- ``finetune.norm_stats``: ``update`` (default) re-estimates BN/TGN running statistics on the
  target data as training goes; ``frozen`` keeps the pretrained statistics (norm layers stay
  in eval mode; their affine parameters still learn).
- ``finetune.still_mix``: blend a still frame of another training clip into each training
  clip (weight up to this), so the classifier cannot tell classes by their scenes
  (:func:`~playspeed.data.transforms.mix_still_frames`); 0 (off) by default.
- ``finetune.freeze_stages``: the first N backbone stages keep their pretrained weights;
  0 (none) by default. From scratch every stage trains.
- ``finetune.label_fraction``: train on this share of each class's training videos (whole
  scenes where the names give them), for label-efficiency studies; 1 (all) by default.

Validation (for ``best.ckpt``) is clip accuracy on held-out training videos, whole UCF-101
groups (scenes) where the names give them (:func:`~playspeed.data.splits.holdout_split`); the
test split is only read by ``playspeed test``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from playspeed.chance import constant_guess_accuracy
from playspeed.config import Config, override_config
from playspeed.data.splits import holdout_split
from playspeed.data.transforms import mix_still_frames
from playspeed.errors import PlayspeedError
from playspeed.io import write_json
from playspeed.models.backbone import Backbone
from playspeed.models.heads import LinearClassifier
from playspeed.rundir import locks_run_dir
from playspeed.tasks.base import VideoTask, backbone_from_config, decay_groups
from playspeed.tasks.checkpoints import load_backbone_weights, load_weights
from playspeed.tasks.data import build_source, classification_dataset, load_records
from playspeed.tasks.trainer import ClipDataModule, final_metrics, fit, validation_summary

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm)


class ActionRecognition(VideoTask):
    """Batch: ``clips`` ``B x C x T x H x W`` and ``label`` ``B``."""

    task_name = "finetune"

    def __init__(self, config, *, classes: list[str], pretrain_clip_len: int | None = None,
                 **extra: Any) -> None:
        super().__init__(config, classes=list(classes), pretrain_clip_len=pretrain_clip_len,
                         **extra)
        self.classes = list(classes)
        # TGN group counts are fixed by the clip length the backbone was pretrained at.
        self.backbone = backbone_from_config(self.config, clip_len=pretrain_clip_len)
        # Checked from scratch too, where nothing is frozen: a config that names more stages
        # than the backbone has fails alike whichever arm runs first.
        check_stage_count(self.backbone, self.config.finetune.freeze_stages)
        freeze_leading_stages(self.backbone, self.frozen_stages)
        self.classifier = LinearClassifier(self.backbone.feature_dim, len(self.classes),
                                           dropout=self.config.model.dropout)

    @property
    def frozen_stages(self) -> int:
        """Leading backbone stages that keep their pretrained weights; none from scratch,
        where frozen random weights would only weaken the baseline."""
        return self.config.finetune.freeze_stages if self.config.finetune.init else 0

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> class logits ``B x K``."""
        return self.classifier(self.embed(clips))

    def on_train_epoch_start(self) -> None:
        # Lightning never calls train() itself (a new module starts in training mode), so
        # the frozen-statistics rule below is applied here ...
        self.train()

    def on_train_start(self) -> None:
        # ... and here, for a run resumed mid-epoch, which skips the epoch's start.
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.config.finetune.norm_stats == "frozen":
            for module in self.backbone.modules():
                if isinstance(module, _NORM_TYPES) or hasattr(module, "running_mean"):
                    module.eval()
        return self

    def parameter_groups(self) -> list[dict[str, Any]]:
        optim = self.config.optim
        return decay_groups(self.named_parameters(), lr=optim.lr,
                             weight_decay=optim.weight_decay,
                             prefix_lr={"backbone.": optim.lr * optim.backbone_lr_scale})

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        clips = mix_still_frames(batch["clips"], max_weight=self.config.finetune.still_mix)
        logits = self(clips)
        loss = F.cross_entropy(logits, batch["label"])
        size = logits.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/acc", (logits.argmax(-1) == batch["label"]).float().mean() * 100,
                 batch_size=size)
        self.log("train/clips_seen", self.count_clips(size), batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Batches of test-mode items (``B x N x C x T x H x W``): logits averaged over clips."""
        clips = batch["clips"]
        logits = self(clips.flatten(0, 1)).view(*clips.shape[:2], -1).mean(1)
        size = logits.shape[0]
        self.log("val/loss", F.cross_entropy(logits, batch["label"]), batch_size=size,
                 sync_dist=True)
        self.log("val/acc", (logits.argmax(-1) == batch["label"]).float().mean() * 100,
                 prog_bar=True, batch_size=size, sync_dist=True)


@locks_run_dir
def finetune(config: Config, out: Path, *, init: Path | None = None,
             resume: bool = False) -> dict[str, Any]:
    """Fine-tune on the training split (from ``init``'s backbone, or from scratch)."""
    L.seed_everything(config.seed, verbose=False)
    if init is not None:
        config = override_config(config, [f"finetune.init={init}"])
    source = build_source(config)
    records = load_records(config, "train")
    train_records, val_records = holdout_split(records, fraction=config.data.val_fraction,
                                               seed=config.seed)
    # Fraction 0 (label_fraction 1) keeps every video; the same seed picks the same labelled
    # videos for the pretrained and scratch arms.
    train_records, _ = holdout_split(train_records, seed=config.seed,
                                     fraction=1 - config.finetune.label_fraction)
    weights, pretrain_clip_len = None, None
    if config.finetune.init:
        weights, pretrain_config = load_backbone_weights(config.finetune.init)
        check_backbone_compatible(config, pretrain_config, config.finetune.init)
        pretrain_clip_len = pretrain_config.clip.len
    task = ActionRecognition(config, classes=records.classes, pretrain_clip_len=pretrain_clip_len)
    if weights is not None:
        load_weights(task.backbone, weights, config.finetune.init)
    train_set = classification_dataset(config, train_records, source, mode="train")
    val_set = classification_dataset(config, val_records, source, mode="test", num_test_clips=1)
    trainer = fit(task, ClipDataModule(config, train_set, val_set), config, out,
                  monitor="val/acc", resume=resume)
    metrics = {
        **final_metrics(trainer, {"val/acc": "val_clip_top1", "val/loss": "val_loss"}),
        **validation_summary(trainer, config),
        "val_chance": constant_guess_accuracy([record.label for record in val_records]),
        "clips_seen": task.clips_seen,
        "num_videos": len(val_set),
        "train_videos": len(train_set),
        "protocol": {
            "measured_on": f"{len(val_set)} held-out training videos, one centre clip each",
            "init": config.finetune.init or "scratch (random init)",
            "backbone": config.model.backbone, "norm": config.model.norm,
            "input_mode": config.model.input_mode,
            "clip": config.clip.shape, "stride": config.clip.stride,
            "frozen": config.optim.backbone_lr_scale == 0, "norm_stats": config.finetune.norm_stats,
            "frozen_stages": task.frozen_stages,
            "label_fraction": config.finetune.label_fraction,
            "lr": config.optim.lr, "backbone_lr": config.optim.lr * config.optim.backbone_lr_scale,
            "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "effective_batch": config.optim.batch_size * trainer.world_size,
        },
    }
    if trainer.is_global_zero:
        write_json(Path(out) / "metrics.json", metrics)
    return metrics


def check_stage_count(backbone: Backbone, count: int) -> None:
    """``finetune.freeze_stages`` may name at most the backbone's own stages."""
    stages = len(backbone.stages())
    if count > stages:
        raise PlayspeedError(f"finetune.freeze_stages={count}: {type(backbone).__name__} has "
                             f"only {stages} stages")


def freeze_leading_stages(backbone: Backbone, count: int) -> None:
    """Stop gradients to the weights of the first ``count`` stages (norm buffers still update)."""
    check_stage_count(backbone, count)
    for stage in backbone.stages()[:count]:
        stage.requires_grad_(False)


def check_backbone_compatible(config: Config, pretrained: Config, path) -> None:
    """The pretrained backbone must be the one the config builds, at a clip length it fits."""
    keys = ("backbone", "norm", "width", "frames_per_group", "groups_per_stage", "input_mode")
    for key in keys:
        want, have = getattr(config.model, key), getattr(pretrained.model, key)
        if want != have:
            raise PlayspeedError(
                f"{path}: checkpoint has model.{key}={have}, the config asks for {want} "
                f"(set model.{key}={have})")
    pretrained_table = backbone_from_config(pretrained).norm_table()
    current_table = backbone_from_config(config).norm_table()
    for (name, _, groups), (_, frames, _) in zip(pretrained_table, current_table, strict=True):
        if frames < groups:
            raise PlayspeedError(
                f"{path}: clip.len={config.clip.len} is too short for this checkpoint's TGN: "
                f"layer {name} sees {frames} frames but has {groups} groups "
                f"(pretrained at clip.len={pretrained.clip.len})")
