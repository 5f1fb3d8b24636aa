"""The model card: written by every pretraining, it states the backbone, the data, the numbers
with their chance levels and protocols, and how to load the backbone."""

import json

from playspeed.model_card import model_card
from playspeed.models import build_backbone


def test_pretraining_writes_the_card(tiny_pretrain_ckpt):
    run = tiny_pretrain_ckpt.parent.parent
    card = (run / "model_card.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert card.startswith("# r3d_10 (tgn), pretrained by playback-speed prediction")
    assert (f"| pretext accuracy | {metrics['pretext_val_acc']:.1f} | "
            f"{metrics['pretext_val_chance']:.1f} |") in card
    assert f"| direction accuracy | {metrics['direction_val_acc']:.1f} |" in card
    assert f"trained on {metrics['protocol']['train_videos']} videos; 3 more held out" in card
    assert f'playspeed.load_backbone("{tiny_pretrain_ckpt}")' in card
    assert f"playspeed export --ckpt {tiny_pretrain_ckpt} --format safetensors" in card
    assert "| downstream (fine-tuning, retrieval, probes) | not measured |" in card
    assert "  width: 0.125\n" in card  # the whole config


def test_downstream_numbers_and_their_protocols(tiny_config, tmp_path):
    config = tiny_config("pretrain", "pretext.objective=sort")
    metrics = {"pretext_val_acc": 40.0, "pretext_val_chance": 16.7, "num_videos": 3,
               "pretext_warning": "the pretext did not learn: ...",
               "protocol": {"measured_on": "3 held-out videos", "train_videos": 6,
                            "accuracy": "a sample counts when its whole clip order is right",
                            "chance": "the most frequent label"}}
    downstream = {"fine-tuned": {"video_top1": 22.5, "clip_top1": 20.0, "chance_top1": 12.5,
                                 "protocol": {"clips_per_video": 10, "split": "test | 1"}},
                  "frozen": {"top1": 35.0, "top5": 66.7, "protocol": {"gallery": "train"}}}
    card = model_card(config, metrics, backbone=build_backbone("r3d_10", width=0.125),
                      run_dir=tmp_path, downstream=downstream)
    assert ("| pretext accuracy | 40.0 | 16.7 | 3 held-out videos; a sample counts when its "
            "whole clip order is right; chance: the most frequent label |") in card
    assert "Warning: the pretext did not learn" in card
    assert "speed accuracy" not in card  # the sort objective has no per-clip speed reading
    assert ("| fine-tuned: action recognition after fine-tuning, video top-1 (%) | 22.5 | 12.5 | "
            "clips_per_video: 10; split: test / 1 |") in card
    # A reading stored without its chance (metrics of an older run) leaves the cell empty.
    assert ("| frozen: retrieval (test videos query training videos), top-1 (%) | 35.0 | | "
            "gallery: train |") in card
    assert "not measured" not in card
