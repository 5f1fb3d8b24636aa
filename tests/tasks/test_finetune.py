"""Fine-tuning: the pretrained backbone really is loaded, incompatible checkpoints are named."""

import pytest
import torch

from playspeed.errors import PlayspeedError
from playspeed.signals import Preempted
from playspeed.tasks.checkpoints import load_backbone_weights
from playspeed.tasks.finetune import ActionRecognition, check_backbone_compatible, finetune
from playspeed.tasks.pretext import pretrain
from playspeed.tasks.registry import load_task


@pytest.fixture(scope="module")
def pretrained(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    pretrain(tiny_config("pretrain", "trainer.max_epochs=1"), out)
    return out / "checkpoints" / "last.ckpt"


def _backbone(ckpt):
    return load_task(ckpt).backbone.state_dict()


def test_finetune_starts_from_the_pretrained_backbone(tiny_config, pretrained, tmp_path):
    # A frozen backbone (lr 0, frozen norm statistics) must come out exactly as it went in.
    config = tiny_config("finetune", "optim.backbone_lr_scale=0", "finetune.norm_stats=frozen",
                         "trainer.max_epochs=1")
    finetune(config, tmp_path / "frozen", init=pretrained)
    pretrained_weights, _ = load_backbone_weights(pretrained)
    tuned = _backbone(tmp_path / "frozen" / "checkpoints" / "last.ckpt")
    assert tuned.keys() == pretrained_weights.keys()
    for key, value in pretrained_weights.items():
        assert torch.equal(tuned[key], value), key
    task = load_task(tmp_path / "frozen" / "checkpoints" / "last.ckpt")
    assert task.hparams["config"]["finetune"]["init"] == str(pretrained)


def test_finetune_from_scratch_differs_and_trains(tiny_config, pretrained, tmp_path):
    metrics = finetune(tiny_config("finetune", "trainer.max_epochs=1"), tmp_path / "scratch")
    assert metrics["protocol"]["init"].startswith("scratch")
    assert metrics["clips_seen"] == 6  # 6 training videos (3 held out), one clip each, 1 epoch
    assert metrics["val_chance"] == pytest.approx(100 / 3)  # a held-out video of each class
    pretrained_weights, _ = load_backbone_weights(pretrained)
    scratch = _backbone(tmp_path / "scratch" / "checkpoints" / "last.ckpt")
    key = next(k for k in pretrained_weights if k.endswith("weight") and
               pretrained_weights[k].ndim == 5)
    assert not torch.equal(scratch[key], pretrained_weights[key])


def test_label_fraction_trains_on_a_share_of_each_class(tiny_config, tmp_path):
    metrics = finetune(tiny_config("finetune", "finetune.label_fraction=0.5",
                                   "trainer.max_epochs=1"), tmp_path)
    # 3 classes of 2 training videos after the hold-out: half of each is one video, 3 in all.
    assert metrics["train_videos"] == 3
    assert metrics["clips_seen"] == 3
    assert metrics["protocol"]["label_fraction"] == 0.5


def test_still_mix_reaches_the_training_clips(tiny_config, tmp_path, monkeypatch):
    from playspeed.tasks import finetune as module

    weights, seen = [], []
    forward = module.ActionRecognition.forward

    def mix(clips, *, max_weight):
        weights.append(max_weight)
        return torch.zeros_like(clips)  # the model must see what the mix returns

    def recording_forward(self, clips):
        seen.append(clips)
        return forward(self, clips)

    monkeypatch.setattr(module, "mix_still_frames", mix)
    monkeypatch.setattr(module.ActionRecognition, "forward", recording_forward)
    finetune(tiny_config("finetune", "finetune.still_mix=0.4", "trainer.max_epochs=1"),
             tmp_path)
    assert weights and set(weights) == {0.4}
    # The first forward is a training step's (the tiny config runs no sanity validation).
    assert torch.count_nonzero(seen[0]) == 0


def test_frozen_stages_keep_their_pretrained_weights(tiny_config, pretrained, tmp_path):
    config = tiny_config("finetune", "finetune.freeze_stages=2", "trainer.max_epochs=1")
    metrics = finetune(config, tmp_path, init=pretrained)
    assert metrics["protocol"]["frozen_stages"] == 2
    assert metrics["protocol"]["input_mode"] == config.model.input_mode == "frame_diff_unit"
    pretrained_weights, _ = load_backbone_weights(pretrained)
    tuned = _backbone(tmp_path / "checkpoints" / "last.ckpt")
    parameters = [k for k in pretrained_weights if k.endswith(("weight", "bias"))]
    kept = {k for k in parameters if torch.equal(tuned[k], pretrained_weights[k])}
    assert kept == {k for k in parameters if k.startswith(("stem.", "layer1."))}


def test_from_scratch_every_stage_trains(tiny_config):
    def trainable_stages(*overrides):
        task = ActionRecognition(tiny_config("finetune", "finetune.freeze_stages=2", *overrides),
                                 classes=["a", "b"])
        return [all(p.requires_grad for p in stage.parameters())
                for stage in task.backbone.stages()]

    assert trainable_stages() == [True] * 5
    assert trainable_stages("finetune.init=pre.ckpt") == [False, False, True, True, True]


def test_freezing_more_stages_than_the_backbone_has_is_named(tiny_config, pretrained,
                                                              tmp_path):
    with pytest.raises(PlayspeedError, match=r"freeze_stages=6: ResNet3d has only 5 stages"):
        finetune(tiny_config("finetune", "finetune.freeze_stages=6"), tmp_path, init=pretrained)
    # From scratch nothing is frozen, but the config is wrong all the same.
    with pytest.raises(PlayspeedError, match=r"freeze_stages=6: ResNet3d has only 5 stages"):
        ActionRecognition(tiny_config("finetune", "finetune.freeze_stages=6"), classes=["a", "b"])


def test_checkpoint_of_another_backbone_is_named(tiny_config, pretrained, tmp_path):
    config = tiny_config("finetune", "model.norm=bn")
    with pytest.raises(PlayspeedError, match=r"model.norm=tgn, the config asks for bn"):
        finetune(config, tmp_path, init=pretrained)


def test_checkpoint_of_another_input_mode_is_named(tiny_config):
    pretrained = tiny_config("pretrain", "model.input_mode=frame_diff")
    with pytest.raises(PlayspeedError, match=r"pre.ckpt: checkpoint has "
                                             r"model.input_mode=frame_diff, the config asks "
                                             r"for rgb \(set model.input_mode=frame_diff\)"):
        check_backbone_compatible(tiny_config("finetune", "model.input_mode=rgb"), pretrained,
                                  "pre.ckpt")


def test_clip_too_short_for_the_checkpoints_tgn_groups(tiny_config):
    # Pretrained at 8 frames with 2 frames per group: the stem norm has 4 groups, which a
    # 2-frame clip cannot fill; 4-frame clips fit.
    pretrained = tiny_config("pretrain", "model.frames_per_group=2")
    check_backbone_compatible(tiny_config("finetune", "model.frames_per_group=2", "clip.len=4"),
                              pretrained, "pre.ckpt")
    with pytest.raises(PlayspeedError, match=r"pre.ckpt: clip.len=2 is too short for this "
                                             r"checkpoint's TGN: layer stem.1 sees 2 frames"):
        check_backbone_compatible(
            tiny_config("finetune", "model.frames_per_group=2", "clip.len=2"), pretrained,
            "pre.ckpt")


def test_a_stop_mid_epoch_resumes_to_the_same_fine_tuning(tiny_config, tmp_path,
                                                          signal_at_step, assert_same_run):
    """With what a resume inside an epoch must restore besides the weights: frozen norm
    statistics (set at an epoch's start, which the resumed epoch skips), still-frame mixing
    and dropout (the global RNG)."""
    config = tiny_config("finetune", "finetune.norm_stats=frozen", "finetune.still_mix=0.5",
                         "model.dropout=0.5")
    finetune(config, tmp_path / "straight")
    signal_at_step(2)  # 2 steps an epoch: the stop comes at step 3, inside the second
    with pytest.raises(Preempted) as stop:
        finetune(config, tmp_path / "resumed")
    assert (stop.value.step, stop.value.batch) == (3, 1)
    signal_at_step(None)
    finetune(config, tmp_path / "resumed", resume=True)
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")
