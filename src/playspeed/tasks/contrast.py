"""Instance discrimination across videos with a momentum queue (the ``speed_contrast``
objective, :mod:`playspeed.objectives`).

Each clip of a pretext sample (``num_clips`` clips of one video, distinct signed speeds, own
starts and crops) is a query; the other clips of its video are its positives (RSPNet's A-VID
takes clips of one video at different speeds as positives), clips of other videos its
negatives. With ``pretext.contrast_reversed: negative`` only the clips of its video played
the same way are positives, and those played the other way are negatives: they share the
query's look and differ only in the direction of its motion. With
``pretext.contrast_shuffled`` each clip also gives a negative with its motion shuffled (its
frame-to-frame changes in a random order, IIC's intra-video negative): the same look and the
same changes, without their order. Keys come from a momentum copy of the backbone and
projection head (MoCo): the batch's own keys, plus a queue of keys from earlier steps, each
stored with its video's index.

- Masks: a queue entry of the query's own video is never a negative. MoCo did not need this:
  its 65536-key queue is 5% of ImageNet and each image comes once per epoch, so the queue
  almost never holds the query's own image; our training sets of a few hundred videos give a
  few hundred keys per epoch, so the queue holds every video several times.
- Shuffled statistics: BN and TGN normalise with the statistics of the batch they see, so a
  key encoder could tell a query's positive by statistics shared with the query rather than by
  content (MoCo's shuffle BN). On one process the keys are computed in ``N`` sub-batches, each
  holding exactly one clip of every video (a random permutation of each sample's clips), then
  put back in order (:func:`shuffled_keys`); keys computed in the query's own sub-batch are
  masked. Every candidate key of a query is then computed among statistics that hold one clip
  of the query's video and never the query's clip itself, and the positive shares its
  statistics with the negatives of its sub-batch: statistics alone cannot single it out.
- Loss: one InfoNCE term per (query, positive) pair over ``[positive, negatives]`` (RSPNet's
  form for several positives: the other positives are in neither term), averaged over pairs.
- Several processes (DDP): each scores its own batch; the key encoders stay equal, as they
  follow the synchronised online weights. DDP's buffer broadcast (on by default) copies rank
  0's buffers, the queue among them, to every process before each step, so the queue holds
  rank 0's keys; video indices are the dataset's, so the masks hold on every process.

Shapes: ``B`` samples of ``N`` clips; ``P`` the projection size; ``K`` the queue length.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from playspeed.config import Config
from playspeed.models.backbone import frame_differences
from playspeed.models.heads import ProjectionHead

__all__ = ["ContrastReading", "KeyQueue", "MomentumContrast", "contrast_from_config",
           "info_nce", "momentum_update", "pair_masks", "same_video_top1", "shuffle_motion",
           "shuffled_keys"]


@dataclass(frozen=True)
class ContrastReading:
    """One batch's instance discrimination: ``loss`` (scalar, mean over pairs); per (query,
    positive) pair ``hits`` (bool: the positive scores above every negative) and ``chance``
    (``1 / (negatives + 1)``, the hit rate of a random score)."""

    loss: torch.Tensor
    hits: torch.Tensor
    chance: torch.Tensor


class KeyQueue(nn.Module):
    """A first-in first-out ring of ``size`` keys (``K x P`` buffer ``keys``) with the video
    index of each (buffer ``videos``, ``-1`` for a slot not yet filled) and the slot the next
    key goes to (``pointer``). All three are task state: they travel in checkpoints."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 0 or dim < 1:
            raise ValueError(f"KeyQueue: size must be >= 0 and dim >= 1, got {size} and {dim}")
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("videos", torch.full((size,), -1, dtype=torch.int64))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.int64))

    def __len__(self) -> int:
        return self.videos.shape[0]

    @torch.no_grad()
    def push(self, keys: torch.Tensor, videos: torch.Tensor) -> None:
        """Write ``keys`` (``M x P``) and their ``videos`` (``M``) over the oldest entries,
        wrapping around the end; of more keys than slots only the last ``size`` stay."""
        size = len(self)
        if size == 0:
            return
        keys, videos = keys[-size:], videos[-size:]
        slots = (self.pointer + torch.arange(len(keys), device=self.pointer.device)) % size
        self.keys[slots] = keys.detach().to(self.keys.dtype)
        self.videos[slots] = videos.to(self.videos.dtype)
        self.pointer.copy_((self.pointer + len(keys)) % size)


@torch.no_grad()
def momentum_update(target: nn.Module, online: nn.Module, *, momentum: float) -> None:
    """MoCo's key-encoder update, parameter by parameter:
    ``target = momentum * target + (1 - momentum) * online``.

    Buffers (the norm layers' running statistics) are left alone: keys are computed with batch
    statistics, so the key encoder's running statistics are never read.
    """
    for key, query in zip(target.parameters(), online.parameters(), strict=True):
        key.lerp_(query.detach(), 1.0 - momentum)


def shuffle_motion(clips: torch.Tensor, *, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """``clips`` ``M x C x T x H x W`` with each clip's ``T - 1`` frame-to-frame differences
    put in a random order (never the original one), summed up again from its first frame.

    Its frame differences are the clip's own, permuted, so a network that reads differences
    sees the same changes at the same energy and only their order is lost; an RGB network
    sees the first frame drift through the same changes. Needs ``T >= 3`` (two changes).
    """
    num, frames = clips.shape[0], clips.shape[2]
    if frames < 3:
        raise ValueError(f"shuffle_motion: a clip of {frames} frames has no other order of "
                         "its frame changes (needs 3 or more)")
    changes = frame_differences(clips)[:, :, 1:].transpose(1, 2)  # M x (T-1) x C x H x W
    order = torch.rand(num, frames - 1, generator=generator).argsort(dim=1).to(clips.device)
    unchanged = (order == torch.arange(frames - 1, device=clips.device)).all(dim=1)
    order[unchanged] = order[unchanged].roll(1, dims=1)
    rows = torch.arange(num, device=clips.device)[:, None]
    shuffled = changes[rows, order].transpose(1, 2).cumsum(dim=2)
    return torch.cat([clips[:, :, :1], clips[:, :, :1] + shuffled], dim=2)


def shuffled_keys(encode: Callable[[torch.Tensor], torch.Tensor], clips: torch.Tensor, *,
                  generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys of ``clips`` (``B x N x C x T x H x W``) computed in ``N`` sub-batches of ``B``
    clips, sub-batch ``g`` holding one clip of every sample (each sample's clips randomly
    permuted over the sub-batches), put back in order.

    Returns keys ``B x N x ...`` (``encode``: ``B x C x T x H x W -> B x ...``, e.g.
    ``B x P``) and ``groups`` (long ``B x N``: the sub-batch each clip was computed in). With
    an encoder that does not read batch statistics (eval mode) the keys equal ``encode`` of
    all clips at once.
    """
    batch, num_clips = clips.shape[:2]
    # order[b, g]: the clip of sample b that goes to sub-batch g
    order = torch.rand(batch, num_clips, generator=generator).argsort(dim=1).to(clips.device)
    rows = torch.arange(batch, device=clips.device)
    keys = None
    for group in range(num_clips):
        out = encode(clips[rows, order[:, group]])
        if keys is None:
            keys = out.new_empty(batch, num_clips, *out.shape[1:])
        keys[rows, order[:, group]] = out
    return keys, order.argsort(dim=1)


def pair_masks(videos: torch.Tensor, groups: torch.Tensor, queue_videos: torch.Tensor, *,
               directions: torch.Tensor | None = None, shuffled: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which keys are each query's positives and negatives.

    ``videos``: long ``B`` (each sample's video index); ``groups``: long ``B x N`` (the key
    sub-batch of each clip, :func:`shuffled_keys`); ``queue_videos``: long ``K`` (``-1``:
    empty slot); ``directions``: long ``B x N`` (each clip's playback direction), or ``None``
    to make every clip of the query's video a positive; ``shuffled``: the batch's clips also
    have keys with their motion shuffled (:func:`shuffle_motion`). Queries and the batch's
    keys are the ``B*N`` clips, sample-major; the key columns are those ``B*N`` keys, then
    (``shuffled``) the ``B*N`` shuffled keys in the same order, then the ``K`` queue entries.

    Returns bool ``positive`` and ``negative``, each ``(B*N) x (B*N [+ B*N] + K)``: a batch
    key computed in the query's own sub-batch (the query's own clip among them) is neither;
    of the others, a key of the query's video is a positive, of another video a negative;
    with ``directions``, a key of the query's video played the other way is a negative. A
    shuffled key is a negative unless computed in the query's own sub-batch; so is a queue
    entry unless it is of the query's video or empty. Neither is ever a positive.
    """
    num_clips = groups.shape[1]
    clip_video = videos.repeat_interleave(num_clips)
    clip_group = groups.flatten()
    same_video = clip_video[:, None] == clip_video[None, :]
    other_group = clip_group[:, None] != clip_group[None, :]
    if directions is None:
        alike = same_video
    else:
        clip_direction = directions.flatten()
        alike = same_video & (clip_direction[:, None] == clip_direction[None, :])
    queue_negative = (queue_videos[None, :] != clip_video[:, None]) & (queue_videos[None, :] >= 0)
    shuffled_negative = [other_group] if shuffled else []
    negative = torch.cat([~alike & other_group, *shuffled_negative, queue_negative], dim=1)
    positive = torch.zeros_like(negative)
    positive[:, :other_group.shape[1]] = alike & other_group
    return positive, negative


def info_nce(queries: torch.Tensor, keys: torch.Tensor, *, positive: torch.Tensor,
             negative: torch.Tensor, temperature: float) -> ContrastReading:
    """InfoNCE per (query, positive) pair: cross-entropy of the positive among
    ``[positive, the query's negatives]`` at ``temperature``, averaged over pairs.

    ``queries`` ``Q x P`` and ``keys`` ``M x P`` (unit length); ``positive`` and ``negative``
    bool ``Q x M`` (:func:`pair_masks`). Computed in float32 whatever the autocast dtype.
    """
    logits = queries.float() @ keys.float().t() / temperature  # Q x M
    query, key = positive.nonzero(as_tuple=True)
    if query.numel() == 0:
        raise ValueError("info_nce: no positive pair (a query needs another clip of its video)")
    negatives = logits.masked_fill(~negative, -math.inf)[query]  # pairs x M
    positives = logits[query, key]
    pair_logits = torch.cat([positives[:, None], negatives], dim=1)
    loss = F.cross_entropy(pair_logits, torch.zeros_like(query))
    hits = positives > negatives.amax(dim=1)  # a tie is a miss
    chance = 1.0 / (1.0 + negative.sum(dim=1)[query].float())
    return ContrastReading(loss=loss, hits=hits, chance=chance)


class MomentumContrast(nn.Module):
    """The ``speed_contrast`` machinery beside the task's backbone: the online projection
    head, the momentum key encoder (a copy of the backbone and of that head, updated by
    :func:`momentum_update`, never by gradients) and the :class:`KeyQueue`.

    The online backbone is passed to :meth:`forward`, not held, so its weights are stored
    once (under the task's ``backbone.``) and ``load_backbone_weights`` reads only them.
    """

    def __init__(self, backbone: nn.Module, *, feature_dim: int, dim: int = 128,
                 hidden: int | None = None, queue: int = 1024, momentum: float = 0.99,
                 temperature: float = 0.07, reversed_negative: bool = False,
                 shuffled_negative: bool = False,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        self.projection = ProjectionHead(feature_dim, out_features=dim,
                                         hidden=feature_dim if hidden is None else hidden)
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projection = copy.deepcopy(self.projection)
        for param in [*self.key_backbone.parameters(), *self.key_projection.parameters()]:
            param.requires_grad_(False)
        self.queue = KeyQueue(queue, dim)
        self.momentum, self.temperature = momentum, temperature
        self.reversed_negative, self.shuffled_negative = reversed_negative, shuffled_negative
        self.memory_format = memory_format

    def keys(self, clips: torch.Tensor) -> torch.Tensor:
        """Key embeddings of ``clips`` ``B x C x T x H x W`` (one sub-batch) -> ``B x P``, or
        with ``shuffled_negative`` ``B x 2 x P``: each clip's key, then its shuffled motion's
        (:func:`shuffle_motion`), computed together so that both see the same statistics."""
        if self.shuffled_negative:
            clips = torch.cat([clips, shuffle_motion(clips)])
        keys = self.key_projection(self.key_backbone(
            clips.contiguous(memory_format=self.memory_format)))
        return keys.unflatten(0, (2, -1)).transpose(0, 1) if self.shuffled_negative else keys

    def forward(self, features: torch.Tensor, clips: torch.Tensor, videos: torch.Tensor, *,
                directions: torch.Tensor, backbone: nn.Module) -> ContrastReading:
        """One training step: ``features`` ``(B*N) x D`` are the online ``backbone``'s
        features of ``clips`` ``B x N x C x T x H x W`` (sample-major), ``videos`` long ``B``,
        ``directions`` long ``B x N`` (read only with ``reversed_negative``).

        Moves the key encoder towards ``backbone`` and the projection head, computes the
        batch's keys in shuffled sub-batches, scores the queries against them and the queue,
        then pushes the batch's keys into the queue.
        """
        queries = self.projection(features)
        with torch.no_grad():
            momentum_update(self.key_backbone, backbone, momentum=self.momentum)
            momentum_update(self.key_projection, self.projection, momentum=self.momentum)
            keys, groups = shuffled_keys(self.keys, clips)
            keys = keys.flatten(0, 1)  # (B*N) x P, or (B*N) x 2 x P
            # the batch's keys, then (shuffled_negative) their shuffled motions'
            columns = list(keys.unbind(1)) if self.shuffled_negative else [keys]
        positive, negative = pair_masks(
            videos, groups, self.queue.videos,
            directions=directions if self.reversed_negative else None,
            shuffled=self.shuffled_negative)
        reading = info_nce(queries, torch.cat([*(k.float() for k in columns), self.queue.keys]),
                           positive=positive, negative=negative, temperature=self.temperature)
        self.queue.push(columns[0], videos.repeat_interleave(clips.shape[1]))
        return reading


def contrast_from_config(config: Config, backbone: nn.Module, *, feature_dim: int
                         ) -> MomentumContrast:
    """The :class:`MomentumContrast` of ``config.pretext`` for ``backbone``."""
    pretext = config.pretext
    memory_format = torch.channels_last_3d if \
        config.trainer.memory_format == "channels_last_3d" else torch.contiguous_format
    return MomentumContrast(backbone, feature_dim=feature_dim, dim=pretext.contrast_dim,
                            hidden=pretext.contrast_hidden, queue=pretext.contrast_queue,
                            momentum=pretext.contrast_momentum,
                            temperature=pretext.contrast_temperature,
                            reversed_negative=pretext.contrast_reversed == "negative",
                            shuffled_negative=pretext.contrast_shuffled,
                            memory_format=memory_format)


def same_video_top1(embeddings: torch.Tensor, videos: torch.Tensor) -> tuple[float, float]:
    """Held-out instance discrimination: the percent of items whose most similar other item
    (cosine of ``embeddings`` ``G x P``) is of their own video (``videos`` long ``G``), and
    the chance of a random ranking (the mean share of same-video items among the others).
    Items alone in their video are left out; NaN when none is left."""
    similarity = F.normalize(embeddings.float(), dim=1) @ F.normalize(embeddings.float(),
                                                                      dim=1).t()
    similarity.fill_diagonal_(-math.inf)
    same = videos[:, None] == videos[None, :]
    same.fill_diagonal_(False)
    counted = same.any(dim=1)
    if not counted.any():
        return math.nan, math.nan
    nearest = similarity.argmax(dim=1)
    hits = same[torch.arange(len(videos), device=videos.device), nearest][counted]
    chance = same.sum(dim=1)[counted].float() / (len(videos) - 1)
    return float(hits.float().mean() * 100), float(chance.mean() * 100)
