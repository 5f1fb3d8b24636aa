import pytest
import torch

from playspeed.models import TemporalGroupNorm, build_backbone, configure_for_speed
from playspeed.models.performance import resolve_memory_format


@pytest.mark.parametrize("name", ["c3d", "r2plus1d_10"])
def test_channels_last_bf16_autocast_keeps_the_layout_through_every_norm(name):
    torch.manual_seed(0)
    model = build_backbone(name, norm="tgn", width=0.25)
    assert configure_for_speed(model) is model
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last_3d) for c in convs)
    layouts = []
    for layer in model.modules():
        if isinstance(layer, TemporalGroupNorm):
            layer.register_forward_hook(
                lambda _m, _i, out: layouts.append(
                    (out.dtype, out.is_contiguous(memory_format=torch.channels_last_3d))
                )
            )
    x = torch.randn(2, 3, 16, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = model(x)  # a contiguous input is fine: the first conv switches layout
        features.float().sum().backward()
    # Every norm keeps channels_last; all run in bf16 but those after the 2-frame convs,
    # which models/conv.py runs in fp32 (a CPU bf16 bug).
    assert all(channels_last for _, channels_last in layouts)
    assert layouts.count((torch.bfloat16, True)) > len(layouts) // 2
    assert features.shape == (2, model.feature_dim)
    assert torch.isfinite(features).all()


def test_bf16_channels_last_matches_fp32_eager():
    torch.manual_seed(0)
    model = build_backbone("r3d_10", norm="tgn", width=0.25).eval()
    x = torch.randn(2, 3, 16, 32, 32)
    expected = model(x)
    configure_for_speed(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(fast.float(), expected, rtol=0.05, atol=0.05)
    configure_for_speed(model, memory_format="contiguous")
    torch.testing.assert_close(model(x), expected)


def test_memory_format_names():
    assert resolve_memory_format("channels_last_3d") is torch.channels_last_3d
    assert resolve_memory_format("contiguous") is torch.contiguous_format
    with pytest.raises(ValueError, match="unknown memory format 'nhwc'"):
        resolve_memory_format("nhwc")
