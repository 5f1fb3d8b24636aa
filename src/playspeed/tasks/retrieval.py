"""Nearest-neighbour video retrieval (docs/method.md#evaluation-protocols) as batched matrix
products.

Protocol: each video's feature is the mean over its evenly spaced clips of the backbone's
clip feature (by default the last conv block max-pooled ``(1, 2, 2)`` and flattened);
features are L2-normalised so a matrix product gives cosine similarity; test videos query
the training gallery; a query is a hit at ``k`` when one of its ``k`` most similar gallery
videos has its class. Ties in similarity rank the earlier gallery video first, so results
never depend on the sort implementation.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from playspeed.chance import retrieval_chance
from playspeed.config import Config
from playspeed.errors import PlayspeedError
from playspeed.io import atomic_write_text, write_json
from playspeed.report import plot_retrieval
from playspeed.tasks.data import build_source, load_records
from playspeed.tasks.features import FeatureCache, cached_video_features
from playspeed.tasks.inference import inference_device
from playspeed.tasks.metrics import topk_accuracy
from playspeed.tasks.registry import evaluation_config, load_task

DEFAULT_TOPK = (1, 5, 10, 20, 50)


def rank_gallery(queries: torch.Tensor, gallery: torch.Tensor, *, k: int,
                 chunk: int = 2048, device: torch.device | str | None = None) -> torch.Tensor:
    """Indices ``Q x k`` of each query's ``k`` most cosine-similar gallery rows, best first.

    ``queries`` ``Q x F`` and ``gallery`` ``G x F`` need not be normalised (a zero row has
    similarity 0 to everything). ``k`` larger than the gallery gives ``Q x G``. Computed in
    chunks of queries so memory stays ``chunk x G``, on ``device`` (default: the queries');
    the indices come back on the queries' device.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if queries.shape[1:] != gallery.shape[1:] or queries.ndim != 2:
        raise ValueError(f"queries {tuple(queries.shape)} and gallery {tuple(gallery.shape)} "
                         "must be Q x F and G x F")
    for name, features in (("queries", queries), ("gallery", gallery)):
        if not torch.isfinite(features).all():
            raise ValueError(f"{name} hold NaN or infinite features")
    k = min(k, gallery.shape[0])
    home = queries.device
    device = torch.device(device) if device is not None else home
    queries = F.normalize(queries.to(device, torch.float32), dim=1)
    gallery_t = F.normalize(gallery.to(device, torch.float32), dim=1).T.contiguous()
    ranked = [_top_k_rows(queries[start:start + chunk] @ gallery_t, k)
              for start in range(0, queries.shape[0], chunk)]
    return (torch.cat(ranked) if ranked else torch.empty(0, k, dtype=torch.long)).to(home)


def _top_k_rows(similarity: torch.Tensor, k: int) -> torch.Tensor:
    """Row-wise top-k of ``similarity``, best first, equal values in column order."""
    # One more than asked: where the (k+1)-th value equals the k-th, more than k entries
    # reach the k-th value and which of them topk kept is unspecified. Those (rare) rows
    # take every entry above the k-th value, then the tied entries of lowest column index.
    extra = int(k < similarity.shape[1])
    values, indices = similarity.topk(k + extra, dim=1)  # sorted, best first
    tied = ((values[:, k - 1] == values[:, k]).nonzero().flatten() if extra
            else torch.empty(0, dtype=torch.long, device=similarity.device))
    values, indices = values[:, :k], indices[:, :k]
    if len(tied):
        rows, kth = similarity[tied], values[tied, -1:]
        above, at = rows > kth, rows == kth
        room = k - above.sum(1, keepdim=True)
        keep = above | (at & (at.cumsum(1) <= room))  # exactly k per row, in column order
        exact = keep.nonzero()[:, 1].view(len(tied), k)
        indices[tied] = exact
        values[tied] = rows.gather(1, exact)
    # Rows with equal values among their k (or just rebuilt): sort by index, then stably
    # by value, so equal values go in index order. Other rows are already in order.
    redo = (values[:, 1:] == values[:, :-1]).any(1)
    redo[tied] = True
    redo = redo.nonzero().flatten()
    if len(redo):
        by_index, order = indices[redo].sort(dim=1)
        by_value = values[redo].gather(1, order).sort(dim=1, descending=True,
                                                      stable=True).indices
        indices[redo] = by_index.gather(1, by_value)
    return indices


def retrieval_metrics(backbone: torch.nn.Module, config: Config, *, out: Path,
                      topk: Sequence[int] = DEFAULT_TOPK, pooling: str = "maxpool",
                      num_clips: int = 10, cache: FeatureCache | None = None,
                      label: str = "") -> dict[str, Any]:
    """Test videos query the training gallery of the configured split.

    Writes ``metrics.json``, ``neighbours.csv`` (every query's ranked gallery videos) and
    ``plots/retrieval.png`` (a few queries with their top-5, framed green on a class hit).
    """
    source = build_source(config)
    gallery_records, query_records = load_records(config, "train"), load_records(config, "test")

    def features(records):
        return cached_video_features(backbone, records, source, config, num_clips=num_clips,
                                     pooling=pooling, cache=cache)

    for name, records in (("training (gallery)", gallery_records),
                          ("test (query)", query_records)):
        if not len(records):
            raise PlayspeedError(f"retrieval: the {name} list of {config.data.dataset} split "
                                 f"{config.data.split} holds no video")
    gallery, gallery_labels = features(gallery_records)
    queries, query_labels = features(query_records)
    ranked = rank_gallery(queries, gallery, k=max(topk), device=inference_device())
    metrics: dict[str, Any] = topk_accuracy(ranked, query_labels, gallery_labels, topk)
    metrics |= {  # what a random ranking of the gallery would score
        f"chance_top{k}": retrieval_chance(query_labels.tolist(), gallery_labels.tolist(), k=k)
        for k in topk}
    metrics |= {
        "num_videos": len(query_records),
        "protocol": {
            "queries": f"{len(query_records)} test videos of {config.data.dataset} "
                       f"split {config.data.split}",
            "gallery": f"{len(gallery_records)} training videos of the same split",
            "feature": (f"mean over {num_clips} evenly spaced clips ({config.clip.shape}, "
                        "centre crop) of " + ("the last conv block max-pooled (1,2,2), "
                                              "flattened" if pooling == "maxpool"
                                              else "the globally pooled backbone vector")),
            "similarity": "cosine", "hit": "a gallery video of the query's class in the top k",
            "fine_tuned": False, "backbone": config.model.backbone, "norm": config.model.norm,
            "input_mode": config.model.input_mode, **({"model": label} if label else {}),
        },
    }
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    write_neighbours(out / "neighbours.csv", query_records, gallery_records, ranked)
    plot_retrieval(query_records, gallery_records, ranked, source, out / "plots" / "retrieval.png",
                   title="  ".join(f"top-{k} {metrics[f'top{k}']:.1f}%"
                                   for k in sorted(topk) if k in (1, 5)))
    return metrics


def write_neighbours(path: Path, queries, gallery, ranked: torch.Tensor) -> None:
    """One CSV row per query: its key and class, then its ranked gallery videos' keys."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["query", "query_class", *(f"rank{r + 1}" for r in range(ranked.shape[1]))])
    classes = getattr(queries, "classes", None)
    for query, ranked_row in zip(queries, ranked.tolist(), strict=True):
        name = classes[query.label] if classes and query.label >= 0 else str(query.label)
        writer.writerow([query.key, name, *(gallery[g].key for g in ranked_row)])
    atomic_write_text(path, buffer.getvalue())


def retrieve(ckpt: Path, *, out: Path, topk: Sequence[int] = DEFAULT_TOPK,
             pooling: str = "maxpool", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`retrieval_metrics` for the backbone of any checkpoint (features cached)."""
    task = load_task(ckpt)
    config = evaluation_config(task, overrides, ckpt)
    return retrieval_metrics(task.backbone, config, out=out, topk=topk, pooling=pooling,
                             num_clips=config.clip.test_clips,
                             cache=FeatureCache(Path(out) / "features"),
                             label=str(ckpt))
