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

import torch
import torch.nn.functional as F

from playspeed.tasks.evaluation import percent

DEFAULT_TOPK = (1, 5, 10, 20, 50)
# Exact tie-breaking subtracts index * 2^-45 in float64: below the float32 resolution of
# cosine similarities (>= 2^-24 apart) for galleries of up to 2^20 videos.
_TIE_STEP = 2.0**-45


def clip_feature(backbone: torch.nn.Module, clips: torch.Tensor, *, pooling: str = "maxpool"
                 ) -> torch.Tensor:
    """Clips ``B x C x T x H x W`` -> retrieval features ``B x F``.

    ``maxpool``: the last conv block's map max-pooled over ``(1, 2, 2)`` and flattened
    (the field's protocol); ``pooled``: the backbone's globally pooled vector.
    """
    if pooling == "pooled":
        return backbone(clips)
    feature_map = backbone.forward_features(clips)
    return F.max_pool3d(feature_map, kernel_size=(1, 2, 2), ceil_mode=True).flatten(1)


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
