"""make_loader: workers persist across epochs, and each epoch still draws its own clips; a
training loader resumes an epoch part-way exactly."""

import pytest

from playspeed.config import load_config
from playspeed.data import PlaybackSpeedClips
from playspeed.tasks.data import make_loader


def test_persistent_workers_draw_new_clips_each_epoch(coded_videos):
    records, source = coded_videos([200, 180, 160, 150])
    dataset = PlaybackSpeedClips(records, source, clip_len=4, num_clips=2)
    config = load_config("pretrain/synthetic_cpu", ["data.workers=1", "optim.batch_size=2"])
    loader = make_loader(dataset, config, train=True)
    assert loader.persistent_workers

    def epoch(number):
        loader.sampler.set_epoch(number)  # what Lightning does before each epoch
        # by video, so that the sampler's new order alone cannot make epochs differ
        return {int(video): indices.tolist() for batch in loader
                for video, indices in zip(batch["video_index"], batch["frame_indices"],
                                          strict=True)}

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert first == again and len(first) == 4
    assert second != first


def _resumable(coded_videos, workers):
    records, source = coded_videos([60 + 5 * i for i in range(10)])
    dataset = PlaybackSpeedClips(records, source, clip_len=4, num_clips=2)
    config = load_config("pretrain/synthetic_cpu", [f"data.workers={workers}",
                                                    "optim.batch_size=3"])
    return lambda: make_loader(dataset, config, train=True)


def _items(batch):
    return list(zip(batch["video_index"].tolist(), batch["frame_indices"].tolist(),
                    strict=True))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_resumed_epoch_continues_with_the_batches_an_uninterrupted_one_draws(coded_videos,
                                                                               workers):
    new_loader = _resumable(coded_videos, workers)
    straight = new_loader()
    straight.sampler.set_epoch(2)
    expected = [_items(batch) for batch in straight]
    assert len(expected) == 3  # 10 items in batches of 3, the last partial one dropped

    first = new_loader()
    first.sampler.set_epoch(2)
    batches = iter(first)
    assert _items(next(batches)) == expected[0]
    state = first.state_dict()
    assert state == {"epoch": 2, "samples": 3}

    # As Lightning does on a resume: a new loader, its iterator made before the epoch is set.
    resumed = new_loader()
    resumed.load_state_dict(state)
    batches = iter(resumed)
    resumed.sampler.set_epoch(2)
    assert [_items(batch) for batch in batches] == expected[1:]
    # Stopped again later in the same epoch, the position counts from the epoch's start.
    assert resumed.state_dict() == {"epoch": 2, "samples": 9}
    # The next epoch is whole again.
    resumed.sampler.set_epoch(3)
    assert len(list(resumed)) == 3


def test_a_position_in_another_epoch_is_ignored(coded_videos):
    new_loader = _resumable(coded_videos, 0)
    loader = new_loader()
    loader.load_state_dict({"epoch": 1, "samples": 6})  # saved at the end of epoch 1
    loader.sampler.set_epoch(2)
    assert len(list(loader)) == 3
