import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from playspeed.models.norm import (
    NormFactory,
    TemporalGroupNorm,
    convert_sync_tgn,
    num_temporal_groups,
)

LAYOUTS = [torch.contiguous_format, torch.channels_last_3d]


def reference_tgn(x, weight, bias, eps=1e-5):
    """Loop over torch.tensor_split groups; BN statistics of each group over (B, frames, H, W)."""
    out = []
    for p, part in enumerate(torch.tensor_split(x, weight.shape[0], dim=2)):
        mean = part.mean(dim=(0, 2, 3, 4), keepdim=True)
        var = part.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
        scale, shift = weight[p].view(1, -1, 1, 1, 1), bias[p].view(1, -1, 1, 1, 1)
        out.append((part - mean) / torch.sqrt(var + eps) * scale + shift)
    return torch.cat(out, dim=2)


def reference_running_stats(x, groups, momentum=0.1):
    means, variances = [], []
    for part in torch.tensor_split(x, groups, dim=2):
        means.append(part.mean(dim=(0, 2, 3, 4)))
        variances.append(part.var(dim=(0, 2, 3, 4), unbiased=True))
    mean, var = torch.stack(means), torch.stack(variances)
    return momentum * mean, (1 - momentum) + momentum * var


def random_layer(channels, groups, dtype=torch.float64):
    layer = TemporalGroupNorm(channels, groups).to(dtype)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("frames", [1, 4, 5, 7, 8])
def test_matches_reference_for_every_split(frames, layout):
    torch.manual_seed(frames)
    for groups in range(1, frames + 1):
        x = torch.randn(3, 4, frames, 3, 2, dtype=torch.float64) * 2 + 1
        x = x.contiguous(memory_format=layout).requires_grad_()
        layer = random_layer(4, groups)
        y = layer(x)
        expected = reference_tgn(x, layer.weight, layer.bias)
        grad = torch.randn_like(y)
        got = torch.autograd.grad(y, [x, layer.weight, layer.bias], grad)
        want = torch.autograd.grad(expected, [x, layer.weight, layer.bias], grad)
        torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
        running_mean, running_var = reference_running_stats(x.detach(), groups)
        torch.testing.assert_close(layer.running_mean, running_mean)
        torch.testing.assert_close(layer.running_var, running_var)
        # Output and gradient keep the input's layout, so the next convolution need not convert.
        assert y.is_contiguous(memory_format=layout)
        assert got[0].is_contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
def test_output_gradient_in_an_unusual_layout(layout):
    for frames, groups in [(7, 3), (8, 2)]:
        x = torch.randn(2, 3, frames, 4, 5, dtype=torch.float64).contiguous(memory_format=layout)
        x.requires_grad_()
        layer = random_layer(3, groups)
        grad = torch.randn(2, 3, frames, 5, 4, dtype=torch.float64).transpose(3, 4)
        got = torch.autograd.grad(layer(x), x, grad)[0]
        want = torch.autograd.grad(reference_tgn(x, layer.weight, layer.bias), x, grad)[0]
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("frames,groups", [(7, 3), (8, 4), (6, 1)])
def test_eval_uses_each_groups_running_statistics(layout, frames, groups):
    layer = random_layer(3, groups)
    with torch.no_grad():
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
    layer.eval()
    x = torch.randn(2, 3, frames, 2, 2, dtype=torch.float64).contiguous(memory_format=layout)
    expected = []
    for p, part in enumerate(torch.tensor_split(x, groups, dim=2)):
        shape = (1, -1, 1, 1, 1)
        mean, var = layer.running_mean[p].view(shape), layer.running_var[p].view(shape)
        normalized = (part - mean) / torch.sqrt(var + layer.eps)
        expected.append(normalized * layer.weight[p].view(shape) + layer.bias[p].view(shape))
    expected = torch.cat(expected, dim=2)
    before = layer.running_mean.clone()
    with torch.inference_mode():  # channels-last inputs take the direct affine path here
        inferred = layer(x)
    torch.testing.assert_close(inferred, expected)
    assert inferred.is_contiguous(memory_format=layout)
    torch.testing.assert_close(layer(x.clone().requires_grad_()), expected)
    assert torch.equal(layer.running_mean, before)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
def test_one_group_is_batchnorm3d(layout):
    torch.manual_seed(0)
    bn, tgn = nn.BatchNorm3d(6), TemporalGroupNorm(6, 1)
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        tgn.weight.copy_(bn.weight.unsqueeze(0))
        tgn.bias.copy_(bn.bias.unsqueeze(0))
    for step in range(3):
        x = (torch.randn(4, 6, 5, 7, 7) * 3 + step).contiguous(memory_format=layout)
        xb, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
        yb, yt = bn(xb), tgn(xt)
        grad = torch.randn_like(yb)
        yb.backward(grad)
        yt.backward(grad)
        torch.testing.assert_close(yt, yb, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(xt.grad, xb.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tgn.weight.grad[0], bn.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tgn.bias.grad[0], bn.bias.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tgn.running_mean[0], bn.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tgn.running_var[0], bn.running_var, rtol=1e-5, atol=1e-5)
    bn.eval()
    tgn.eval()
    x = torch.randn(2, 6, 3, 4, 4).contiguous(memory_format=layout)
    xb, xt = x.clone().requires_grad_(), x.clone().requires_grad_()
    yb, yt = bn(xb), tgn(xt)
    yb.sum().backward()
    yt.sum().backward()
    torch.testing.assert_close(yt, yb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xt.grad, xb.grad, rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip():
    layer = random_layer(5, 4, dtype=torch.float32)
    for _ in range(2):
        layer(torch.randn(2, 5, 9, 3, 3))
    state = layer.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "weight": (4, 5),
        "bias": (4, 5),
        "running_mean": (4, 5),
        "running_var": (4, 5),
    }
    restored = TemporalGroupNorm(5, 4)
    restored.load_state_dict(state)
    layer.eval()
    restored.eval()
    x = torch.randn(2, 5, 8, 3, 3)
    torch.testing.assert_close(restored(x), layer(x))
    with pytest.raises(RuntimeError):
        TemporalGroupNorm(5, 2).load_state_dict(state)


def test_other_clip_length_keeps_the_groups():
    layer = random_layer(2, 4)
    x = torch.randn(3, 2, 6, 2, 2, dtype=torch.float64)  # built for 16 frames, fed 6
    torch.testing.assert_close(layer(x), reference_tgn(x, layer.weight, layer.bias))
    with pytest.raises(ValueError, match="3 frames but the layer has 4 temporal groups"):
        layer(torch.randn(3, 2, 3, 2, 2, dtype=torch.float64))


def test_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match="expected B x 2 x T x H x W"):
        TemporalGroupNorm(2, 1)(torch.randn(3, 3, 4, 2, 2))


@pytest.mark.parametrize("frames,groups", [(16, 4), (16, 3), (8, 2)])
def test_bf16_channels_last_close_to_fp32(frames, groups):
    torch.manual_seed(0)
    layer = random_layer(8, groups, dtype=torch.float32)
    x = (torch.randn(2, 8, frames, 6, 6) + 2).contiguous(memory_format=torch.channels_last_3d)
    expected = reference_tgn(x, layer.weight.detach(), layer.bias.detach())
    xb = x.to(torch.bfloat16).requires_grad_()
    y = layer(xb)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    assert xb.grad.is_contiguous(memory_format=torch.channels_last_3d)
    assert layer.running_mean.dtype == torch.float32
    torch.testing.assert_close(y.float(), expected, rtol=0.03, atol=0.03)


def test_convert_sync_tgn_marks_every_tgn_and_runs_locally_without_a_process_group():
    model = nn.Sequential(TemporalGroupNorm(2, 2), nn.ReLU(), TemporalGroupNorm(2, 1))
    assert convert_sync_tgn(model) is model
    assert all(layer.sync for layer in model if isinstance(layer, TemporalGroupNorm))
    x = torch.randn(2, 2, 4, 3, 3)
    reference = nn.Sequential(TemporalGroupNorm(2, 2), nn.ReLU(), TemporalGroupNorm(2, 1))
    torch.testing.assert_close(model(x), reference(x))


SYNC_WORKER = textwrap.dedent(
    """
    import os
    import sys
    import torch
    import torch.distributed as dist
    from playspeed.models.norm import TemporalGroupNorm, convert_sync_tgn

    rank, init_file = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    for frames, groups, layout in [
        (8, 2, torch.contiguous_format),
        (7, 3, torch.channels_last_3d),
        (5, 1, torch.channels_last_3d),
    ]:
        torch.manual_seed(0)  # same full batch on both ranks; rank r takes rows 3r:3r+3
        x = (torch.randn(6, 4, frames, 3, 3, dtype=torch.float64) * 2 + 1)
        x = x.contiguous(memory_format=layout)
        grad = torch.randn_like(x)
        full = TemporalGroupNorm(4, groups).double()
        with torch.no_grad():
            full.weight.normal_()
            full.bias.normal_()
        synced = convert_sync_tgn(TemporalGroupNorm(4, groups).double())
        synced.load_state_dict(full.state_dict())
        xf = x.clone().requires_grad_()
        yf = full(xf)
        yf.backward(grad)
        rows = slice(3 * rank, 3 * rank + 3)
        xs = x[rows].clone().requires_grad_()
        y = synced(xs)
        y.backward(grad[rows])
        close = dict(rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(y, yf[rows], **close)
        torch.testing.assert_close(xs.grad, xf.grad[rows], **close)
        torch.testing.assert_close(synced.running_mean, full.running_mean, **close)
        torch.testing.assert_close(synced.running_var, full.running_var, **close)
        for name in ("weight", "bias"):
            local = getattr(synced, name).grad.clone()
            dist.all_reduce(local)
            torch.testing.assert_close(local, getattr(full, name).grad, **close)
    dist.barrier()
    print("synced", flush=True)
    os._exit(0)  # skips gloo's teardown, which can abort at interpreter exit
    """
)


@pytest.mark.slow
def test_sync_statistics_match_one_process_on_the_whole_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(SYNC_WORKER)
    init_file = tmp_path / "init"
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(init_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0 and "synced" in output, output


def test_layer_dependable_rule():
    assert [num_temporal_groups(t, 4) for t in (16, 8, 4, 2, 1)] == [4, 2, 1, 1, 1]
    assert num_temporal_groups(16, 3) == 5
    assert num_temporal_groups(16, 1) == 16


def test_factory_kinds_and_options():
    tgn = NormFactory("tgn", frames_per_group=2)
    layer = tgn(8, frames=8, stage=1)
    assert isinstance(layer, TemporalGroupNorm) and layer.num_groups == 4
    assert tgn.frames[id(layer)] == 8
    assert isinstance(NormFactory("bn")(8, frames=16, stage=0), nn.BatchNorm3d)
    gn = NormFactory("gn")(48, frames=16, stage=0)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 16
    explicit = NormFactory("tgn", groups_per_stage=[2, 2, 1, 1, 1])
    assert explicit(4, frames=16, stage=0).num_groups == 2
    assert explicit(4, frames=4, stage=3).num_groups == 1
    with pytest.raises(ValueError, match="exceeds the 1 frames"):
        NormFactory("tgn", groups_per_stage=[2, 2, 2, 2, 2])(4, frames=1, stage=4)
    with pytest.raises(ValueError, match="unknown norm"):
        NormFactory("ln")
    with pytest.raises(ValueError, match="norm='tgn' only"):
        NormFactory("bn", groups_per_stage=[1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="frames_per_group"):
        NormFactory("tgn", frames_per_group=0)
