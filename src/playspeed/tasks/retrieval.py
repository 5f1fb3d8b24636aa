"""Nearest-neighbour video retrieval (METHOD.md §6) as batched matrix products.

Protocol: each video's feature is the mean over its evenly spaced clips of the backbone's
clip feature (by default the last conv block max-pooled ``(1, 2, 2)`` and flattened);
features are L2-normalised so a matrix product gives cosine similarity; test videos query
the training gallery; a query is a hit at ``k`` when one of its ``k`` most similar gallery
videos has its class. Ties in similarity rank the earlier gallery video first, so results
never depend on the sort implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from playspeed.config import Config, override_config
from playspeed.io import atomic_write_text, write_json
from playspeed.tasks.evaluation import percent
from playspeed.tasks.features import FeatureCache, cached_video_features

DEFAULT_TOPK = (1, 5, 10, 20, 50)
# Exact tie-breaking subtracts index * 2^-45 in float64: below the float32 resolution of
# cosine similarities (>= 2^-24 apart) for galleries of up to 2^20 videos.
_TIE_STEP = 2.0**-45


def rank_gallery(queries: torch.Tensor, gallery: torch.Tensor, *, k: int,
                 chunk: int = 2048) -> torch.Tensor:
    """Indices ``Q x k`` of each query's ``k`` most cosine-similar gallery rows, best first.

    ``queries`` ``Q x F`` and ``gallery`` ``G x F`` need not be normalised. Computed in
    chunks of queries so memory stays ``chunk x G``.
    """
    k = min(k, gallery.shape[0])
    queries = F.normalize(queries.float(), dim=1)
    gallery = F.normalize(gallery.float(), dim=1)
    ranked = [_top_k_rows(queries[start:start + chunk] @ gallery.T, k)
              for start in range(0, queries.shape[0], chunk)]
    return torch.cat(ranked) if ranked else torch.empty(0, k, dtype=torch.long)


def _top_k_rows(similarity: torch.Tensor, k: int) -> torch.Tensor:
    """Row-wise top-k of ``similarity`` with ties ranked by lower column index."""
    values, indices = similarity.topk(k, dim=1)
    # Rows where more than k entries reach the k-th value: which tied entries topk kept is
    # unspecified, so those (rare) rows are ranked exactly with an index-based tie-breaker.
    tied = ((similarity >= values[:, -1:]).sum(1) > k).nonzero().flatten()
    if len(tied):
        tie_break = torch.arange(similarity.shape[1], dtype=torch.float64) * _TIE_STEP
        exact = (similarity[tied].double() - tie_break).topk(k, dim=1).indices
        indices[tied] = exact
        values[tied] = similarity[tied].gather(1, exact)
    # Within the k, equal values go in index order: sort by index, then stably by value.
    indices, by_index = indices.sort(dim=1)
    order = values.gather(1, by_index).sort(dim=1, descending=True, stable=True).indices
    return indices.gather(1, order)


def topk_accuracy(ranked: torch.Tensor, query_labels: torch.Tensor,
                  gallery_labels: torch.Tensor, ks: Sequence[int] = DEFAULT_TOPK
                  ) -> dict[str, float]:
    """``top{k}``: percent of queries with a same-class video among their first ``k``."""
    matches = gallery_labels[ranked] == query_labels[:, None]  # Q x K
    first_hit = torch.where(matches.any(1), matches.float().argmax(1),
                            torch.full_like(query_labels, ranked.shape[1]))
    return {f"top{k}": percent(first_hit < k) for k in ks}


def retrieval_metrics(backbone: torch.nn.Module, config: Config, *, out: Path,
                      topk: Sequence[int] = DEFAULT_TOPK, pooling: str = "maxpool",
                      num_clips: int = 10, cache: FeatureCache | None = None,
                      label: str = "") -> dict[str, Any]:
    """Test videos query the training gallery of the configured split.

    Writes ``metrics.json``, ``neighbours.csv`` (every query's ranked gallery videos) and
    ``plots/retrieval.png`` (a few queries with their top-5, framed green on a class hit).
    """
    from playspeed.report import plot_retrieval
    from playspeed.tasks.data import build_source, load_records

    source = build_source(config)
    gallery_records, query_records = load_records(config, "train"), load_records(config, "test")

    def features(records):
        return cached_video_features(backbone, records, source, config, num_clips=num_clips,
                                     pooling=pooling, cache=cache)

    gallery, gallery_labels = features(gallery_records)
    queries, query_labels = features(query_records)
    ranked = rank_gallery(queries, gallery, k=max(topk))
    metrics: dict[str, Any] = topk_accuracy(ranked, query_labels, gallery_labels, topk)
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
            "fine_tuned": False, **({"model": label} if label else {}),
        },
    }
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    header = "query,query_class," + ",".join(f"rank{r + 1}" for r in range(ranked.shape[1]))
    classes = gallery_records.classes
    rows = [header] + [
        f"{query.key},{classes[query.label]},"
        + ",".join(gallery_records[int(g)].key for g in ranked_row)
        for query, ranked_row in zip(query_records, ranked.tolist(), strict=True)]
    atomic_write_text(out / "neighbours.csv", "\n".join(rows) + "\n")
    plot_retrieval(query_records, gallery_records, ranked, source, out / "plots" / "retrieval.png",
                   title=f"top-1 {metrics['top1']:.1f}%  top-5 {metrics['top5']:.1f}%"
                   if 5 in topk else "")
    return metrics


def retrieve(ckpt: Path, *, out: Path, topk: Sequence[int] = DEFAULT_TOPK,
             pooling: str = "maxpool", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`retrieval_metrics` for the backbone of any checkpoint (features cached)."""
    from playspeed.tasks.checkpoints import load_task

    task = load_task(ckpt)
    config = override_config(task.config, list(overrides))
    return retrieval_metrics(task.backbone, config, out=out, topk=topk, pooling=pooling,
                             num_clips=config.clip.test_clips,
                             cache=FeatureCache(Path(out) / "features"),
                             label=str(ckpt))
