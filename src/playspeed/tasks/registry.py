"""The tasks by name: a checkpoint's stored task name -> its Lightning module, and loading any
checkpoint back into its task in one call.

The top of the task layer: it imports every task, so that nothing below it has to.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from playspeed.config import Config, override_config
from playspeed.errors import PlayspeedError, first_line
from playspeed.tasks.base import VideoTask
from playspeed.tasks.checkpoints import checkpoint_config, load_weights, read_checkpoint
from playspeed.tasks.finetune import ActionRecognition
from playspeed.tasks.pretext import PlaybackSpeedPretraining

#: ``hyper_parameters["task"]`` of a checkpoint -> the module that wrote it.
TASKS: dict[str, type[VideoTask]] = {
    task.task_name: task for task in (PlaybackSpeedPretraining, ActionRecognition)}


def load_task(path: str | Path, *, expect: str | None = None) -> VideoTask:
    """The Lightning module of a checkpoint, weights loaded, in eval mode.

    ``expect`` ("pretrain" | "finetune") rejects a checkpoint of the other kind.
    """
    checkpoint = read_checkpoint(path, expect=expect)
    hparams = dict(checkpoint["hyper_parameters"])
    name = hparams.pop("task")
    if name not in TASKS:
        raise PlayspeedError(f"{path}: a checkpoint of an unknown task {name!r} (this version "
                             f"knows {', '.join(TASKS)})")
    config = checkpoint_config(checkpoint, path)
    hparams.pop("config")
    try:
        module = TASKS[name](config, **hparams)
    except (TypeError, ValueError) as err:  # stored extras or settings this version rejects
        raise PlayspeedError(f"{path}: cannot rebuild its model ({first_line(err)})") from err
    load_weights(module, checkpoint["state_dict"], path)
    return module.eval()


def evaluation_config(task: VideoTask, overrides: Sequence[str], path: str | Path) -> Config:
    """The config an evaluation of ``task`` (loaded from ``path``) runs with: the stored one
    with ``overrides`` (data, clip and trainer keys). ``model.*`` keys are refused: the model
    is the checkpoint's, and an override would change the reports but not the network."""
    model_keys = [item.split("=", 1)[0].strip() for item in overrides
                  if item.split("=", 1)[0].strip().startswith("model.")]
    if model_keys:
        raise PlayspeedError(f"{model_keys[0]}: the model comes from the checkpoint {path}; "
                             "model.* keys cannot be overridden when evaluating it")
    return override_config(task.config, list(overrides))
