"""Retrieval ranking and top-k on hand-made features with known answers, and retrieval end
to end on the tiny synthetic set, every file it writes written whole."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from playspeed.cli import main
from playspeed.tasks.metrics import topk_accuracy
from playspeed.tasks.retrieval import rank_gallery, retrieve


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


def _reference_ranking(queries, gallery, k):
    """Sort every gallery index by (-similarity, index): the documented order, naively."""
    similarity = (F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T).tolist()
    return [sorted(range(len(row)), key=lambda j, row=row: (-row[j], j))[:k]
            for row in similarity]


@pytest.mark.parametrize("k", [1, 3, 7, 40, 100])
@pytest.mark.parametrize("chunk", [1, 7, 2048])
def test_many_exact_ties_match_a_naive_stable_sort(k, chunk):
    # One-hot gallery rows repeat a few directions, so most similarities tie exactly
    # (every dot product has one non-zero term: exact whatever the summation order).
    generator = torch.Generator().manual_seed(1)
    gallery = F.one_hot(torch.randint(0, 6, (40,), generator=generator), 6).float()
    gallery *= torch.randint(1, 4, (40, 1), generator=generator)  # scale must not matter
    queries = torch.randn(25, 6, generator=generator)
    queries[:3] = torch.tensor([1.0, 1, 0, 0, 0, 0])  # ties between two directions
    queries[3] = 0  # a zero query: similarity 0 to everything, gallery order
    ranked = rank_gallery(queries, gallery, k=k, chunk=chunk)
    assert ranked.tolist() == _reference_ranking(queries, gallery, min(k, 40))


def test_random_features_match_a_full_sort():
    generator = torch.Generator().manual_seed(0)
    queries, gallery = torch.randn(300, 32, generator=generator), torch.randn(500, 32,
                                                                               generator=generator)
    ranked = rank_gallery(queries, gallery, k=50, chunk=64)
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T
    expected = similarity.sort(dim=1, descending=True, stable=True).indices[:, :50]
    assert torch.equal(ranked, expected)


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
    # top-50 of an 11-video gallery: every query hits at 50 when its class is anywhere.
    metrics = topk_accuracy(whole, torch.zeros(37, dtype=torch.long),
                            torch.tensor([1] * 10 + [0]), ks=(1, 50))
    assert metrics["top50"] == 100.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="k must be"):
        rank_gallery(torch.ones(2, 3), torch.ones(4, 3), k=0)
    with pytest.raises(ValueError, match="NaN"):
        rank_gallery(torch.tensor([[float("nan"), 1.0]]), torch.ones(4, 2), k=1)
    with pytest.raises(ValueError, match="Q x F"):
        rank_gallery(torch.ones(2, 3), torch.ones(4, 2), k=1)


# --- end to end on the tiny synthetic set ---


def test_retrieve_end_to_end_keeps_every_video(tiny_pretrain_ckpt, tmp_path,
                                               renamed_into_place):
    # batch size 2: the 9 training and 3 test videos both end in a partial batch.
    out = tmp_path / "retrieval"
    metrics = retrieve(tiny_pretrain_ckpt, out=out, overrides=["optim.batch_size=2"])
    stored = json.loads((out / "metrics.json").read_text())
    ks = (1, 5, 10, 20, 50)
    assert set(stored) == {*(f"top{k}" for k in ks), *(f"chance_top{k}" for k in ks),
                           "num_videos", "protocol"}
    assert stored == json.loads(json.dumps(metrics))
    assert stored["num_videos"] == 3
    # A random ranking of 3 videos per class in a gallery of 9: a hit at rank 1 with
    # probability 3/9; a miss in the top 5 only if all 5 come from the other 6 videos.
    assert stored["chance_top1"] == pytest.approx(100 / 3)
    assert stored["chance_top5"] == pytest.approx(100 * (1 - 6 / 126))
    assert stored["chance_top10"] == stored["chance_top50"] == 100.0
    assert all(0 <= stored[f"top{k}"] <= 100 for k in (1, 5, 10, 20, 50))
    assert stored["top50"] == 100.0  # the whole 9-video gallery holds every class
    with open(out / "neighbours.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert all(len([key for key in row if key.startswith("rank")]) == 9 for row in rows)
    assert all(len({row[f"rank{r}"] for r in range(1, 10)}) == 9 for row in rows)
    # The CSV and the metrics agree: top-1 is the share of rank-1 videos of the query's class.
    hits = [row["rank1"].split("/")[0] == row["query_class"] for row in rows]
    assert stored["top1"] == pytest.approx(100 * sum(hits) / 3)
    assert (out / "plots" / "retrieval.png").stat().st_size > 0
    assert len(list((out / "features").glob("*.npz"))) == 2  # gallery and queries
    # Every file arrived whole, renamed into place: metrics, neighbours, plot, feature cache.
    assert {path for path in out.rglob("*") if path.is_file()} == set(renamed_into_place)


def test_retrieve_command(tiny_pretrain_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["retrieve", "--ckpt", str(tiny_pretrain_ckpt), "--topk", "10,5", "--out",
                 str(out)]) == 0  # no top-1 asked: the plot's title must not need it
    printed = capsys.readouterr().out
    assert "top-5" in printed and "top-10" in printed and "(3 queries)" in printed
    assert "(chance 95.2%)" in printed  # top-5 of a random ranking, beside the reading
    assert set(json.loads((out / "metrics.json").read_text())) == {
        "top5", "top10", "chance_top5", "chance_top10", "num_videos", "protocol"}
    with open(out / "neighbours.csv", newline="") as handle:
        assert len(next(csv.reader(handle))) == 2 + 9  # k=10 > the 9 gallery videos


@pytest.mark.parametrize("argv, message", [
    (["--ckpt", "{tmp}/missing.ckpt"], "no such checkpoint"),
    (["--ckpt", "{ckpt}", "--topk", "1,x"], "--topk"),
    (["--ckpt", "{ckpt}", "--topk", "0,5"], "--topk"),
    (["--ckpt", "{ckpt}", "data.videos={tmp}/nowhere"], "nowhere"),
])
def test_retrieve_command_errors(tiny_pretrain_ckpt, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, ckpt=tiny_pretrain_ckpt) for a in argv]
    assert main(["retrieve", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_a_tie_decides_the_hit_by_gallery_order():
    # Gallery videos 0 (class 1) and 1 (class 0) are equally similar to the query (class 0):
    # the earlier one ranks first, so the query misses at 1 and hits at 2.
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranked = rank_gallery(torch.tensor([[1.0, 0.0]]), gallery, k=3)
    metrics = topk_accuracy(ranked, torch.tensor([0]), torch.tensor([1, 0, 0]), ks=(1, 2))
    assert metrics == {"top1": 0.0, "top2": 100.0}


def test_class_absent_from_gallery_never_hits_but_counts():
    gallery = torch.eye(3)
    gallery_labels = torch.tensor([0, 1, 1])
    queries = torch.eye(3)
    query_labels = torch.tensor([0, 1, 7])  # class 7 has no gallery video
    ranked = rank_gallery(queries, gallery, k=3)
    metrics = topk_accuracy(ranked, query_labels, gallery_labels, ks=(1, 3))
    assert metrics["top1"] == 200 / 3 and metrics["top3"] == 200 / 3
