"""Clip transforms: whole-clip torch ops, one set of random parameters per clip; and one
batch transform, :func:`mix_still_frames`.

A transform maps one clip, ``uint8 T x H x W x C`` (RGB, as frame sources return it), to
``float32 C x T x H x W`` ready for a 3D CNN, and takes a ``numpy.random.Generator`` that
supplies all its randomness, so a dataset item is reproducible from its own seed.

Every frame of a clip gets the same crop, flip and colour jitter (a per-frame change would be
motion the network could pick up); clips of one sample each draw their own parameters. The
one exception is asked for by name: ``camera_motion`` moves the crop window along a straight
path over the clip, a synthetic pan and zoom drawn anew for every clip.
Geometry is worked out in the frame of the reference size ``resize`` (e.g. 128 x 171, the
field's convention) and mapped back to the source frame, so the pixels are cropped first
and interpolated once, straight to the output size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# ImageNet statistics, the usual choice for video CNNs trained from scratch or not.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return pair


class ClipTransform:
    """Resize, crop (random scale-jittered or centre), flip, colour jitter and normalise a clip.

    Args:
        train: random crop, flip and colour jitter when true; when false, only the centre
            ``size`` crop of the reference frame (112 x 112 out of 128 x 171), or the largest
            centred box of the output aspect where the frame is smaller, resized to ``size``.
        size: output ``H x W`` (an int for a square).
        resize: reference frame size ``(H, W)`` the crop geometry refers to; ``None`` uses
            the clip's own size (sources that already serve 128 x 171 frames).
        scale: train crop side as a fraction of the reference short side, drawn uniformly
            from ``[low, high]``; the crop has the aspect of ``size`` and a uniform position,
            and is then resized to ``size``. ``(0.875, 0.875)`` is the plain 112 crop out of
            128 x 171.
        flip: probability of a horizontal flip in training (``True`` = 0.5, ``False`` = 0).
        camera_motion: in training, the crop window travels a straight path over the clip, as
            a panning and zooming camera would: from the random crop to a second box whose
            centre lies up to ``camera_motion`` x the crop side away along each axis and whose
            side is the crop's times a factor in ``[1 / (1 + m), 1 + m]``, kept inside the
            frame; every frame is sampled from its own box (bilinear, no antialias). One
            path per clip, so the clips of one video stop sharing its camera path, and the
            motion is the same at every playback speed. 0 (the default) keeps the window
            still.
        color_jitter: brightness, contrast and saturation strength ``j`` (one float for all
            three, or three floats): each factor is drawn from ``[max(0, 1-j), 1+j]``; 0 is off.
        mean, std: per-channel normalisation of ``[0, 1]`` pixel values.

    Call: ``transform(clip, rng)`` with ``clip`` a ``uint8 T x H x W x C`` tensor and ``rng``
    a ``numpy.random.Generator`` (``None``: a fresh unseeded one) -> ``float32 C x T x H' x W'``.
    Eval transforms draw nothing from ``rng``.
    """

    def __init__(
        self,
        *,
        train: bool,
        size: int | Sequence[int] = 112,
        resize: Sequence[int] | None = None,
        scale: Sequence[float] = (0.66, 1.0),
        flip: bool | float = True,
        camera_motion: float = 0.0,
        color_jitter: float | Sequence[float] = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.train = train
        self.size = _pair(size, "size")
        self.resize = None if resize is None else _pair(resize, "resize")
        self.scale = (float(scale[0]), float(scale[1]))
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {tuple(scale)}")
        self.flip = 0.5 if flip is True else float(flip)
        self.camera_motion = float(camera_motion)
        if not 0.0 <= self.camera_motion < 1.0:
            raise ValueError(f"camera_motion must be in [0, 1), got {camera_motion}")
        jitter = (color_jitter,) * 3 if isinstance(color_jitter, int | float) else color_jitter
        self.color_jitter = tuple(float(j) for j in jitter)
        if len(self.color_jitter) != 3 or min(self.color_jitter) < 0:
            raise ValueError(f"color_jitter must be >= 0 (one or three values), got {jitter!r}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {mean!r}, {std!r}")
        self._mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
        # Normalisation folded into one multiply-add: (x / 255 - mean) / std.
        self._scale = 1 / (255 * self._std)
        self._shift = -self._mean / self._std

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def _reference_box(self, ref_h: float, ref_w: float, rng: np.random.Generator | None
                       ) -> tuple[float, float, float, float]:
        """``(top, left, h, w)`` of the crop in the reference frame ``ref_h x ref_w``."""
        out_h, out_w = self.size
        aspect = out_w / out_h
        fit_h = min(ref_h, ref_w / aspect)  # tallest box of the output aspect in the frame
        if self.train:
            crop_h = fit_h * rng.uniform(*self.scale)
        else:
            crop_h = min(out_h, fit_h)
        crop_w = crop_h * aspect
        if self.train:
            top, left = rng.uniform(0, ref_h - crop_h), rng.uniform(0, ref_w - crop_w)
        else:
            top, left = math.floor((ref_h - crop_h) / 2), math.floor((ref_w - crop_w) / 2)
        return top, left, crop_h, crop_w

    def _crop_box(self, height: int, width: int,
                  rng: np.random.Generator | None) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` in source pixels of the crop for a ``height x width`` frame."""
        ref_h, ref_w = self.resize or (height, width)
        top, left, crop_h, crop_w = self._reference_box(ref_h, ref_w, rng)
        sy, sx = height / ref_h, width / ref_w
        h = min(max(1, round(crop_h * sy)), height)
        w = min(max(1, round(crop_w * sx)), width)
        y = min(round(top * sy), height - h)
        x = min(round(left * sx), width - w)
        return y, x, h, w

    def _camera_path(self, num_frames: int, height: int, width: int,
                     rng: np.random.Generator) -> torch.Tensor:
        """Per-frame crop boxes of a ``height x width`` source, ``T x 4`` float64
        ``(top, left, h, w)`` in source pixels: a straight path from the random crop to a
        second box (see ``camera_motion``), both inside the frame."""
        ref_h, ref_w = self.resize or (height, width)
        top, left, crop_h, crop_w = self._reference_box(ref_h, ref_w, rng)
        motion = self.camera_motion
        zoom = math.exp(rng.uniform(-1.0, 1.0) * math.log1p(motion))
        end_h = min(crop_h * zoom, ref_h, ref_w * crop_h / crop_w)
        end_w = end_h * crop_w / crop_h
        centre_y = top + crop_h / 2 + rng.uniform(-motion, motion) * crop_h
        centre_x = left + crop_w / 2 + rng.uniform(-motion, motion) * crop_w
        end_top = min(max(centre_y - end_h / 2, 0.0), ref_h - end_h)
        end_left = min(max(centre_x - end_w / 2, 0.0), ref_w - end_w)
        start = torch.tensor([top, left, crop_h, crop_w], dtype=torch.float64)
        end = torch.tensor([end_top, end_left, end_h, end_w], dtype=torch.float64)
        along = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)[:, None]
        scale = torch.tensor([height / ref_h, width / ref_w] * 2, dtype=torch.float64)
        return torch.lerp(start, end, along) * scale

    def _sample_path(self, clip: torch.Tensor, boxes: torch.Tensor, flip: bool) -> torch.Tensor:
        """``uint8 T x H x W x C`` sampled through ``boxes`` (``T x 4``, one per frame) ->
        ``float32 C x T x H' x W'`` pixel values."""
        num_frames, height, width = clip.shape[:3]
        top, left, h, w = boxes.unbind(dim=1)
        # affine_grid maps output coordinates in [-1, 1] to input ones; with pixel edges at
        # -1 and 1 (align_corners=False) box [left, left + w] is scale w / W around its centre.
        theta = torch.zeros(num_frames, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = (w / width) * (-1 if flip else 1)
        theta[:, 0, 2] = (2 * left + w) / width - 1
        theta[:, 1, 1] = h / height
        theta[:, 1, 2] = (2 * top + h) / height - 1
        frames = clip.permute(0, 3, 1, 2).float()
        grid = F.affine_grid(theta.float(), [num_frames, frames.shape[1], *self.size],
                             align_corners=False)
        sampled = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)
        return sampled.transpose(0, 1).contiguous()

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        if clip.dtype != torch.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"expected a uint8 T x H x W x 3 clip, got {clip.dtype} "
                             f"{tuple(clip.shape)}")
        if self.train and rng is None:
            rng = np.random.default_rng()
        if self.train and self.camera_motion > 0:
            boxes = self._camera_path(clip.shape[0], clip.shape[1], clip.shape[2], rng)
            out = self._sample_path(clip, boxes, flip=self._draws_flip(rng))
        else:
            out = self._crop_resize(clip, rng)
        if self.train and any(self.color_jitter):
            return self._jitter(out.mul_(1 / 255), rng).sub_(self._mean).div_(self._std)
        return out.mul_(self._scale).add_(self._shift)

    def _draws_flip(self, rng: np.random.Generator) -> bool:
        """One training draw: is this clip flipped (no draw when flips are off)."""
        return self.flip > 0 and rng.random() < self.flip

    def _crop_resize(self, clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        """``uint8 T x H x W x C`` -> its (flipped) crop at ``size``, ``float32 C x T x H' x W'``
        pixel values: one box for every frame."""
        y, x, h, w = self._crop_box(clip.shape[1], clip.shape[2], rng)
        clip = clip[:, y:y + h, x:x + w]
        if self.train and self._draws_flip(rng):
            clip = clip.flip(2)
        # T x C x H x W: frames become the batch of one 2D resize, done on uint8 (several
        # times faster than float on CPU; the rounding is below JPEG noise).
        frames = clip.permute(0, 3, 1, 2)
        if (h, w) != self.size:
            frames = F.interpolate(frames, size=self.size, mode="bilinear", align_corners=False,
                                   antialias=h > self.size[0] or w > self.size[1])
        # One pass converts to float and lays out C x T x H x W; the rest works in place.
        out = torch.empty((frames.shape[1], frames.shape[0], *self.size), dtype=torch.float32)
        out.copy_(frames.transpose(0, 1))
        return out

    def _jitter(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Brightness, contrast, saturation of ``C x T x H x W`` in ``[0, 1]``, in place.

        One draw of the three factors per clip.
        """
        b, c, s = (rng.uniform(max(0.0, 1 - j), 1 + j) for j in self.color_jitter)
        luma = torch.tensor(_LUMA, dtype=frames.dtype)
        frames.mul_(b).clamp_(0, 1)
        # Contrast blends towards the clip's mean grey: one reference for all frames, so the
        # jitter cannot flicker over time.
        grey_mean = frames.mean(dim=(1, 2, 3)) @ luma
        frames.sub_(grey_mean).mul_(c).add_(grey_mean).clamp_(0, 1)
        grey = (luma @ frames.view(3, -1)).view(1, *frames.shape[1:])
        return frames.sub_(grey).mul_(s).add_(grey).clamp_(0, 1)


def mix_still_frames(clips: torch.Tensor, *, max_weight: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Blend into every frame of each clip one still frame of another clip of the batch.

    Clip ``i`` gets a random frame of clip ``i - 1`` (cyclically), the same frame at every
    time step, with weight ``w_i ~ U(0, max_weight)``: ``(1 - w_i) * clip_i + w_i * still``.
    The still frame adds no motion, only another scene's look, so scene and object
    appearance stop telling a class apart and a classifier has to read the motion (the idea
    of Background Erasing, Wang et al. 2021, with the frame taken from another video).

    Args:
        clips: a normalised batch ``B x C x T x H x W`` (float).
        max_weight: upper bound of the blend weight, in ``[0, 1)``; 0 returns ``clips``.
        generator: source of the random frame and weight draws (``None``: torch's global one).

    Returns: a new ``B x C x T x H x W`` tensor (``clips`` itself when ``max_weight`` is 0
    or the batch holds one clip).
    """
    if not 0.0 <= max_weight < 1.0:
        raise ValueError(f"max_weight must be in [0, 1), got {max_weight}")
    if clips.ndim != 5:
        raise ValueError(f"expected a B x C x T x H x W batch, got {tuple(clips.shape)}")
    batch, frames = clips.shape[0], clips.shape[2]
    if max_weight == 0 or batch < 2:
        return clips
    frame = torch.randint(frames, (batch,), generator=generator).to(clips.device)
    # B x C x 1 x H x W: frame `frame[i]` of clip i - 1, broadcast over time.
    still = clips.roll(1, dims=0)[torch.arange(batch, device=clips.device), :, frame]
    weight = (torch.rand(batch, generator=generator) * max_weight).to(clips)
    return torch.lerp(clips, still.unsqueeze(2), weight.view(batch, 1, 1, 1, 1))
