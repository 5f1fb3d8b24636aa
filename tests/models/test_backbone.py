"""The shared backbone base: frame-difference input."""

import pytest
import torch

from playspeed.models import build_backbone, list_backbones
from playspeed.models.backbone import frame_differences


def test_frame_differences_values_and_shape():
    clips = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).view(2, 3, 4, 2, 2) ** 2
    diffs = frame_differences(clips)
    assert diffs.shape == clips.shape
    assert torch.equal(diffs[:, :, 0], torch.zeros_like(clips[:, :, 0]))
    assert torch.equal(diffs[:, :, 1:], clips[:, :, 1:] - clips[:, :, :-1])
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        frame_differences(clips[0])


@pytest.mark.parametrize("name", list_backbones())
def test_frame_diff_backbone_ignores_what_stands_still(name):
    # A still image added to every frame (a scene) changes no difference of frames, so the
    # features stay; the RGB backbone sees it.
    torch.manual_seed(0)
    clips, scene = torch.randn(2, 3, 8, 32, 32), 3 * torch.randn(2, 3, 1, 32, 32)
    for input_mode, same in (("frame_diff", True), ("rgb", False)):
        model = build_backbone(name, clip_len=8, width=0.25, input_mode=input_mode).eval()
        with torch.no_grad():
            plain, with_scene = model(clips), model(clips + scene)
        assert torch.allclose(plain, with_scene, atol=1e-4) is same, input_mode
        assert model.input_mode == input_mode


def test_rejects_unknown_input_mode():
    with pytest.raises(ValueError, match="unknown input_mode 'flow'; choose one of rgb, "
                                         "frame_diff"):
        build_backbone("r3d_10", width=0.25, input_mode="flow")
