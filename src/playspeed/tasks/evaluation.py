"""Multi-clip testing of a fine-tuned model: plain functions over logits (METHOD.md §6).

- clip accuracy: one centre clip per test video;
- video accuracy: ``N`` evenly spaced clips per video (10 by default), softmax scores
  averaged over the clips, then the arg-max.
Every video of the test split counts: loaders keep the last partial batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from playspeed.config import Config, override_config
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_text, write_json
from playspeed.models.performance import resolve_precision


def inference_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(config: Config, device: torch.device):
    """The autocast of the config's precision on ``device`` (``auto`` resolved for it)."""
    precision = resolve_precision(config.trainer.precision, device_type=device.type)
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
    from tqdm.auto import tqdm

    with torch.inference_mode(), autocast_for(config, device):
        for batch in tqdm(loader, desc=desc, leave=False, disable=None):
            clips = batch["clips"].to(device, non_blocking=True)
            leading = clips.shape[:-4]
            output = fn(clips.flatten(0, -5)).float()
            yield batch, output.view(*leading, *output.shape[1:]).cpu()


def percent(hits: torch.Tensor) -> float:
    """Share of true entries of a boolean tensor, in percent (exact, not float32)."""
    return 100.0 * int(hits.sum()) / max(1, hits.numel())


def video_and_clip_accuracy(video_logits: torch.Tensor, centre_logits: torch.Tensor,
                            labels: torch.Tensor) -> dict[str, float]:
    """``video_logits`` ``V x N x K`` (N clips per video), ``centre_logits`` ``V x K``,
    ``labels`` ``V`` -> ``video_top1`` (softmax averaged) and ``clip_top1``, in percent."""
    video_scores = video_logits.softmax(-1).mean(1)
    return {
        "clip_top1": percent(centre_logits.argmax(-1) == labels),
        "video_top1": percent(video_scores.argmax(-1) == labels),
    }


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int
                     ) -> np.ndarray:
    """``num_classes x num_classes`` counts; rows are true classes, columns predictions."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.numpy(), predicted.numpy()), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class in percent (NaN for a class with no test video)."""
    totals = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals * 100, np.nan)


def evaluate(ckpt: Path, *, out: Path, num_clips: int = 10, overrides: list[str] = ()
         ) -> dict[str, Any]:
    """Clip and video accuracy of a fine-tuned checkpoint on the test split.

    Writes ``metrics.json``, ``per_class.csv`` and ``plots/confusion.png`` under ``out``.
    """
    from playspeed.data.sampling import constant_guess_accuracy
    from playspeed.report import plot_confusion
    from playspeed.tasks.checkpoints import load_task
    from playspeed.tasks.data import build_source, classification_dataset, load_records, make_loader

    task = load_task(ckpt, expect="finetune")
    config = override_config(task.config, list(overrides))
    records = load_records(config, "test")
    if [c.lower() for c in records.classes] != [c.lower() for c in task.classes]:
        raise PlayspeedError(f"{ckpt}: trained on classes {task.classes[:3]}..., but the test "
                             f"split has {list(records.classes)[:3]}... ({len(records.classes)})")
    source = build_source(config)
    device = inference_device()
    task.to(device)

    def logits_of(dataset) -> tuple[torch.Tensor, torch.Tensor]:
        loader = make_loader(dataset, config, train=False)
        outputs, labels = [], []
        for batch, logits in iterate_batches(loader, task, config=config, device=device,
                                             desc=f"test ({dataset.num_test_clips} clips)"):
            outputs.append(logits)
            labels.append(batch["label"])
        return torch.cat(outputs), torch.cat(labels)

    video_logits, labels = logits_of(
        classification_dataset(config, records, source, mode="test", num_test_clips=num_clips))
    centre_logits, _ = logits_of(
        classification_dataset(config, records, source, mode="test", num_test_clips=1))
    metrics: dict[str, Any] = video_and_clip_accuracy(video_logits, centre_logits[:, 0], labels)
    predicted = video_logits.softmax(-1).mean(1).argmax(-1)
    matrix = confusion_matrix(predicted, labels, len(task.classes))
    metrics |= {
        "chance_top1": constant_guess_accuracy(labels.tolist()),  # the most frequent class
        "num_videos": len(records),
        "protocol": {
            "split": f"{config.data.dataset} split {config.data.split}, test list",
            "clip_top1": "one centre clip per video, centre crop",
            "video_top1": f"{num_clips} evenly spaced clips per video, centre crop, "
                          "softmax scores averaged",
            "clip": config.clip.shape, "stride": config.clip.stride,
            "checkpoint": str(ckpt),
        },
    }
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    accuracy = per_class_accuracy(matrix)
    lines = ["class,videos,video_top1"] + [
        f"{name},{int(matrix[i].sum())},{accuracy[i]:.2f}" for i, name in enumerate(task.classes)]
    atomic_write_text(out / "per_class.csv", "\n".join(lines) + "\n")
    plot_confusion(matrix, task.classes, out / "plots" / "confusion.png",
                   title=f"video top-1 {metrics['video_top1']:.1f}%")
    return metrics
