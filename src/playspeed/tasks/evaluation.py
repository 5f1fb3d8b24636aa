"""Multi-clip testing of a fine-tuned model (the field's protocol):

- clip accuracy: one centre clip per test video;
- video accuracy: ``N`` evenly spaced clips per video (``clip.test_clips``, 10 by default),
  softmax scores averaged over the clips, then the arg-max.
Every video of the test split counts: loaders keep the last partial batch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from playspeed.chance import constant_guess_accuracy
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_text, write_json
from playspeed.report import plot_confusion
from playspeed.tasks.data import build_source, classification_dataset, load_records, make_loader
from playspeed.tasks.inference import inference_device, iterate_batches
from playspeed.tasks.metrics import confusion_matrix, per_class_accuracy, video_and_clip_accuracy
from playspeed.tasks.registry import evaluation_config, load_task


def evaluate(ckpt: Path, *, out: Path, num_clips: int | None = None,
             overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Clip and video accuracy of a fine-tuned checkpoint on the test split; video accuracy
    over ``num_clips`` clips per video (default: the config's ``clip.test_clips``).

    Writes ``metrics.json``, ``per_class.csv`` and ``plots/confusion.png`` under ``out``.
    """
    task = load_task(ckpt, expect="finetune")
    config = evaluation_config(task, overrides, ckpt)
    num_clips = num_clips or config.clip.test_clips
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
            "backbone": config.model.backbone, "norm": config.model.norm,
            "input_mode": config.model.input_mode,
            "checkpoint": str(ckpt),
        },
    }
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    write_per_class_table(out / "per_class.csv", task.classes, matrix)
    plot_confusion(matrix, task.classes, out / "plots" / "confusion.png",
                   title=f"video top-1 {metrics['video_top1']:.1f}%")
    return metrics


def write_per_class_table(path: Path, classes: Sequence[str], matrix: np.ndarray) -> None:
    """``class,videos,video_top1``: one row per class of a ``K x K`` confusion matrix (rows:
    true class). Names are quoted where they need it: Something-Something's hold commas."""
    accuracy = per_class_accuracy(matrix)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["class", "videos", "video_top1"])
    writer.writerows([name, int(matrix[i].sum()), f"{accuracy[i]:.2f}"]
                     for i, name in enumerate(classes))
    atomic_write_text(path, table.getvalue())
