"""Reading checkpoints: every one carries its config and task name, so it describes itself
(:func:`playspeed.tasks.registry.load_task` turns one into its task in one call).

Checkpoints are files from anywhere (shared pretrained weights), so they are data, never
code: every load is ``torch.load(..., weights_only=True)``, which builds only tensors and
plain containers and refuses a pickle that asks for any other Python object before calling
it. Our own checkpoints need nothing more: the config is stored as a plain dict, and
Lightning's loop, optimizer, scheduler and callback states are tensors, numbers, strings,
lists and dicts.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from playspeed.config import Config, config_from_dict
from playspeed.errors import PlayspeedError, first_line


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` of tensors and plain data only; anything else is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise PlayspeedError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise PlayspeedError(_refusal(path, str(err))) from err
    except Exception as err:
        raise PlayspeedError(f"{path}: not a readable checkpoint ({first_line(err)})") from err


def _refusal(path: Path, message: str) -> str:
    # torch names the first global the pickle asked for ("GLOBAL posix.system"); a pickle
    # that is not a torch file at all fails on an opcode instead.
    called = re.search(r"GLOBAL ([\w.]+)", message)
    if called:
        return (f"{path}: refused: loading it would call Python code ({called.group(1)}); "
                f"checkpoints may hold only tensors and plain data")
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    return f"{path}: not a readable checkpoint ({detail.group(1) if detail else 'bad pickle'})"



def read_checkpoint(path: str | Path, *, expect: str | None = None) -> dict[str, Any]:
    """The raw checkpoint dict, checked to be one of ours (of task ``expect`` when given)."""
    checkpoint = safe_torch_load(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or "config" not in hparams or "task" not in hparams:
        raise PlayspeedError(f"{path}: not a playspeed checkpoint (no stored config)")
    task = hparams["task"]
    if expect is not None and task != expect:
        raise PlayspeedError(f"{path}: a {task} checkpoint; this command needs a {expect} one")
    weights = checkpoint.get("state_dict")
    if not isinstance(weights, dict) or not all(
            isinstance(value, torch.Tensor) for value in weights.values()):
        raise PlayspeedError(f"{path}: holds no state_dict of weights")
    return checkpoint


def checkpoint_config(checkpoint: dict[str, Any], path: str | Path) -> Config:
    """The config a checkpoint was trained with; a stored config this version cannot read
    is an error naming the file."""
    try:
        return config_from_dict(checkpoint["hyper_parameters"]["config"])
    except PlayspeedError as err:
        raise PlayspeedError(f"{path}: {err}") from err


def load_weights(module: nn.Module, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """``module.load_state_dict(weights)`` (strict); missing, extra or misshapen weights are
    a one-line error naming ``path``."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        summary = "; ".join(problems)
        if len(summary) > 300:
            summary = summary[:300] + " ..."
        raise PlayspeedError(f"{path}: weights do not fit the model its config builds "
                             f"({summary or first_line(err)})") from err


def load_backbone_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], Config]:
    """The backbone weights of any playspeed checkpoint, with the config it was trained on."""
    checkpoint = read_checkpoint(path)
    prefix = "backbone."
    weights = {key[len(prefix):]: value for key, value in checkpoint["state_dict"].items()
               if key.startswith(prefix)}
    if not weights:
        raise PlayspeedError(f"{path}: holds no backbone weights")
    return weights, checkpoint_config(checkpoint, path)
