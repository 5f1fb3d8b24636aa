import pytest
import torch

from playspeed.models import build_backbone, list_backbones
from playspeed.models.norm import TemporalGroupNorm

NORMS = ["tgn", "bn", "gn"]


def test_names():
    assert list_backbones() == ["c3d", "r3d_18", "r2plus1d_18", "r3d_10", "r2plus1d_10"]
    with pytest.raises(ValueError, match="unknown backbone 'r3d_50'"):
        build_backbone("r3d_50")
    with pytest.raises(ValueError, match="unknown norm"):
        build_backbone("r3d_10", norm="ln")


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("clip_len", [8, 16])
def test_output_shapes_for_every_norm(name, clip_len):
    x = torch.randn(2, 3, clip_len, 32, 32)
    for norm in NORMS:
        model = build_backbone(name, norm=norm, clip_len=clip_len, width=0.25)
        assert model.feature_dim == 128
        features = model(x)
        assert features.shape == (2, 128)
        assert torch.isfinite(features).all()
        # Stages 2-4 halve time and space; the stem (or C3D's pools) halves space once more.
        assert model.forward_features(x).shape == (2, 128, clip_len // 8, 2, 2)


@pytest.mark.parametrize("name", list_backbones())
def test_norm_table_traces_the_temporal_strides(name):
    model = build_backbone(name, norm="tgn", clip_len=16, width=0.25)
    table = model.norm_table()
    layers = dict(model.named_modules())
    assert len(table) == sum(isinstance(m, TemporalGroupNorm) for m in model.modules())
    for layer_name, frames, groups in table:
        assert groups == layers[layer_name].num_groups == max(1, frames // 4)
    assert {frames for _, frames, _ in table} == {16, 8, 4, 2}
    assert table[0][1:] == (16, 4) and table[-1][1:] == (2, 1)
    # Half the clip length halves every T_l (R(2+1)D's first mid norm of a stage sees the
    # frames before its temporal stride).
    short = build_backbone(name, norm="tgn", clip_len=8, width=0.25).norm_table()
    assert [t for _, t, _ in short] == [max(1, t // 2) for _, t, _ in table]
    bn_table = build_backbone(name, norm="bn", width=0.25).norm_table()
    assert [(n, t) for n, t, _ in bn_table] == [(n, t) for n, t, _ in table]
    assert {p for _, _, p in bn_table} == {1}


def test_groups_per_stage_and_frames_per_group():
    model = build_backbone("r3d_10", groups_per_stage=[8, 4, 2, 2, 1], width=0.25)
    assert [p for _, _, p in model.norm_table()] == [8, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1, 1]
    model = build_backbone("r3d_10", frames_per_group=2, width=0.25)
    assert [p for _, _, p in model.norm_table()][:4] == [8, 8, 8, 4]
    with pytest.raises(ValueError, match="stage 4 needs one"):
        build_backbone("r3d_10", groups_per_stage=[1, 1, 1, 1], width=0.25)


def test_other_clip_length_keeps_groups_and_rejects_too_short_clips():
    model = build_backbone("r3d_10", clip_len=16, width=0.25)
    assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 128)  # 2 frames per stem group
    with pytest.raises(ValueError, match="temporal groups"):
        model(torch.randn(2, 3, 2, 32, 32))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        build_backbone("c3d", width=0)
    with pytest.raises(ValueError, match="clip_len"):
        build_backbone("c3d", clip_len=0)
