"""Per-video features of a frozen backbone, and their cache.

A video's feature is the mean over ``N`` evenly spaced clips (centre crop) of a clip
feature: the last conv block max-pooled ``(1, 2, 2)`` and flattened (``maxpool``, the
retrieval protocol of docs/method.md#evaluation-protocols) or the globally pooled vector
(``pooled``).

Features are cached as ``.npz`` under a key made of the SHA-256 of the backbone's weights,
every setting that changes the numbers and the list of videos, so changed weights, settings
or videos are never served stale features.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from playspeed.config import Config, config_to_dict
from playspeed.data import RawVideos, VideoFolder, VideoRecord
from playspeed.errors import PlayspeedError, first_line
from playspeed.io import write_npz
from playspeed.tasks.data import classification_dataset, make_loader
from playspeed.tasks.inference import inference_device, inference_precision, iterate_batches
from playspeed.tasks.registry import evaluation_config, load_task

POOLINGS = ("maxpool", "pooled")


def clip_feature(backbone: torch.nn.Module, clips: torch.Tensor, *, pooling: str = "maxpool"
                 ) -> torch.Tensor:
    """Clips ``B x C x T x H x W`` -> features ``B x F``."""
    if pooling == "pooled":
        return backbone(clips)
    feature_map = backbone.forward_features(clips)
    return F.max_pool3d(feature_map, kernel_size=(1, 2, 2), ceil_mode=True).flatten(1)


def video_features(backbone: torch.nn.Module, records: Sequence, source, config: Config, *,
                   num_clips: int, pooling: str, failures: list | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``V x F`` (mean over ``num_clips`` clips) and labels ``V`` of ``records``,
    in order; every video counts (the last partial batch is kept).

    ``failures``: when a list is given, a video whose frames cannot be read is left out
    instead of stopping the run (the tensors then hold the readable videos, in order) and
    ``(index in records, reason)`` is appended to the list for it.
    """
    device = inference_device()
    backbone = backbone.to(device).eval()
    dataset = classification_dataset(config, records, source, mode="test",
                                     num_test_clips=num_clips)
    if failures is not None:
        dataset = _Guarded(dataset, (num_clips, 3, config.clip.len, config.clip.size,
                                     config.clip.size))
    features, labels = [], []
    loader = make_loader(dataset, config, train=False)
    for batch, clip_features in iterate_batches(
            loader, lambda clips: clip_feature(backbone, clips, pooling=pooling),
            config=config, device=device, desc=f"features ({len(dataset)} videos)"):
        keep = torch.ones(len(batch["label"]), dtype=torch.bool)
        if failures is not None:
            keep = batch["readable"]
            failures.extend((index, reason) for index, reason, ok in zip(
                batch["video_index"].tolist(), batch["reason"], keep.tolist(), strict=True)
                if not ok)
        features.append(clip_features.mean(1)[keep])
        labels.append(batch["label"][keep])
    return torch.cat(features), torch.cat(labels)


class _Guarded(Dataset):
    """Test clips whose items do not raise for an unreadable video: it gives zero clips of
    ``shape`` with ``readable`` false and the error's first line in ``reason``. Only decode
    and I/O errors count as unreadable (the frame sources turn decoder failures into
    :class:`PlayspeedError`); anything else is a bug and propagates."""

    def __init__(self, dataset, shape: tuple[int, ...]) -> None:
        self.dataset, self.shape = dataset, shape

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        try:
            item = self.dataset[index]
        except (PlayspeedError, OSError) as err:  # the caller reports the video
            record = self.dataset.records[index]
            return {"clips": torch.zeros(self.shape),
                    "label": torch.tensor(record.label, dtype=torch.int64),
                    "frame_indices": torch.zeros(self.shape[0], self.shape[2],
                                                 dtype=torch.int64),
                    "video_index": torch.tensor(index, dtype=torch.int64), "readable": False,
                    "reason": first_line(err)}
        return {**item, "readable": True, "reason": ""}


def cached_video_features(backbone: torch.nn.Module, records: Sequence, source, config: Config,
                          *, num_clips: int, pooling: str, cache: FeatureCache | None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`video_features`, served from ``cache`` when it holds them."""
    if cache is None:
        return video_features(backbone, records, source, config, num_clips=num_clips,
                              pooling=pooling)
    resolved = config_to_dict(config)
    key = cache.key(backbone, records, {
        "pooling": pooling, "num_clips": num_clips, "clip": resolved["clip"],
        "model": resolved["model"],
        "precision": inference_precision(config, inference_device()),
        "frames": str(config.data.store or config.data.videos)})
    stored = cache.load(key)
    if stored is None:
        stored = video_features(backbone, records, source, config, num_clips=num_clips,
                                pooling=pooling)
        cache.save(key, *stored)
    return stored


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """``.npz`` files in ``directory`` keyed by the backbone's weights, settings and videos."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(backbone: torch.nn.Module, records: Sequence, settings: dict) -> str:
        payload = json.dumps({"weights": weights_digest(backbone), "settings": settings,
                              "videos": [[r.key, r.label] for r in records]}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    def load(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.directory / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:  # arrays only, never objects
                return torch.from_numpy(stored["features"]), torch.from_numpy(stored["labels"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # a damaged or foreign file: the features are computed afresh

    def save(self, key: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        write_npz(self.directory / f"{key}.npz", features=features.numpy(),
                  labels=labels.numpy())


def videos_to_extract(videos: str | Path) -> Sequence:
    """Records for a folder (scanned for videos) or a list file (one path per line,
    relative to the list's folder or absolute); labels are -1 unless a class folder says."""
    videos = Path(videos)
    if videos.is_dir():
        return VideoFolder(videos)  # keeps .classes, which its labels index
    if not videos.is_file():
        raise PlayspeedError(f"{videos}: no such folder or list file")
    records = []
    for number, line in enumerate(videos.read_text().splitlines(), start=1):
        entry = line.strip()
        if entry:
            path = Path(entry) if Path(entry).is_absolute() else videos.parent / entry
            if not path.is_file():
                raise PlayspeedError(f"{videos}:{number}: video {entry!r} not found")
            records.append(VideoRecord(path=path, label=-1, key=entry))
    return records


def extract(ckpt: str | Path, *, videos: str | Path, out: str | Path,
            pooling: str = "maxpool", overrides: Sequence[str] = (),
            log: Callable[[str], None] = print) -> dict:
    """Features of any videos with the backbone of ``ckpt``, saved to ``out`` (.npz holding
    ``features`` V x F, ``paths`` V, ``labels`` V (-1 without a class folder) and the folder
    scan's ``classes``).

    A video that cannot be read is reported through ``log`` and left out; the others are
    extracted. Returns ``num_videos`` (extracted), ``num_failed`` and ``failed``
    (``[(path, reason)]``).
    """
    if pooling not in POOLINGS:
        raise PlayspeedError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    task = load_task(ckpt)
    config = evaluation_config(task, overrides, ckpt)
    records = videos_to_extract(videos)
    if not records:
        raise PlayspeedError(f"{videos}: no video found")
    source = RawVideos(resize=tuple(config.clip.resize))
    failures: list[tuple[int, str]] = []
    features, labels = video_features(task.backbone, records, source, config,
                                      num_clips=config.clip.test_clips, pooling=pooling,
                                      failures=failures)
    failed = [(str(records[index].path), reason) for index, reason in failures]
    for path, reason in failed:
        log(f"warning: {path}: cannot be read ({reason}); skipped")
    if len(failed) == len(records):
        raise PlayspeedError(f"{videos}: none of the {len(records)} videos could be read")
    bad = {index for index, _ in failures}
    readable = [record for index, record in enumerate(records) if index not in bad]
    write_npz(out, features=features.numpy(), labels=labels.numpy(),
              paths=np.array([str(r.path) for r in readable]),
              classes=np.array(list(getattr(records, "classes", [])), dtype=str))
    return {"num_videos": len(readable), "num_failed": len(failed), "failed": failed}
