"""Cheap readings of frozen features (docs/method.md#evaluation-protocols): k-NN and a linear probe.

Both train on the training split's video features (by default those of retrieval, so one
cached pass serves both) and score the test split's:
- ``knn_top1``: majority vote of the ``k`` most cosine-similar training videos (ties go to
  the class with the nearer neighbour);
- ``linear_top1``: multinomial logistic regression (L2-regularised, full-batch L-BFGS) on
  standardised features.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from playspeed.chance import constant_guess_accuracy
from playspeed.config import Config
from playspeed.io import write_json
from playspeed.tasks.data import build_source, load_records
from playspeed.tasks.features import FeatureCache, cached_video_features
from playspeed.tasks.inference import inference_device
from playspeed.tasks.metrics import percent
from playspeed.tasks.registry import evaluation_config, load_task
from playspeed.tasks.retrieval import rank_gallery


def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, *,
                k: int = 5) -> torch.Tensor:
    """Predicted labels ``V_test`` by majority vote of the ``k`` nearest training videos
    (cosine similarity); a tie in votes goes to the class with the nearest neighbour."""
    neighbours = rank_gallery(test, train, k=k, device=inference_device())  # nearest first
    k = neighbours.shape[1]
    num_classes = int(train_labels.max()) + 1
    voted = train_labels[neighbours]  # V_test x k
    votes = torch.zeros(len(test), num_classes, dtype=torch.long)
    votes.scatter_add_(1, voted, torch.ones_like(voted))
    ranks = torch.arange(k).expand_as(voted).contiguous()
    nearest = torch.full((len(test), num_classes), k, dtype=torch.long)
    nearest.scatter_reduce_(1, voted, ranks, reduce="amin")
    # Exact integer score: more votes win; among equal votes, the smaller nearest rank.
    return (votes * (k + 1) - nearest).argmax(1)


def linear_probe_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                         *, weight_decay: float = 1e-3, max_iter: int = 100) -> torch.Tensor:
    """Predicted labels of a multinomial logistic regression (L2 ``weight_decay`` on the
    weights, full-batch L-BFGS) fitted on standardised ``train`` features; runs on the GPU
    when there is one."""
    device = inference_device()
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    train, test = train.to(device, dtype), test.to(device, dtype)
    train_labels = train_labels.to(device)
    mean, std = train.mean(0), train.std(0, correction=0).clamp_min(1e-6)
    train, test = (train - mean) / std, (test - mean) / std
    num_classes = int(train_labels.max()) + 1
    linear = torch.nn.Linear(train.shape[1], num_classes, dtype=dtype, device=device)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (F.cross_entropy(linear(train), train_labels)
                + weight_decay * linear.weight.square().sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return linear(test).argmax(1).cpu()


def probe_metrics(backbone: torch.nn.Module, config: Config, *, out: Path, k: int = 5,
                  pooling: str = "maxpool", cache: FeatureCache | None = None,
                  label: str = "") -> dict[str, Any]:
    """k-NN and linear-probe accuracy of frozen video features; writes ``metrics.json``."""
    source = build_source(config)
    num_clips = config.clip.test_clips
    splits = {subset: load_records(config, subset) for subset in ("train", "test")}
    features = {subset: cached_video_features(backbone, records, source, config,
                                              num_clips=num_clips, pooling=pooling, cache=cache)
                for subset, records in splits.items()}
    (train, train_labels), (test, test_labels) = features["train"], features["test"]
    metrics: dict[str, Any] = {
        "linear_top1": percent(linear_probe_predict(train, train_labels, test) == test_labels),
        "knn_top1": percent(knn_predict(train, train_labels, test, k=k) == test_labels),
        "chance_top1": constant_guess_accuracy(test_labels.tolist()),  # the most frequent class
        "num_videos": len(splits["test"]),
        "protocol": {
            "features": f"frozen backbone, {pooling} vector, mean over {num_clips} evenly "
                        f"spaced clips ({config.clip.shape}, centre crop)",
            "train": f"{len(splits['train'])} training videos of {config.data.dataset} "
                     f"split {config.data.split}",
            "test": f"{len(splits['test'])} test videos",
            "knn": f"k={k}, cosine similarity, majority vote",
            "linear": "logistic regression on standardised features, L2 1e-3, L-BFGS",
            "backbone": config.model.backbone, "norm": config.model.norm,
            "input_mode": config.model.input_mode,
            **({"model": label} if label else {}),
        },
    }
    write_json(Path(out) / "metrics.json", metrics)
    return metrics


def probe(ckpt: Path, *, out: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`probe_metrics` for the backbone of any checkpoint (features cached)."""
    task = load_task(ckpt)
    config = evaluation_config(task, overrides, ckpt)
    return probe_metrics(task.backbone, config, out=out,
                         cache=FeatureCache(Path(out) / "features"),
                         label=str(ckpt))
