"""Per-video features of a frozen backbone, and their cache.

A video's feature is the mean over ``N`` evenly spaced clips (centre crop) of a clip
feature: the last conv block max-pooled ``(1, 2, 2)`` and flattened (``maxpool``, the
retrieval protocol of METHOD.md §6) or the globally pooled vector (``pooled``).

Features are cached as ``.npz`` under a key made of the checkpoint file's SHA-256, every
setting that changes the numbers and the list of videos, so a changed checkpoint, setting
or video list is never served stale features.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from playspeed.config import Config, config_to_dict
from playspeed.io import atomic_write_bytes

POOLINGS = ("maxpool", "pooled")


def clip_feature(backbone: torch.nn.Module, clips: torch.Tensor, *, pooling: str = "maxpool"
                 ) -> torch.Tensor:
    """Clips ``B x C x T x H x W`` -> features ``B x F``."""
    if pooling == "pooled":
        return backbone(clips)
    feature_map = backbone.forward_features(clips)
    return F.max_pool3d(feature_map, kernel_size=(1, 2, 2), ceil_mode=True).flatten(1)


def video_features(backbone: torch.nn.Module, records: Sequence, source, config: Config, *,
                   num_clips: int, pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``V x F`` (mean over ``num_clips`` clips) and labels ``V`` of ``records``,
    in order; every video counts (the last partial batch is kept)."""
    from playspeed.tasks.data import classification_dataset, make_loader
    from playspeed.tasks.evaluation import inference_device, iterate_batches

    device = inference_device()
    backbone = backbone.to(device).eval()
    dataset = classification_dataset(config, records, source, mode="test",
                                     num_test_clips=num_clips)
    features, labels = [], []
    loader = make_loader(dataset, config, train=False)
    for batch, clip_features in iterate_batches(
            loader, lambda clips: clip_feature(backbone, clips, pooling=pooling),
            config=config, device=device, desc=f"features ({len(dataset)} videos)"):
        features.append(clip_features.mean(1))
        labels.append(batch["label"])
    return torch.cat(features), torch.cat(labels)


def cached_video_features(backbone: torch.nn.Module, records: Sequence, source, config: Config,
                          *, num_clips: int, pooling: str, cache: FeatureCache | None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`video_features`, served from ``cache`` when it holds them."""
    if cache is None:
        return video_features(backbone, records, source, config, num_clips=num_clips,
                              pooling=pooling)
    key = cache.key(records, {"pooling": pooling, "num_clips": num_clips,
                              "clip": config_to_dict(config)["clip"],
                              "frames": config.data.store or config.data.videos})
    stored = cache.load(key)
    if stored is None:
        stored = video_features(backbone, records, source, config, num_clips=num_clips,
                                pooling=pooling)
        cache.save(key, *stored)
    return stored


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FeatureCache:
    """``.npz`` files in ``directory`` keyed by checkpoint hash + settings + videos."""

    def __init__(self, directory: str | Path, *, checkpoint: str | Path) -> None:
        self.directory = Path(directory)
        self.checkpoint_digest = file_digest(checkpoint)

    def key(self, records: Sequence, settings: dict) -> str:
        payload = json.dumps({"checkpoint": self.checkpoint_digest, "settings": settings,
                              "videos": [r.key for r in records]}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    def load(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.directory / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path) as stored:
            return torch.from_numpy(stored["features"]), torch.from_numpy(stored["labels"])

    def save(self, key: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, features=features.numpy(), labels=labels.numpy())
        atomic_write_bytes(self.directory / f"{key}.npz", buffer.getvalue())
