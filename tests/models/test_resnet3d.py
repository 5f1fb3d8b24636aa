import pytest
import torch

from playspeed.models import build_backbone
from playspeed.models.resnet3d import _factored_channels

# Width 1.0, 16-frame clips, g = 4: parameter counts with BatchNorm and with TGN.
PARAMETERS = {
    "r3d_18": (33_166_272, 33_169_472),
    "r3d_10": (14_361_792, 14_363_712),
    "r2plus1d_18": (33_178_597, 33_189_779),
    "r2plus1d_10": (14_365_477, 14_372_499),
}


@pytest.mark.parametrize("name", PARAMETERS)
def test_parameter_counts(name):
    with torch.device("meta"):
        counts = tuple(
            sum(p.numel() for p in build_backbone(name, norm=norm).parameters())
            for norm in ("bn", "tgn")
        )
    assert counts == PARAMETERS[name]


def test_factored_convolution_matches_the_3d_weight_count():
    for n_in, n_out in [(64, 64), (64, 128), (128, 256), (256, 512), (512, 512)]:
        mid = _factored_channels(n_in, n_out, (3, 3, 3))
        factored = 9 * n_in * mid + 3 * mid * n_out
        assert factored <= 27 * n_in * n_out < factored + 9 * n_in + 3 * n_out
    assert _factored_channels(64, 64, (3, 3, 3)) == 144


def test_r2plus1d_factors_every_convolution():
    model = build_backbone("r2plus1d_10", norm="bn", width=0.25)
    kernels = {m.kernel_size for m in model.modules() if isinstance(m, torch.nn.Conv3d)}
    assert kernels == {(1, 7, 7), (3, 1, 1), (1, 3, 3), (1, 1, 1)}
    kernels = {
        m.kernel_size
        for m in build_backbone("r3d_10", width=0.25).modules()
        if isinstance(m, torch.nn.Conv3d)
    }
    assert kernels == {(3, 7, 7), (3, 3, 3), (1, 1, 1)}


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18", "r3d_10", "r2plus1d_10"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_backbone(name, norm="tgn", width=0.25)
    model(torch.randn(2, 3, 16, 32, 32)).square().sum().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
