"""The model card: written by every pretraining, it states the backbone, the data, the numbers
with their chance levels and protocols, and how to load the backbone."""

import json

import pytest

from playspeed.model_card import chance_levels, model_card
from playspeed.models import build_backbone


def test_pretraining_writes_the_card(tiny_pretrain_ckpt):
    run = tiny_pretrain_ckpt.parent.parent
    card = (run / "model_card.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert card.startswith("# r3d_10 (tgn), pretrained by playback-speed prediction")
    assert f"{metrics['pretext_val_acc']:.1f} | 16.7 |" in card  # 3 speeds x 2 directions
    assert f"trained on {metrics['protocol']['train_videos']} videos; 3 more held out" in card
    assert f'playspeed.load_backbone("{tiny_pretrain_ckpt}")' in card
    assert f"playspeed export --ckpt {tiny_pretrain_ckpt} --format safetensors" in card
    assert "| downstream (fine-tuning, retrieval, probes) | not measured |" in card
    assert "  width: 0.125\n" in card  # the whole config


@pytest.mark.parametrize(("overrides", "expected"), [
    ((), {"pretext_val_acc": 100 / 8, "speed_val_acc": 25.0, "direction_val_acc": 50.0}),
    (("pretext.objective=sort", "pretext.num_clips=3"), {"pretext_val_acc": 100 / 6}),
])
def test_chance_levels(overrides, expected, tiny_config):
    config = tiny_config("pretrain", "pretext.speeds=[1,2,4,8]", *overrides)
    assert chance_levels(config) == pytest.approx(expected)


def test_downstream_numbers_and_their_protocols(tiny_config, tmp_path):
    config = tiny_config("pretrain", "pretext.objective=sort")
    metrics = {"pretext_val_acc": 40.0, "num_videos": 3,
               "protocol": {"measured_on": "3 held-out videos", "train_videos": 6,
                            "accuracy": "a sample counts when its whole clip order is right"}}
    downstream = {"fine-tuned": {"video_top1": 22.5, "clip_top1": 20.0,
                                 "protocol": {"clips_per_video": 10, "split": "test | 1"}},
                  "frozen": {"top1": 35.0, "top5": 66.7, "protocol": {"gallery": "train"}}}
    card = model_card(config, metrics, backbone=build_backbone("r3d_10", width=0.125),
                      run_dir=tmp_path, downstream=downstream)
    assert "| pretext accuracy | 40.0 | 16.7 | 3 held-out videos; a sample counts" in card
    assert "speed accuracy" not in card  # the sort objective has no per-clip speed reading
    assert ("| fine-tuned: action recognition after fine-tuning, video top-1 (%) | 22.5 | | "
            "clips_per_video: 10; split: test / 1 |") in card
    assert "| frozen: retrieval (test videos query training videos), top-1 (%) | 35.0 |" in card
    assert "not measured" not in card
