"""What pretext training and fine-tuning share: the backbone from config, the optimiser and
schedule, input memory format, and checkpoints that describe themselves.

A checkpoint's ``hyper_parameters`` hold ``config`` (the resolved config, a plain dict) and
``task`` ("pretrain" | "finetune"), so any checkpoint loads with one call
(:func:`playspeed.tasks.checkpoints.load_task`) without the YAML it came from.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn

from playspeed.config import Config, OptimConfig, config_from_dict, config_to_dict
from playspeed.models import build_backbone, convert_sync_tgn


def backbone_from_config(config: Config, *, clip_len: int | None = None) -> nn.Module:
    """The configured backbone; TGN group counts follow ``clip_len`` (default: the config's)."""
    model = config.model
    return build_backbone(
        model.backbone, norm=model.norm, clip_len=clip_len or config.clip.len,
        frames_per_group=model.frames_per_group,
        groups_per_stage=list(model.groups_per_stage) if model.groups_per_stage else None,
        width=model.width, input_mode=model.input_mode,
    )


class VideoTask(L.LightningModule):
    """Base of the Lightning modules: subclasses set ``self.backbone`` and the heads."""

    task_name = "task"

    def __init__(self, config: Config | dict[str, Any], **extra: Any) -> None:
        super().__init__()
        self.config = config if isinstance(config, Config) else config_from_dict(config)
        self.save_hyperparameters({"config": config_to_dict(self.config),
                                   "task": self.task_name, **extra})
        self.clips_seen = 0  # clips through the backbone in training, all devices

    def count_clips(self, clips: int) -> float:
        """Add this step's ``clips`` (one device) to :attr:`clips_seen`; returns the total, for
        logging (the budget of a run is counted in clips:
        docs/studies/transfer-recipe.md#the-cpu-scale)."""
        self.clips_seen += clips * self.trainer.world_size
        return float(self.clips_seen)

    # Input -------------------------------------------------------------------------------

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips ``B x C x T x H x W`` -> pooled backbone features ``B x D``."""
        if self.config.trainer.memory_format == "channels_last_3d":
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        return self.backbone(clips)

    def setup(self, stage: str) -> None:
        # Runs before the strategy wraps the model for DDP, as Lightning's BN conversion does.
        if self.config.trainer.sync_norm and self.trainer.world_size > 1:
            convert_sync_tgn(self)
        if self.config.trainer.memory_format == "channels_last_3d":
            self.to(memory_format=torch.channels_last_3d)

    # Optimisation ------------------------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameter groups with their learning rates; weight decay spares norms and biases."""
        return decay_groups(self.named_parameters(), lr=self.config.optim.lr,
                             weight_decay=self.config.optim.weight_decay)

    def configure_optimizers(self):
        optim = self.config.optim
        optimizer = build_optimizer(optim, self.parameter_groups())
        steps_per_epoch = max(1, self.trainer.estimated_stepping_batches
                              // max(1, self.trainer.max_epochs))
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        warmup_steps = int(optim.warmup_epochs * steps_per_epoch)
        milestones = [epoch * steps_per_epoch for epoch in optim.step_epochs]

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            if optim.schedule == "cosine":
                progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
            if optim.schedule == "step":
                return optim.step_gamma ** sum(step >= m for m in milestones)
            return 1.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # Reproducible resume -----------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning does not store the global RNG; dropout draws from it (from the GPU's on a
        # GPU), so a resumed run restores it to continue exactly as an uninterrupted one.
        # Every process of a run is seeded alike and draws alike, so rank 0's state is each
        # rank's.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)
        checkpoint["clips_seen"] = self.clips_seen

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        if "cuda_rng_state" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state(checkpoint["cuda_rng_state"])  # this process's device
        self.clips_seen = int(checkpoint.get("clips_seen", 0))


def build_optimizer(optim: OptimConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimiser ``optim.name`` over parameter ``groups`` (each with its lr and decay)."""
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum)
    return torch.optim.AdamW(groups, lr=optim.lr)


def decay_groups(named_parameters, *, lr: float, weight_decay: float,
                  prefix_lr: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Split parameters into (lr, decay) groups: 1-d tensors (norm affine, biases) get no decay.

    ``prefix_lr`` maps a name prefix (e.g. ``"backbone."``) to its own learning rate.
    """
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        group_lr = lr
        for prefix, value in (prefix_lr or {}).items():
            if name.startswith(prefix):
                group_lr = value
        decay = weight_decay if param.ndim > 1 else 0.0
        groups.setdefault((group_lr, decay), []).append(param)
    return [{"params": params, "lr": group_lr, "weight_decay": decay}
            for (group_lr, decay), params in groups.items()]
