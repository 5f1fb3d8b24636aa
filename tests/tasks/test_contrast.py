"""Instance discrimination of speed_contrast: which keys are positives and negatives, the
queue, the momentum update, InfoNCE, keys in shuffled sub-batches, the loss falling, and the
checkpointed task state."""

import math

import pytest
import torch
from torch import nn

from playspeed.tasks.checkpoints import load_backbone_weights
from playspeed.tasks.contrast import (
    KeyQueue,
    MomentumContrast,
    info_nce,
    momentum_update,
    pair_masks,
    same_video_top1,
    shuffle_motion,
    shuffled_keys,
)
from playspeed.tasks.data import build_source, load_records, pretext_dataset
from playspeed.tasks.pretext import PlaybackSpeedPretraining
from playspeed.tasks.registry import load_task

# --- positives and negatives ---


def test_pair_masks_for_a_batch():
    # 2 samples (videos 7 and 3) x 3 clips; sample 0's clips went to sub-batches 0, 1, 2,
    # sample 1's to 2, 0, 1. Queue: an empty slot, a key of video 3, one of video 9.
    groups = torch.tensor([[0, 1, 2], [2, 0, 1]])
    positive, negative = pair_masks(torch.tensor([7, 3]), groups, torch.tensor([-1, 3, 9]))
    assert positive.shape == negative.shape == (6, 6 + 3)
    # clip 0 of video 7 (sub-batch 0): positives its video's other clips; negatives video 3's
    # clips outside sub-batch 0 (clips 3 and 5; clip 4 shares the query's sub-batch); the
    # queue's video-3 and video-9 keys, not the empty slot.
    assert positive[0].nonzero().flatten().tolist() == [1, 2]
    assert negative[0].nonzero().flatten().tolist() == [3, 5, 7, 8]
    # clip 4 of video 3 (sub-batch 0): the queue's video-3 key is its own video's: masked
    assert positive[4].nonzero().flatten().tolist() == [3, 5]
    assert negative[4].nonzero().flatten().tolist() == [1, 2, 8]
    # nothing is both; no query is its own key; no queue key is a positive; every key of the
    # query's own sub-batch is neither
    assert not (positive & negative).any()
    assert not positive.diagonal().any() and not negative.diagonal().any()
    assert not positive[:, 6:].any()
    same_group = groups.flatten()[:, None] == groups.flatten()[None, :]
    assert not (positive[:, :6] | negative[:, :6])[same_group].any()


def test_a_video_twice_in_the_batch_is_never_its_own_negative():
    groups = torch.tensor([[0, 1], [1, 0], [0, 1]])
    positive, negative = pair_masks(torch.tensor([5, 5, 6]), groups,
                                    torch.full((0,), -1, dtype=torch.int64))
    videos = torch.tensor([5, 5, 5, 5, 6, 6])
    same_video = videos[:, None] == videos[None, :]
    assert not negative[same_video].any()
    assert positive[0].nonzero().flatten().tolist() == [1, 2]  # clip 3 shares its sub-batch


def test_with_reversed_negatives_a_clip_of_its_video_played_the_other_way_is_a_negative():
    # the groups and queue of test_pair_masks_for_a_batch; video 7's clips play +1, -1, +1,
    # video 3's -1, -1, +1
    groups = torch.tensor([[0, 1, 2], [2, 0, 1]])
    directions = torch.tensor([[1, -1, 1], [-1, -1, 1]])
    videos, queue = torch.tensor([7, 3]), torch.tensor([-1, 3, 9])
    positive, negative = pair_masks(videos, groups, queue, directions=directions)
    # clip 0 (+1): clip 2 (+1) stays a positive, clip 1 (-1) becomes a negative; the other
    # video's clips and the queue as before
    assert positive[0].nonzero().flatten().tolist() == [2]
    assert negative[0].nonzero().flatten().tolist() == [1, 3, 5, 7, 8]
    # clip 4 of video 3 (-1, sub-batch 0): clip 3 (-1) a positive, clip 5 (+1) a negative;
    # the queue's video-3 key stays masked (its direction is not stored)
    assert positive[4].nonzero().flatten().tolist() == [3]
    assert negative[4].nonzero().flatten().tolist() == [1, 2, 5, 8]
    # the same keys are excluded as without directions: only same-video keys change sides
    plain_positive, plain_negative = pair_masks(videos, groups, queue)
    assert torch.equal(positive | negative, plain_positive | plain_negative)
    assert not (positive & negative).any()
    # all clips one way: the masks without directions
    same_way = pair_masks(videos, groups, queue, directions=torch.ones(2, 3, dtype=torch.int64))
    assert torch.equal(same_way[0], plain_positive) and torch.equal(same_way[1], plain_negative)


def test_shuffled_motion_keys_are_negatives_outside_the_querys_sub_batch():
    groups = torch.tensor([[0, 1, 2], [2, 0, 1]])
    videos, queue = torch.tensor([7, 3]), torch.tensor([-1, 3, 9])
    positive, negative = pair_masks(videos, groups, queue, shuffled=True)
    plain_positive, plain_negative = pair_masks(videos, groups, queue)
    assert positive.shape == (6, 6 + 6 + 3)
    # batch keys and queue as without; the shuffled keys in between
    assert torch.equal(positive[:, :6], plain_positive[:, :6])
    assert torch.equal(negative[:, :6], plain_negative[:, :6])
    assert torch.equal(negative[:, 12:], plain_negative[:, 6:])
    assert not positive[:, 6:].any()
    # clip 0 (sub-batch 0): every shuffled key but those of sub-batch 0 (its own, clip 4's)
    assert negative[0, 6:12].nonzero().flatten().tolist() == [1, 2, 3, 5]
    same_group = groups.flatten()[:, None] == groups.flatten()[None, :]
    assert torch.equal(negative[:, 6:12], ~same_group)


def test_shuffle_motion_reorders_each_clips_frame_changes():
    torch.manual_seed(0)
    clips = torch.randn(4, 3, 6, 5, 5)
    shuffled = shuffle_motion(clips)
    assert shuffled.shape == clips.shape
    torch.testing.assert_close(shuffled[:, :, 0], clips[:, :, 0])
    changes = clips[:, :, 1:] - clips[:, :, :-1]
    new_changes = shuffled[:, :, 1:] - shuffled[:, :, :-1]
    for clip, new_clip in zip(changes, new_changes, strict=True):
        # every new change is one of the clip's, each used once, in another order
        match = [min(range(5), key=lambda i, c=c: (clip[:, i] - c).abs().max().item())
                 for c in new_clip.unbind(1)]
        assert sorted(match) == list(range(5)) and match != list(range(5))
        torch.testing.assert_close(new_clip, clip[:, match], atol=1e-5, rtol=0)
    # two changes have one other order: always the one taken
    two = torch.randn(3, 1, 3, 2, 2)
    flipped = shuffle_motion(two)
    torch.testing.assert_close(flipped[:, :, 1] - flipped[:, :, 0], two[:, :, 2] - two[:, :, 1])
    with pytest.raises(ValueError, match="2 frames has no other order"):
        shuffle_motion(torch.randn(1, 3, 2, 2, 2))


# --- the queue ---


def test_queue_is_first_in_first_out_and_wraps_around_with_the_video_indices():
    queue = KeyQueue(5, 2)
    assert queue.videos.tolist() == [-1] * 5 and int(queue.pointer) == 0  # empty slots

    def keys(*values):
        return torch.tensor([[float(v), -float(v)] for v in values])

    queue.push(keys(1, 2, 3), torch.tensor([10, 20, 30]))
    assert queue.videos.tolist() == [10, 20, 30, -1, -1] and int(queue.pointer) == 3
    queue.push(keys(4, 5, 6), torch.tensor([40, 50, 60]))  # 6 overwrites the oldest, 1
    assert queue.keys[:, 0].tolist() == [6, 2, 3, 4, 5]
    assert queue.videos.tolist() == [60, 20, 30, 40, 50] and int(queue.pointer) == 1
    queue.push(keys(*range(7, 14)), torch.arange(70, 140, 10))  # more than fit: the last 5
    assert sorted(queue.keys[:, 0].tolist()) == [9, 10, 11, 12, 13]
    assert queue.keys[:, 1].tolist() == (-queue.keys[:, 0]).tolist()  # rows stay whole
    assert queue.videos.tolist() == [int(k) * 10 for k in queue.keys[:, 0].tolist()]
    assert int(queue.pointer) == (1 + 5) % 5
    empty = KeyQueue(0, 2)
    empty.push(keys(1), torch.tensor([1]))
    assert empty.keys.shape == (0, 2)


def test_a_pushed_key_of_the_querys_video_is_masked_next_step():
    queue = KeyQueue(4, 2)
    queue.push(torch.randn(2, 2), torch.tensor([1, 2]))
    _, negative = pair_masks(torch.tensor([1, 3]), torch.tensor([[0, 1], [1, 0]]), queue.videos)
    queue_part = negative[:, 4:]
    # video 1's clips: only video 2's queued key; video 3's clips: both queued keys
    assert queue_part.tolist() == [[False, True, False, False]] * 2 + [[True, True, False,
                                                                        False]] * 2


# --- momentum update ---


def test_momentum_update_moves_keys_towards_the_online_weights_at_the_configured_rate():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    momentum_update(target, online, momentum=0.9)
    for new, old, query in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * query.detach())
    gap = (target.weight - online.weight).abs().sum().item()
    for _ in range(10):
        momentum_update(target, online, momentum=0.9)
    assert (target.weight - online.weight).abs().sum().item() == pytest.approx(
        gap * 0.9 ** 10, rel=1e-4)
    momentum_update(target, online, momentum=0.0)
    torch.testing.assert_close(target.weight, online.weight)


class _Encoder(nn.Module):
    """A tiny backbone with BatchNorm: clips ``B x C x T x H x W`` -> ``B x 6``."""

    feature_dim = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 3, padding=1)
        self.norm = nn.BatchNorm3d(6)

    def forward(self, clips):
        return torch.relu(self.norm(self.conv(clips))).mean(dim=(2, 3, 4))


def test_no_gradient_reaches_the_key_encoder_and_it_follows_the_online_one():
    torch.manual_seed(0)
    backbone = _Encoder()
    contrast = MomentumContrast(backbone, feature_dim=6, dim=4, queue=8, momentum=0.5)
    torch.testing.assert_close(contrast.key_backbone.conv.weight, backbone.conv.weight)
    with torch.no_grad():
        backbone.conv.weight.add_(1.0)  # as an optimiser step would
    clips = torch.randn(3, 2, 3, 4, 6, 6)
    before = contrast.key_backbone.conv.weight.detach().clone()
    reading = contrast(backbone(clips.flatten(0, 1)), clips, torch.tensor([0, 1, 2]),
                       directions=torch.ones(3, 2, dtype=torch.int64), backbone=backbone)
    reading.loss.backward()
    torch.testing.assert_close(contrast.key_backbone.conv.weight,
                               0.5 * before + 0.5 * backbone.conv.weight.detach())
    keys = [*contrast.key_backbone.parameters(), *contrast.key_projection.parameters()]
    assert all(not p.requires_grad and p.grad is None for p in keys)
    assert backbone.conv.weight.grad.abs().sum() > 0  # the queries carry the gradient
    assert contrast.projection.mlp[0].weight.grad.abs().sum() > 0
    assert contrast.queue.videos.tolist() == [0, 0, 1, 1, 2, 2, -1, -1]


# --- InfoNCE ---


def test_info_nce_scores_each_positive_against_the_querys_negatives():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    keys = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    positive = torch.tensor([[True, False, True, False], [False, False, False, True]])
    negative = torch.tensor([[False, True, False, False], [True, False, True, False]])
    reading = info_nce(queries, keys, positive=positive, negative=negative, temperature=0.5)
    # pairs (0, 0), (0, 2), (1, 3): each positive against its query's negatives only
    logits = queries @ keys.t() / 0.5
    expected = [-math.log(math.exp(logits[q, k]) / (math.exp(logits[q, k]) + sum(
        math.exp(logits[q, n]) for n in negative[q].nonzero().flatten().tolist())))
        for q, k in ((0, 0), (0, 2), (1, 3))]
    assert reading.loss.item() == pytest.approx(sum(expected) / 3, rel=1e-5)
    # query 0's negative (key 1) equals it: both positives lose; query 1's positive wins
    assert reading.hits.tolist() == [False, False, True]
    assert reading.chance.tolist() == pytest.approx([1 / 2, 1 / 2, 1 / 3])


def test_info_nce_without_any_negative_is_zero_and_needs_a_positive():
    queries, keys = torch.eye(2), torch.eye(2)
    reading = info_nce(queries, keys, positive=torch.eye(2, dtype=torch.bool),
                       negative=torch.zeros(2, 2, dtype=torch.bool), temperature=0.1)
    assert reading.loss.item() == pytest.approx(0.0, abs=1e-6)
    assert reading.hits.all() and reading.chance.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="no positive pair"):
        info_nce(queries, keys, positive=torch.zeros(2, 2, dtype=torch.bool),
                 negative=torch.ones(2, 2, dtype=torch.bool), temperature=0.1)


# --- keys in shuffled sub-batches ---


def test_shuffled_keys_are_put_back_in_order():
    torch.manual_seed(1)
    encoder = _Encoder()
    clips = torch.randn(4, 3, 3, 4, 6, 6)
    with torch.no_grad():
        encoder.train()
        for _ in range(3):  # running statistics away from their start
            encoder(clips.flatten(0, 1) * 2 + 1)
        encoder.eval()  # no batch statistics: sub-batches cannot change a key
        keys, groups = shuffled_keys(encoder, clips, generator=torch.Generator().manual_seed(0))
        plain = encoder(clips.flatten(0, 1)).view(4, 3, -1)
    torch.testing.assert_close(keys, plain)
    # every sample's clips spread over the sub-batches, one each
    assert sorted(groups.flatten().tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert all(sorted(row) == [0, 1, 2] for row in groups.tolist())
    orders = {tuple(shuffled_keys(encoder, clips,
                                  generator=torch.Generator().manual_seed(seed))[1].flatten()
                    .tolist()) for seed in range(6)}
    assert len(orders) > 1  # drawn, not fixed


def test_in_training_each_sub_batch_uses_its_own_statistics():
    torch.manual_seed(2)
    encoder = _Encoder().train()
    clips = torch.randn(4, 3, 3, 4, 6, 6)
    with torch.no_grad():
        keys, groups = shuffled_keys(encoder, clips, generator=torch.Generator().manual_seed(3))
        for group in range(3):
            sample, clip = (groups == group).nonzero(as_tuple=True)
            torch.testing.assert_close(keys[sample, clip], encoder(clips[sample, clip]))
        whole = encoder(clips.flatten(0, 1)).view(4, 3, -1)
    assert not torch.allclose(keys, whole)  # not one pass over the whole batch


def test_statistics_alone_cannot_single_out_a_positive():
    """A key encoder that reads nothing but its sub-batch's statistics (the mean clip), and a
    query that knows its own clip: the keys of the query's own sub-batch would stand out
    (their statistics hold the query's clip), and they are masked; every key left gives the
    positive an identical negative twin, so the positive never wins."""
    torch.manual_seed(3)
    batch, num_clips, dim = 5, 3, 512
    clips = torch.randn(batch, num_clips, dim)  # same-video clips unrelated: content says nothing

    def statistics_only(sub_batch):
        return sub_batch.mean(dim=0, keepdim=True).expand_as(sub_batch)

    keys, groups = shuffled_keys(statistics_only, clips)
    keys, queries = keys.flatten(0, 1), clips.flatten(0, 1)
    positive, negative = pair_masks(torch.arange(batch), groups,
                                    torch.full((0,), -1, dtype=torch.int64))
    score = queries @ keys.t()
    own = groups.flatten()[:, None] == groups.flatten()[None, :]
    for query in range(batch * num_clips):
        assert score[query][own[query]].min() > score[query][~own[query]].max()
        assert not (positive[query] | negative[query])[own[query]].any()
        for key in positive[query].nonzero().flatten().tolist():
            twins = (keys == keys[key]).all(dim=1) & negative[query]
            assert twins.any()
    reading = info_nce(nn.functional.normalize(queries, dim=1),
                       nn.functional.normalize(keys, dim=1), positive=positive,
                       negative=negative, temperature=0.07)
    assert not reading.hits.any()


# --- held-out reading ---


def test_same_video_top1_and_its_chance():
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.6, 0.8]])
    videos = torch.tensor([0, 0, 1, 2, 1])  # item 3, alone in video 2, is left out
    accuracy, chance = same_video_top1(embeddings, videos)
    # items 0 and 1 find each other; items 2 and 4 (video 1) both find item 3 nearest
    assert accuracy == pytest.approx(50.0)
    assert chance == pytest.approx(25.0)  # 1 of the 4 others is of the item's video
    assert all(math.isnan(v) for v in same_video_top1(embeddings, torch.arange(5)))


# --- in the task ---


def _fixed_batch(config, size=4):
    dataset = pretext_dataset(config, load_records(config, "train"), build_source(config))
    items = [dataset[i] for i in range(size)]
    return {key: torch.stack([item[key] for item in items])
            for key in ("clips", "target", "video_index", "direction")}


@pytest.mark.slow
@pytest.mark.parametrize("reversed_clips, shuffled", [("positive", False), ("negative", False),
                                                      ("positive", True)])
def test_the_contrastive_loss_falls_on_a_fixed_batch(tiny_config, reversed_clips, shuffled):
    torch.manual_seed(0)
    config = tiny_config("pretrain", "pretext.objective=speed_contrast",
                         "pretext.contrast_queue=16", "pretext.contrast_momentum=0.9",
                         f"pretext.contrast_reversed={reversed_clips}",
                         f"pretext.contrast_shuffled={str(shuffled).lower()}")
    task = PlaybackSpeedPretraining(config).train()
    assert task.contrast.reversed_negative == (reversed_clips == "negative")
    assert task.contrast.shuffled_negative == shuffled
    batch = _fixed_batch(config)
    optimizer = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=3e-3)
    losses, accuracy = [], []
    for _ in range(30):
        clips = batch["clips"]
        features = task.embed(clips.flatten(0, 1))
        reading = task.contrast(features, clips, batch["video_index"],
                                directions=batch["direction"], backbone=task.backbone)
        optimizer.zero_grad()
        reading.loss.backward()
        optimizer.step()
        losses.append(reading.loss.item())
        accuracy.append(reading.hits.float().mean().item())
    # 4 videos x 3 clips: 6 batch negatives per query at first, 16 queued keys later
    assert losses[0] > 0.8 * math.log(1 + 6)
    assert sum(losses[-5:]) / 5 < 0.3 * losses[0]
    assert sum(accuracy[-5:]) / 5 > 0.9


def test_checkpoints_carry_the_key_encoder_and_queue_and_serve_only_the_online_backbone(
        tiny_config, tmp_path, untrained_checkpoint):
    config = tiny_config("pretrain", "pretext.objective=speed_contrast",
                         "pretext.contrast_queue=8")
    batch = _fixed_batch(config, size=2)

    def one_step(task):
        with torch.no_grad():
            for param in task.backbone.parameters():  # the online weights move away
                param.add_(0.01)
            clips = batch["clips"]
            task.contrast(task.embed(clips.flatten(0, 1)), clips, batch["video_index"],
                          directions=batch["direction"], backbone=task.backbone)
        state.update(task.state_dict())

    state = {}
    path = untrained_checkpoint(config, tmp_path / "pre.ckpt", change=one_step)
    assert {"contrast.queue.keys", "contrast.queue.videos", "contrast.queue.pointer",
            "contrast.key_projection.mlp.0.weight"} <= set(state)
    assert state["contrast.queue.videos"].tolist()[:6] == \
        batch["video_index"].repeat_interleave(3).tolist()
    task = load_task(path)
    for key, value in task.state_dict().items():
        torch.testing.assert_close(value, state[key], msg=key)
    weights, _ = load_backbone_weights(path)
    assert weights.keys() == task.backbone.state_dict().keys()
    for key, value in weights.items():
        torch.testing.assert_close(value, state[f"backbone.{key}"])
    # the key encoder lags the online one: a loader taking it would give other weights
    assert not torch.equal(state["contrast.key_backbone.stem.0.weight"],
                           state["backbone.stem.0.weight"])
