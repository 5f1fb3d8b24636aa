import pytest
import torch

from playspeed.models import TemporalGroupNorm, build_backbone, configure_for_speed, performance
from playspeed.models.performance import has_fast_bf16, resolve_memory_format, resolve_precision


def _norm_outputs(model: torch.nn.Module, x: torch.Tensor, *, bf16: bool) -> list:
    """(dtype, is channels_last) of every TGN output in a forward and backward pass."""
    layouts = []
    for layer in model.modules():
        if isinstance(layer, TemporalGroupNorm):
            layer.register_forward_hook(
                lambda _m, _i, out: layouts.append(
                    (out.dtype, out.is_contiguous(memory_format=torch.channels_last_3d))
                )
            )
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        features = model(x)  # a contiguous input is fine: the first conv switches layout
        features.float().sum().backward()
    assert features.shape == (x.shape[0], model.feature_dim)
    assert torch.isfinite(features).all()
    return layouts


def _fast_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_backbone(name, norm="tgn", width=0.25)
    assert configure_for_speed(model) is model
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last_3d) for c in convs)
    return model


@pytest.mark.parametrize("name", ["c3d", "r2plus1d_10"])
def test_channels_last_keeps_the_layout_through_every_norm(name):
    layouts = _norm_outputs(_fast_model(name), torch.randn(2, 3, 16, 32, 32), bf16=False)
    assert layouts and all(channels_last for _, channels_last in layouts)


@pytest.mark.parametrize("name", ["c3d", "r2plus1d_10"])
def test_bf16_autocast_runs_the_norms_in_bf16(name):
    layouts = _norm_outputs(_fast_model(name), torch.randn(2, 3, 16, 32, 32), bf16=True)
    # All norms run in bf16 but those after the 2-frame convs, which models/conv.py runs in
    # fp32 (a CPU bf16 bug).
    assert sum(dtype == torch.bfloat16 for dtype, _ in layouts) > len(layouts) // 2
    if has_fast_bf16("cpu"):  # emulated bf16 convs (AVX2) return contiguous maps
        assert all(channels_last for _, channels_last in layouts)


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


@pytest.mark.parametrize(("device_type", "fast", "expected"), [
    ("cpu", False, "32-true"), ("cpu", True, "bf16-mixed"),
    ("cuda", False, "16-mixed"), ("cuda", True, "bf16-mixed"),
])
def test_auto_precision_is_the_fast_one_of_the_machine(monkeypatch, device_type, fast, expected):
    monkeypatch.setattr(performance, "has_fast_bf16", lambda _device_type: fast)
    assert resolve_precision("auto", device_type=device_type) == expected
    assert resolve_precision("32-true", device_type=device_type) == "32-true"
    assert resolve_precision("bf16-mixed", device_type=device_type) == "bf16-mixed"
