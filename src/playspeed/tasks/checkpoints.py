"""Loading checkpoints: every one carries its config and task, so one call restores it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from playspeed.config import Config, config_from_dict
from playspeed.errors import PlayspeedError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, checked to be one of ours."""
    path = Path(path)
    if not path.is_file():
        raise PlayspeedError(f"{path}: no such checkpoint")
    try:
        # weights_only=False: Lightning checkpoints hold optimizer and loop state objects.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise PlayspeedError(f"{path}: not a readable checkpoint ({err})") from err
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "config" not in hparams or "task" not in hparams:
        raise PlayspeedError(f"{path}: not a playspeed checkpoint (no stored config)")
    return checkpoint


def checkpoint_config(checkpoint: dict[str, Any]) -> Config:
    return config_from_dict(checkpoint["hyper_parameters"]["config"])


def load_task(path: str | Path, *, expect: str | None = None):
    """The Lightning module of a checkpoint, weights loaded, in eval mode.

    ``expect`` ("pretrain" | "finetune") rejects a checkpoint of the other kind.
    """
    from playspeed.tasks.finetune import ActionRecognition
    from playspeed.tasks.pretext import PlaybackSpeedPretraining

    checkpoint = read_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    task = hparams.pop("task")
    if expect is not None and task != expect:
        raise PlayspeedError(f"{path}: a {task} checkpoint; this command needs a {expect} one")
    module_type = {"pretrain": PlaybackSpeedPretraining, "finetune": ActionRecognition}[task]
    module = module_type(hparams.pop("config"), **hparams)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def load_backbone_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], Config]:
    """The backbone weights of any playspeed checkpoint, with the config it was trained on."""
    checkpoint = read_checkpoint(path)
    prefix = "backbone."
    weights = {key[len(prefix):]: value for key, value in checkpoint["state_dict"].items()
               if key.startswith(prefix)}
    if not weights:
        raise PlayspeedError(f"{path}: holds no backbone weights")
    return weights, checkpoint_config(checkpoint)
