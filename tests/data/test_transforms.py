import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from playspeed.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipTransform,
    mix_still_frames,
)

IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255, 1 / 255, 1 / 255)}  # output = pixel value


def coded_clip(num_frames=6, height=48, width=64):
    """uint8 T x H x W x 3: red = frame index, green = column, blue = row."""
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width),
                          indexing="ij")
    return torch.from_numpy(np.stack([t * 10, x, y], axis=-1).astype(np.uint8))


def test_output_layout_and_dtype():
    clip = coded_clip()
    for train in (True, False):
        out = ClipTransform(train=train, size=32)(clip, np.random.default_rng(0))
        assert out.shape == (3, 6, 32, 32) and out.dtype == torch.float32
        assert out.is_contiguous()
    out = ClipTransform(train=True, size=(24, 40))(clip, np.random.default_rng(0))
    assert out.shape == (3, 6, 24, 40)


def test_eval_is_an_exact_centre_crop_when_no_resize_is_needed():
    clip = torch.randint(0, 256, (4, 128, 171, 3), dtype=torch.uint8)
    out = ClipTransform(train=False, size=112)(clip)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    expected = (clip[:, 8:120, 29:141].permute(3, 0, 1, 2).float() / 255 - mean) / std
    torch.testing.assert_close(out, expected)


def test_eval_resize_refers_the_crop_to_the_reference_size():
    # A 2x larger source with resize=(128, 171) gives the same centre crop, downscaled.
    small = coded_clip(num_frames=2, height=128, width=171)
    large = small.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    ref = ClipTransform(train=False, size=112, **IDENTITY)(small)
    out = ClipTransform(train=False, size=112, resize=(128, 171), **IDENTITY)(large)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1.0


def test_every_frame_of_a_clip_shares_crop_and_flip_and_clips_differ():
    clip = coded_clip()
    transform = ClipTransform(train=True, size=32, flip=True, **IDENTITY)
    rng = np.random.default_rng(0)
    crops, flips = set(), []
    for _ in range(20):
        out = transform(clip, rng)
        # red: each frame is still uniformly its own index
        red = out[0].flatten(1)
        torch.testing.assert_close(red, torch.arange(6.0).mul(10).view(6, 1).expand_as(red),
                                   atol=1e-3, rtol=0)
        # green/blue: the same crop of the position code in every frame
        assert (out[1:] == out[1:, :1]).all()
        green_row = out[1, 0, 0]
        flips.append(bool(green_row[0] > green_row[-1]))
        crops.add((round(float(out[1, 0].min())), round(float(out[2, 0].min())),
                   round(float(out[2, 0].max()))))
    assert len(crops) > 10  # clips draw their own crops
    assert 3 <= sum(flips) <= 17  # flip about half the time


def test_flip_off_and_determinism():
    clip = coded_clip()
    transform = ClipTransform(train=True, size=32, flip=False, **IDENTITY)
    for seed in range(10):
        out = transform(clip, np.random.default_rng(seed))
        assert out[1, 0, 0, 0] < out[1, 0, 0, -1]
        torch.testing.assert_close(out, transform(clip, np.random.default_rng(seed)))


@settings(max_examples=60, deadline=None)
@given(height=st.integers(8, 300), width=st.integers(8, 300), train=st.booleans(),
       low=st.floats(0.1, 1.0), seed=st.integers(0, 2**32 - 1),
       resize=st.sampled_from([None, (128, 171), (64, 48)]),
       size=st.sampled_from([(112, 112), (32, 48)]))
def test_crop_box_inside_frame_with_scale_and_aspect(height, width, train, low, seed, resize,
                                                     size):
    transform = ClipTransform(train=train, size=size, resize=resize, scale=(low, 1.0))
    top, left, h, w = transform._crop_box(height, width, np.random.default_rng(seed))
    assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
    ref_h, ref_w = resize or (height, width)
    sy, sx = height / ref_h, width / ref_w
    fit_h = min(ref_h, ref_w * size[0] / size[1])
    if train:  # side drawn from the scale range of the largest box of the output aspect
        assert low * fit_h * sy - 1 <= h <= fit_h * sy + 1
    else:
        assert abs(h - min(size[0], fit_h) * sy) <= 1
        # centred up to rounding in the reference frame, one reference pixel = sy x sx here
        assert abs(top - (height - h) / 2) <= max(1, sy)
        assert abs(left - (width - w) / 2) <= max(1, sx)
    # aspect of the output, up to rounding
    assert abs(w / sx - h / sy * size[1] / size[0]) <= 1 / sx + size[1] / size[0] / sy + 1e-9


def window_centre_and_width(out):
    """Per frame of a transformed :func:`coded_clip` (``IDENTITY``): the crop window's centre
    (column, row) and its width in source columns, read off the position code."""
    green, blue = out[1], out[2]
    return green.mean(dim=(1, 2)), blue.mean(dim=(1, 2)), green.amax(dim=(1, 2)) - green.amin(
        dim=(1, 2))


def test_camera_motion_moves_the_window_along_a_straight_bounded_path():
    clip = coded_clip(num_frames=9, height=48, width=64)
    motion = 0.25
    transform = ClipTransform(train=True, size=24, scale=(0.5, 0.6), flip=False,
                              camera_motion=motion, **IDENTITY)
    rng = np.random.default_rng(0)
    travels, zooms = [], []
    for _ in range(30):
        out = transform(clip, rng)
        # red: every output frame is still sampled from its own source frame only
        red = out[0].flatten(1)
        torch.testing.assert_close(red, torch.arange(9.0).mul(10).view(9, 1).expand_as(red),
                                   atol=1e-3, rtol=0)
        x, y, width = window_centre_and_width(out)
        for series in (x, y, width):  # linear in time: no second difference
            assert series.diff(n=2).abs().max() < 1e-2
        side = float(width[0]) * 24 / 23  # the first box's side (pixel centres span 23/24)
        travels.append(max(abs(float(x[-1] - x[0])), abs(float(y[-1] - y[0]))) / side)
        zooms.append(float(width[-1] / width[0]))
    assert max(travels) <= motion + 0.02
    assert min(zooms) >= 1 / (1 + motion) - 0.02 and max(zooms) <= 1 + motion + 0.02
    assert sum(t > 0.05 for t in travels) > 15  # clips draw their own paths, most move
    assert np.std(zooms) > 0.02


def test_camera_motion_flips_and_repeats_with_the_seed_and_is_off_in_eval():
    clip = coded_clip(num_frames=5)
    flipping = ClipTransform(train=True, size=16, flip=1.0, camera_motion=0.3, **IDENTITY)
    out = flipping(clip, np.random.default_rng(3))
    assert (out[1, :, :, 0] > out[1, :, :, -1]).all()  # columns run right to left
    torch.testing.assert_close(out, flipping(clip, np.random.default_rng(3)))
    still = ClipTransform(train=False, size=16, camera_motion=0.3, **IDENTITY)(clip)
    torch.testing.assert_close(still, ClipTransform(train=False, size=16, **IDENTITY)(clip))
    with pytest.raises(ValueError, match="camera_motion"):
        ClipTransform(train=True, camera_motion=1.0)


def test_normalisation_uses_mean_and_std():
    clip = torch.full((2, 20, 20, 3), 200, dtype=torch.uint8)
    out = ClipTransform(train=False, size=16, mean=(0.5, 0.4, 0.3),
                               std=(0.1, 0.2, 0.5))(clip)
    expected = (200 / 255 - torch.tensor([0.5, 0.4, 0.3])) / torch.tensor([0.1, 0.2, 0.5])
    torch.testing.assert_close(out[:, 0, 0, 0], expected)
    torch.testing.assert_close(out, expected.view(3, 1, 1, 1).expand_as(out))


def test_colour_jitter_is_one_draw_per_clip():
    frame = torch.randint(30, 220, (1, 24, 24, 3), dtype=torch.uint8)
    clip = frame.expand(5, -1, -1, -1).contiguous()
    plain = ClipTransform(train=True, size=24, scale=(1, 1), flip=False, **IDENTITY)
    jitter = ClipTransform(train=True, size=24, scale=(1, 1), flip=False,
                                  color_jitter=0.4, **IDENTITY)
    rng = np.random.default_rng(0)
    out = jitter(clip, rng)
    assert (out == out[:, :1]).all()  # identical frames stay identical: no flicker
    assert out.min() >= 0 and out.max() <= 255 + 1e-3
    assert (out - plain(clip, rng)).abs().mean() > 1.0


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        ClipTransform(train=False)(torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="scale"):
        ClipTransform(train=True, scale=(0.5, 1.5))


def test_brightness_scales_every_pixel_by_one_factor():
    clip = torch.randint(20, 120, (3, 16, 16, 3), dtype=torch.uint8)
    common = {"train": True, "size": 16, "scale": (1, 1), "flip": False, **IDENTITY}
    plain = ClipTransform(**common)(clip, np.random.default_rng(0))
    bright = ClipTransform(color_jitter=(0.5, 0, 0), **common)(clip,
                                                                       np.random.default_rng(0))
    ratio = bright / plain
    assert 0.5 <= float(ratio.mean()) <= 1.5
    torch.testing.assert_close(ratio, ratio.mean().expand_as(ratio), atol=1e-4, rtol=1e-4)


def test_mix_still_frames_adds_one_still_frame_of_the_previous_clip():
    clips = torch.randn(4, 3, 6, 5, 5)
    mixed = mix_still_frames(clips, max_weight=0.5, generator=torch.Generator().manual_seed(0))
    assert mixed.shape == clips.shape
    for i in range(4):
        other = clips[i - 1]  # C x T x H x W
        added = mixed[i] - clips[i]  # w * (still - clip): fit w and the still frame
        # Some frame t of the other clip, weight in (0, 0.5), explains the change exactly.
        fits = []
        for t in range(6):
            still = other[:, t:t + 1]
            difference = still - clips[i]
            w = (added * difference).sum() / difference.square().sum()
            if torch.allclose(added, w * difference, atol=1e-5):
                fits.append(float(w))
        assert len(fits) == 1 and 0 < fits[0] < 0.5


def test_mix_still_frames_off_and_bad_input():
    clips = torch.randn(2, 3, 4, 5, 5)
    assert mix_still_frames(clips, max_weight=0.0) is clips
    single = clips[:1]
    assert mix_still_frames(single, max_weight=0.5) is single  # no other clip to take from
    with pytest.raises(ValueError, match="max_weight"):
        mix_still_frames(clips, max_weight=1.0)
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        mix_still_frames(clips[0], max_weight=0.5)
