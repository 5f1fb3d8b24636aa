import torch

from playspeed.models import build_backbone


def test_parameter_counts():
    with torch.device("meta"):
        counts = [
            sum(p.numel() for p in build_backbone("c3d", norm=norm).parameters())
            for norm in ("bn", "tgn", "gn")
        ]
    assert counts == [27_658_688, 27_660_864, 27_658_688]


def test_layout():
    model = build_backbone("c3d", norm="bn", width=0.25)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool3d)]
    assert len(convs) == 8 and {c.kernel_size for c in convs} == {(3, 3, 3)}
    assert [p.kernel_size for p in pools] == [(1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert [t for _, t, _ in model.norm_table()] == [16, 16, 8, 8, 4, 4, 2, 2]


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_backbone("c3d", norm="tgn", width=0.25)
    model(torch.randn(2, 3, 16, 32, 32)).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
