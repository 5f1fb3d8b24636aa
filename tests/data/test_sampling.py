import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playspeed.data.sampling import (
    clip_indices,
    clip_span,
    evenly_spaced_starts,
    fitting_signed_speeds,
    min_objective_frames,
    min_pretext_frames,
    objective_target,
    permutations,
    pretext_grid,
    sample_clip,
    sample_independent,
    sample_objective,
    sample_pretext,
    sample_test_clips,
    sample_train_clip,
    sample_tuple,
    sort_target,
    tuple_span,
)

SETTINGS = settings(max_examples=100, deadline=None)

seeds = st.integers(0, 2**32 - 1)
speed_sets = st.lists(st.integers(1, 9), min_size=1, max_size=5, unique=True)
direction_sets = st.sampled_from([(1, -1), (-1, 1), (1,), (-1,)])


def assert_clip(indices, *, start, skip, direction, num_frames):
    """Indices step by exactly ``direction * skip`` from ``start`` and stay in the video."""
    assert indices.dtype == np.int64
    assert indices.min() >= 0 and indices.max() < num_frames
    assert np.all(np.diff(indices) == direction * skip)
    assert (indices[0] if direction > 0 else indices[-1]) == start


def test_clip_indices_forward_and_reversed():
    assert clip_indices(start=3, clip_len=4, skip=2).tolist() == [3, 5, 7, 9]
    assert clip_indices(start=3, clip_len=4, skip=2, direction=-1).tolist() == [9, 7, 5, 3]
    assert clip_span(clip_len=16, skip=8) == 121


@SETTINGS
@given(num_frames=st.integers(1, 300), clip_len=st.integers(1, 20), skip=st.integers(1, 8),
       direction=st.sampled_from([1, -1]), seed=seeds)
def test_sample_clip_within_bounds_and_stride(num_frames, clip_len, skip, direction, seed):
    rng = np.random.default_rng(seed)
    if clip_span(clip_len=clip_len, skip=skip) > num_frames:
        with pytest.raises(ValueError, match="needs"):
            sample_clip(num_frames, clip_len=clip_len, skip=skip, direction=direction, rng=rng)
        return
    indices = sample_clip(num_frames, clip_len=clip_len, skip=skip, direction=direction, rng=rng)
    assert len(indices) == clip_len
    assert_clip(indices, start=indices.min(), skip=skip, direction=direction,
                num_frames=num_frames)


def test_sample_clip_start_is_uniform_over_every_fitting_position():
    rng = np.random.default_rng(0)
    starts = [sample_clip(10, clip_len=4, skip=2, rng=rng)[0] for _ in range(4000)]
    counts = np.bincount(starts, minlength=4)  # span 7: starts 0..3
    assert len(counts) == 4
    assert counts.min() > 850  # 1000 expected each


@SETTINGS
@given(num_frames=st.integers(0, 200), clip_len=st.integers(1, 16), speeds=speed_sets,
       directions=direction_sets, num_clips=st.integers(1, 4), seed=seeds)
def test_sample_pretext_properties(num_frames, clip_len, speeds, directions, num_clips, seed):
    draw = sample_pretext(num_frames, clip_len=clip_len, speeds=speeds, directions=directions,
                          num_clips=num_clips, rng=np.random.default_rng(seed))
    fitting = fitting_signed_speeds(num_frames, clip_len=clip_len, speeds=speeds,
                                    directions=directions)
    # The short-video rule: None exactly when fewer than num_clips signed speeds fit.
    assert (draw is None) == (len(fitting) < num_clips)
    if num_clips <= len(speeds) * len(directions):
        needed = min_pretext_frames(clip_len=clip_len, speeds=speeds, directions=directions,
                                    num_clips=num_clips)
        assert (draw is None) == (num_frames < needed)
    if draw is None:
        return
    assert draw.frame_indices.shape == (num_clips, clip_len)
    signed = draw.signed_speed.tolist()
    assert len(set(signed)) == num_clips
    assert set(signed) <= set(fitting)
    assert set(draw.speed.tolist()) <= set(speeds)
    assert set(draw.direction.tolist()) <= set(directions)
    for indices, s, d in zip(draw.frame_indices, draw.speed, draw.direction, strict=True):
        assert_clip(indices, start=indices.min(), skip=s, direction=d, num_frames=num_frames)


def test_sample_pretext_leaves_out_speeds_that_do_not_fit():
    # 40 frames hold a 16-frame clip at skip 1 (16) and 2 (31), not 4 (61) or 8 (121).
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        draw = sample_pretext(40, clip_len=16, speeds=(1, 2, 4, 8), directions=(1, -1),
                              num_clips=3, rng=rng)
        seen.update(draw.signed_speed.tolist())
    assert seen == {1, -1, 2, -2}
    assert sample_pretext(30, clip_len=16, speeds=(1, 2, 4, 8), directions=(1, -1),
                          num_clips=3, rng=rng) is None
    assert min_pretext_frames(clip_len=16, speeds=(1, 2, 4, 8), directions=(1, -1),
                              num_clips=3) == 31


def test_sample_pretext_draws_every_signed_speed_and_order_uniformly():
    rng = np.random.default_rng(1)
    counts = {}
    orders = {}
    for _ in range(3000):
        draw = sample_pretext(200, clip_len=16, speeds=(1, 2, 4, 8), directions=(1, -1),
                              num_clips=3, rng=rng)
        for s in draw.signed_speed.tolist():
            counts[s] = counts.get(s, 0) + 1
        order = sort_target(draw.signed_speed)
        orders[order] = orders.get(order, 0) + 1
    assert sorted(counts) == [-8, -4, -2, -1, 1, 2, 4, 8]
    assert min(counts.values()) > 0.8 * 3000 * 3 / 8
    assert sorted(orders) == list(range(6))  # clips come in every order
    assert min(orders.values()) > 0.8 * 3000 / 6


@SETTINGS
@given(num_frames=st.integers(1, 60), clip_len=st.integers(2, 16), speeds=speed_sets,
       num_clips=st.integers(1, 3), seed=seeds)
def test_sample_pretext_loop_wraps_short_videos(num_frames, clip_len, speeds, num_clips, seed):
    num_clips = min(num_clips, 2 * len(speeds))
    draw = sample_pretext(num_frames, clip_len=clip_len, speeds=speeds, directions=(1, -1),
                          num_clips=num_clips, rng=np.random.default_rng(seed), loop=True)
    assert draw is not None
    assert len(set(draw.signed_speed.tolist())) == num_clips
    for indices, s, d in zip(draw.frame_indices, draw.speed, draw.direction, strict=True):
        assert indices.min() >= 0 and indices.max() < num_frames
        assert np.all(np.diff(indices) % num_frames == (d * s) % num_frames)


@SETTINGS
@given(num_frames=st.integers(1, 200), clip_len=st.integers(1, 16), stride=st.integers(1, 4),
       seed=seeds)
def test_sample_train_clip(num_frames, clip_len, stride, seed):
    indices = sample_train_clip(num_frames, clip_len=clip_len, stride=stride,
                                rng=np.random.default_rng(seed))
    assert indices.shape == (clip_len,)
    assert indices.min() >= 0 and indices.max() < num_frames
    if clip_span(clip_len=clip_len, skip=stride) <= num_frames:
        assert np.all(np.diff(indices) == stride)
    else:  # short video: from frame 0, the last frame repeated
        expected = np.minimum(stride * np.arange(clip_len), num_frames - 1)
        assert indices.tolist() == expected.tolist()


@SETTINGS
@given(num_frames=st.integers(1, 300), clip_len=st.integers(1, 16), stride=st.integers(1, 4),
       num_clips=st.integers(1, 12))
def test_sample_test_clips(num_frames, clip_len, stride, num_clips):
    clips = sample_test_clips(num_frames, clip_len=clip_len, stride=stride, num_clips=num_clips)
    assert clips.shape == (num_clips, clip_len)
    assert clips.min() >= 0 and clips.max() < num_frames
    span = clip_span(clip_len=clip_len, skip=stride)
    if span > num_frames:
        expected = np.minimum(stride * np.arange(clip_len), num_frames - 1)
        assert (clips == expected).all()
        return
    assert np.all(np.diff(clips, axis=1) == stride)
    starts = clips[:, 0]
    assert np.all(np.diff(starts) >= 0)
    # Evenly spaced: clip k starts at the centre of bin k of the valid starts 0..free.
    free = num_frames - span
    centres = free * (2 * np.arange(num_clips) + 1) / (2 * num_clips)
    assert np.abs(starts - centres).max() <= 0.5


def test_sample_test_clips_examples():
    # One clip is the centre clip; ten spread over the whole video.
    assert sample_test_clips(100, clip_len=16, num_clips=1)[0, 0] == 42
    starts = sample_test_clips(100, clip_len=16, num_clips=10)[:, 0]
    assert starts.tolist() == [4, 13, 21, 29, 38, 46, 55, 63, 71, 80]
    assert sample_test_clips(5, clip_len=4, stride=2, num_clips=2).tolist() == [[0, 2, 4, 4]] * 2


def test_permutations_order_is_itertools():
    assert permutations(3) == tuple(itertools.permutations(range(3)))
    assert len(permutations(4)) == 24


@SETTINGS
@given(signed=st.lists(st.integers(-8, 8).filter(bool), min_size=1, max_size=5, unique=True))
def test_sort_target_orders_the_clips(signed):
    target = sort_target(signed)
    order = permutations(len(signed))[target]
    reordered = [signed[i] for i in order]
    assert reordered == sorted(signed)


@SETTINGS
@given(speeds=speed_sets, directions=direction_sets, seed=seeds)
def test_classify_target_indexes_the_configured_sets(speeds, directions, seed):
    num_clips = min(3, len(speeds) * len(directions))
    draw = sample_pretext(500, clip_len=8, speeds=speeds, directions=directions,
                          num_clips=num_clips, rng=np.random.default_rng(seed))
    target = objective_target("classify", draw, speeds=speeds, directions=directions)
    assert target.shape == (num_clips, 2) and target.dtype == np.int64
    assert [speeds[i] for i in target[:, 0]] == draw.speed.tolist()
    assert [directions[i] for i in target[:, 1]] == draw.direction.tolist()


def test_evenly_spaced_starts_are_bin_centres():
    assert evenly_spaced_starts(100, 1).tolist() == [50]
    assert evenly_spaced_starts(100, 2).tolist() == [25, 75]
    assert evenly_spaced_starts(0, 3).tolist() == [0, 0, 0]


@SETTINGS
@given(num_frames=st.integers(1, 300), clip_len=st.integers(1, 16), speeds=speed_sets,
       directions=direction_sets, num_starts=st.integers(1, 4))
def test_pretext_grid_holds_every_fitting_speed_direction_and_start(
        num_frames, clip_len, speeds, directions, num_starts):
    grid = pretext_grid(num_frames, clip_len=clip_len, speeds=speeds, directions=directions,
                        num_starts=num_starts)
    fitting = fitting_signed_speeds(num_frames, clip_len=clip_len, speeds=speeds,
                                    directions=directions)
    signed = (grid.speed * grid.direction).tolist()
    assert sorted(signed) == sorted(fitting * num_starts)  # each exactly num_starts times
    assert grid.frame_indices.shape == (len(signed), clip_len)
    for indices, skip, direction in zip(grid.frame_indices, grid.speed, grid.direction,
                                        strict=True):
        first = indices[0] if direction > 0 else indices[-1]
        assert_clip(indices, start=first, skip=skip, direction=direction,
                    num_frames=num_frames)
    again = pretext_grid(num_frames, clip_len=clip_len, speeds=speeds, directions=directions,
                         num_starts=num_starts)
    assert np.array_equal(again.frame_indices, grid.frame_indices)  # no randomness


def test_pretext_grid_starts_spread_over_the_video():
    grid = pretext_grid(100, clip_len=10, speeds=(1, 4), directions=(1,), num_starts=2)
    # speed 1 spans 10 frames (starts 0..90), speed 4 spans 37 (starts 0..63)
    assert grid.frame_indices[:, 0].tolist() == [22, 68, 16, 47]
    assert pretext_grid(9, clip_len=10, speeds=(1,), directions=(1, -1),
                        num_starts=2).speed.size == 0


@SETTINGS
@given(num_frames=st.integers(1, 120), clip_len=st.integers(1, 10), num_clips=st.integers(2, 4),
       gap=st.integers(0, 9), seed=seeds)
def test_tuple_is_consecutive_clips_gap_apart_or_none(num_frames, clip_len, num_clips, gap,
                                                       seed):
    draw = sample_tuple(num_frames, clip_len=clip_len, num_clips=num_clips, gap=gap,
                        rng=np.random.default_rng(seed))
    span = tuple_span(clip_len=clip_len, num_clips=num_clips, gap=gap)
    assert span == min_objective_frames("vcop", clip_len=clip_len, speeds=(1,), directions=(1,),
                                        num_clips=num_clips, gap=gap)
    if num_frames < span:
        assert draw is None
        return
    in_time = draw.frame_indices[np.argsort(draw.position)]
    assert (np.diff(in_time, axis=1) == 1).all()
    assert (np.diff(in_time[:, 0]) == clip_len + gap).all()
    assert 0 <= in_time[0, 0] and in_time[-1, -1] < num_frames
    assert sorted(draw.position.tolist()) == list(range(num_clips))


@SETTINGS
@given(num_frames=st.integers(1, 60), num_clips=st.integers(1, 6), rotate=st.booleans(),
       seed=seeds)
def test_independent_clips_at_normal_speed(num_frames, num_clips, rotate, seed):
    draw = sample_independent(num_frames, clip_len=8, num_clips=num_clips, directions=(1, -1),
                              rotate=rotate, rng=np.random.default_rng(seed))
    if num_frames < 8:
        assert draw is None
        return
    steps = np.diff(draw.frame_indices, axis=1)
    assert (steps == draw.direction[:, None]).all() and (draw.speed == 1).all()
    assert (draw.frame_indices >= 0).all() and (draw.frame_indices < num_frames).all()
    assert (draw.rotation is not None) == rotate
    if rotate:
        assert set(draw.rotation.tolist()) <= {0, 1, 2, 3}


@pytest.mark.parametrize("objective, speeds, directions", [
    ("classify", {1, 2, 4}, {1, -1}), ("speed", {1, 2, 4}, {1}), ("direction", {1}, {1, -1}),
    ("sort", {1, 2, 4}, {1, -1}), ("vcop", {1}, {1}), ("rotation", {1}, {1}),
])
def test_each_objective_draws_only_its_speeds_and_directions(objective, speeds, directions):
    rng = np.random.default_rng(0)
    draws = [sample_objective(objective, 100, clip_len=6, speeds=(1, 2, 4), directions=(1, -1),
                              num_clips=3, gap=2, rng=rng) for _ in range(60)]
    assert {int(s) for d in draws for s in d.speed} == speeds
    assert {int(s) for d in draws for s in d.direction} == directions
