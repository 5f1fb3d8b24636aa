"""make_loader: workers persist across epochs, and each epoch still draws its own clips."""

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


