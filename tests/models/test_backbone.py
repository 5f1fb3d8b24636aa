"""The shared backbone base: frame-difference input, at unit energy or not."""

import pytest
import torch

from playspeed.models import build_backbone, list_backbones
from playspeed.models.backbone import UNIT_DIFF_EPS, frame_differences, unit_energy


def test_frame_differences_values_and_shape():
    clips = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).view(2, 3, 4, 2, 2) ** 2
    diffs = frame_differences(clips)
    assert diffs.shape == clips.shape
    assert torch.equal(diffs[:, :, 0], torch.zeros_like(clips[:, :, 0]))
    assert torch.equal(diffs[:, :, 1:], clips[:, :, 1:] - clips[:, :, :-1])
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        frame_differences(clips[0])


def test_unit_energy_scales_each_clip_alone():
    torch.manual_seed(0)
    clips = torch.randn(3, 3, 4, 5, 5) * torch.tensor([0.1, 1.0, 7.0]).view(3, 1, 1, 1, 1)
    scaled = unit_energy(clips, eps=0.0)
    assert torch.allclose(scaled.pow(2).mean(dim=(1, 2, 3, 4)), torch.ones(3), atol=1e-5)
    assert torch.allclose(scaled[1:2], unit_energy(clips[1:2], eps=0.0))  # batch-independent
    # A still clip stays zero instead of dividing by zero; a faint one stays faint.
    still = torch.zeros(1, 3, 4, 5, 5)
    assert torch.equal(unit_energy(still), still)
    faint = torch.full((1, 3, 4, 5, 5), UNIT_DIFF_EPS / 10)
    assert unit_energy(faint).abs().max().item() < 0.1
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        unit_energy(clips[0])


def test_unit_energy_backbone_cannot_read_speed_from_energy():
    # The same motion with its differences scaled up (as faster playback makes them) gives
    # the same features at unit energy (up to the eps), and 4x the features with plain
    # differences: BatchNorm at inference is affine and keeps a clip's scale.
    torch.manual_seed(0)
    clips = torch.randn(2, 3, 8, 32, 32)
    for input_mode, same in (("frame_diff_unit", True), ("frame_diff", False)):
        model = build_backbone("r3d_10", norm="bn", clip_len=8, width=0.25,
                               input_mode=input_mode).eval()
        with torch.no_grad():
            plain, louder = model(clips), model(4 * clips)
        gap = (plain - louder).abs().max() / plain.abs().max()
        assert (gap.item() < 0.02) is same, (input_mode, gap.item())


@pytest.mark.parametrize("name", list_backbones())
def test_frame_diff_backbone_ignores_what_stands_still(name):
    # A still image added to every frame (a scene) changes no difference of frames, so the
    # features stay; the RGB backbone sees it.
    torch.manual_seed(0)
    clips, scene = torch.randn(2, 3, 8, 32, 32), 3 * torch.randn(2, 3, 1, 32, 32)
    for input_mode, same in (("frame_diff", True), ("frame_diff_unit", True), ("rgb", False)):
        model = build_backbone(name, clip_len=8, width=0.25, input_mode=input_mode).eval()
        with torch.no_grad():
            plain, with_scene = model(clips), model(clips + scene)
        assert torch.allclose(plain, with_scene, atol=1e-4) is same, input_mode
        assert model.input_mode == input_mode


def test_rejects_unknown_input_mode():
    with pytest.raises(ValueError, match="unknown input_mode 'flow'; choose one of rgb, "
                                         "frame_diff, frame_diff_unit"):
        build_backbone("r3d_10", width=0.25, input_mode="flow")
