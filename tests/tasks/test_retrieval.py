"""Retrieval ranking and top-k on hand-made features with known answers."""

import torch

from playspeed.tasks.retrieval import rank_gallery, topk_accuracy


def test_rank_gallery_orders_by_cosine_similarity():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    queries = torch.tensor([[2.0, 0.1], [0.0, 3.0]])  # scale must not matter
    assert rank_gallery(queries, gallery, k=4).tolist() == [[0, 2, 1, 3], [1, 2, 0, 3]]


def test_ties_rank_the_earlier_gallery_video_first():
    gallery = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    queries = torch.tensor([[1.0, 0.0]])
    # Four gallery rows tie exactly; which enter the top 2 is fixed by gallery order.
    assert rank_gallery(queries, gallery, k=2).tolist() == [[1, 2]]
    assert rank_gallery(queries, gallery, k=5).tolist() == [[1, 2, 3, 4, 0]]


def test_topk_accuracy_counts_first_hit_within_k():
    ranked = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 2, 0]])
    gallery_labels = torch.tensor([0, 1, 2])
    query_labels = torch.tensor([0, 0, 2])
    metrics = topk_accuracy(ranked, query_labels, gallery_labels, ks=(1, 2, 3))
    assert metrics == {"top1": 100 / 3, "top2": 200 / 3, "top3": 100.0}


def test_class_absent_from_gallery_never_hits_but_counts():
    gallery = torch.eye(3)
    gallery_labels = torch.tensor([0, 1, 1])
    queries = torch.eye(3)
    query_labels = torch.tensor([0, 1, 7])  # class 7 has no gallery video
    ranked = rank_gallery(queries, gallery, k=3)
    metrics = topk_accuracy(ranked, query_labels, gallery_labels, ks=(1, 3))
    assert metrics["top1"] == 200 / 3 and metrics["top3"] == 200 / 3


def test_k_larger_than_gallery_and_chunking_agree():
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(37, 8, generator=generator)
    gallery = torch.randn(11, 8, generator=generator)
    whole = rank_gallery(queries, gallery, k=50)
    chunked = rank_gallery(queries, gallery, k=50, chunk=5)
    assert whole.shape == (37, 11) and torch.equal(whole, chunked)
    expected = (torch.nn.functional.normalize(queries, dim=1)
                @ torch.nn.functional.normalize(gallery, dim=1).T).argsort(1, descending=True)
    assert torch.equal(whole[:, 0], expected[:, 0])
