"""Running a trained module over a loader: the device, the precision and the batch loop that
evaluation, features, retrieval, probes and the speed detector share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from playspeed.config import Config
from playspeed.models.performance import resolve_precision


def inference_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def inference_precision(config: Config, device: torch.device) -> str:
    """The config's precision on ``device`` (``auto`` resolved for it), as Lightning names it."""
    return resolve_precision(config.trainer.precision, device_type=device.type)


def autocast_for(config: Config, device: torch.device):
    """The autocast of the config's precision on ``device`` (``auto`` resolved for it)."""
    precision = inference_precision(config, device)
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16") and device.type == "cuda":
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


def iterate_batches(loader: DataLoader, fn: Callable[[torch.Tensor], torch.Tensor], *,
                    config: Config, device: torch.device, desc: str = "inference"
                    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Yield ``(batch, fn(clips))`` for every batch; clips with extra leading dims
    (``B x N x C x T x H x W``) are flattened for ``fn`` and its output reshaped back to
    ``B x N x ...``."""
    with torch.inference_mode(), autocast_for(config, device):
        for batch in tqdm(loader, desc=desc, leave=False, disable=None):
            clips = batch["clips"].to(device, non_blocking=True)
            leading = clips.shape[:-4]
            output = fn(clips.flatten(0, -5)).float()
            yield batch, output.view(*leading, *output.shape[1:]).cpu()
